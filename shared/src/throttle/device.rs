//! Device cookies (the OWASP "device cookie" defence): a correct password hands the browser a
//! signed `loginDevice` cookie for that account, and a later attempt that presents it is
//! counted under the device instead of its address.
//!
//! Why: the address budgets cannot tell two people behind one address apart (a carrier-grade
//! NAT, an office, a campus). A stranger there could spend the address's budget across any
//! accounts, or its delay at the owner's account, and lock the owner out for up to a day. The
//! cookie is a secret only the owner's browser holds, so it exempts exactly the owner, and
//! nothing about it depends on whether an account exists: an attacker without a cookie for
//! an account is throttled as before, known account or not.
//!
//! The value is `d1.` and the URL-safe base64 of: the device id (16 random bytes), the issue
//! time (Unix seconds, 8 bytes big-endian), the account keys it was issued for (16 bytes
//! each: username, email, user id, as the throttles hash them), then an HMAC-SHA256 of all
//! that under a key derived from `ACCESS_TOKEN_SECRET`. Nothing is stored: the cookie is
//! checked by its MAC and its age (`THROTTLE_TRUSTED_FOR`), and a rotated secret voids every
//! cookie.
use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::tokens::{hmac_sha256, hmac_sha256_verify};

const PREFIX: &str = "d1.";
const ID_LEN: usize = 16;
/// The length of one account key (the throttle's HMACs are cut to 16 bytes).
pub(super) const ACCOUNT_LEN: usize = 16;
/// Username, email and user id: every name login and change-password count an account under.
pub(super) const ACCOUNTS: usize = 3;
const PAYLOAD_LEN: usize = ID_LEN + 8 + ACCOUNTS * ACCOUNT_LEN;
const MAC_LEN: usize = 32;
/// A cookie issued further ahead than this by another instance's clock is refused.
const CLOCK_SKEW_SECS: i64 = 300;

/// A device the owner's browser proved by its cookie; the throttles count its attempts apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceId([u8; ID_LEN]);

impl DeviceId {
    pub(super) fn generate() -> Self {
        Self(rand::random())
    }

    pub(super) fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// What a device cookie says, once its MAC checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Device {
    pub id: DeviceId,
    pub issued_at_secs: i64,
    pub accounts: [[u8; ACCOUNT_LEN]; ACCOUNTS],
}

impl Device {
    /// Whether it was issued for the account under this key, and is not older than
    /// `lifetime` (nor issued from the future) at `now_secs`.
    pub fn vouches_for(
        &self,
        account: &[u8; ACCOUNT_LEN],
        now_secs: i64,
        lifetime: Duration,
    ) -> bool {
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        let fresh = now_secs < self.issued_at_secs.saturating_add(lifetime)
            && self.issued_at_secs <= now_secs.saturating_add(CLOCK_SKEW_SECS);
        fresh && self.accounts.iter().any(|a| a == account)
    }
}

pub(super) fn encode(key: &[u8; 32], device: &Device) -> String {
    let mut bytes = Vec::with_capacity(PAYLOAD_LEN + MAC_LEN);
    bytes.extend_from_slice(&device.id.0);
    bytes.extend_from_slice(&device.issued_at_secs.to_be_bytes());
    for account in &device.accounts {
        bytes.extend_from_slice(account);
    }
    let tag = hmac_sha256(key, &bytes);
    bytes.extend_from_slice(&tag);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The device a cookie value names, if it is one of ours, whole and unaltered; anything else
/// (another format, a bad MAC, another secret's) is `None`, as if there were no cookie.
pub(super) fn decode(key: &[u8; 32], value: &str) -> Option<Device> {
    let encoded = value.strip_prefix(PREFIX)?;
    // Longer input is refused before it is decoded: the length is fixed.
    if encoded.len() != ((PAYLOAD_LEN + MAC_LEN) * 4).div_ceil(3) {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    if bytes.len() != PAYLOAD_LEN + MAC_LEN {
        return None;
    }
    let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
    if !hmac_sha256_verify(key, payload, tag) {
        return None;
    }
    let (id, rest) = payload.split_at(ID_LEN);
    let (issued, rest) = rest.split_at(8);
    let mut accounts = [[0u8; ACCOUNT_LEN]; ACCOUNTS];
    for (account, chunk) in accounts.iter_mut().zip(rest.chunks_exact(ACCOUNT_LEN)) {
        account.copy_from_slice(chunk);
    }
    Some(Device {
        id: DeviceId(id.try_into().ok()?),
        issued_at_secs: i64::from_be_bytes(issued.try_into().ok()?),
        accounts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const DAY: Duration = Duration::from_secs(86_400);

    fn device() -> Device {
        Device {
            id: DeviceId::generate(),
            issued_at_secs: 1_800_000_000,
            accounts: [[1; ACCOUNT_LEN], [2; ACCOUNT_LEN], [3; ACCOUNT_LEN]],
        }
    }

    #[test]
    fn a_cookie_reads_back_as_issued_and_only_under_its_key() {
        let d = device();
        let value = encode(&KEY, &d);
        assert!(value.starts_with("d1."), "{value}");
        assert!(
            value[3..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "a cookie-safe value: {value}"
        );
        assert_eq!(decode(&KEY, &value), Some(d));
        assert_eq!(decode(&[8; 32], &value), None, "another secret's cookie");
    }

    #[test]
    fn an_altered_truncated_or_foreign_value_is_no_cookie() {
        let value = encode(&KEY, &device());
        for i in 3..value.len() {
            let mut altered = value.clone().into_bytes();
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).expect("ascii");
            assert_eq!(decode(&KEY, &altered), None, "byte {i} altered");
        }
        assert_eq!(decode(&KEY, &value[..value.len() - 1]), None);
        assert_eq!(decode(&KEY, &format!("{value}A")), None);
        assert_eq!(decode(&KEY, &value.replacen("d1.", "d2.", 1)), None);
        for junk in ["", "d1.", "d1.!!!", "abc.def.ghi", &"A".repeat(10_000)] {
            assert_eq!(decode(&KEY, junk), None, "{junk:.20}");
        }
    }

    #[test]
    fn it_vouches_for_its_own_accounts_within_its_lifetime() {
        let d = device();
        let at = d.issued_at_secs;
        for account in d.accounts {
            assert!(d.vouches_for(&account, at + 10, DAY));
        }
        assert!(
            !d.vouches_for(&[9; ACCOUNT_LEN], at + 10, DAY),
            "another account"
        );
        assert!(d.vouches_for(&[1; ACCOUNT_LEN], at + 86_399, DAY));
        assert!(
            !d.vouches_for(&[1; ACCOUNT_LEN], at + 86_400, DAY),
            "expired"
        );
        assert!(
            !d.vouches_for(&[1; ACCOUNT_LEN], at, Duration::ZERO),
            "lifetime zero: none"
        );
        assert!(
            d.vouches_for(&[1; ACCOUNT_LEN], at - CLOCK_SKEW_SECS, DAY),
            "a clock a little behind"
        );
        assert!(
            !d.vouches_for(&[1; ACCOUNT_LEN], at - CLOCK_SKEW_SECS - 1, DAY),
            "from the future"
        );
    }
}
