//! The throttles' decision, pure: what an attempt saw of the attempts before it, and whether it
//! may check a password now. No I/O, no clock: [`super::Throttle::check`] gathers the facts.
use std::time::Duration;

use crate::config::ThrottleConfig;

/// What one attempt saw after recording itself (its own record excluded). Times are Unix
/// milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Seen {
    /// When each other attempt by this address at this account began, since the last success
    /// there and within `forget_after`: failures, and checks still running.
    pub pair: Vec<i64>,
    /// When the newest other attempts by this address, at any account, within `address_window`
    /// began, newest first, at most `address_failures` of them.
    pub address: Vec<i64>,
    /// The same at this account, from anywhere, within `account_window`.
    pub account: Vec<i64>,
    /// Whether this address signed in to this account within `trusted_for`.
    pub trusted: bool,
    /// Whether a device cookie vouched for this account: then `pair` is the device's,
    /// `account` the account's devices', the address budget does not apply and the account
    /// budget applies even to a trusted pair.
    pub device: bool,
}

/// Which budget refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The growing delay of one address at one account.
    Pair,
    /// One address across accounts (credential stuffing).
    Address,
    /// One account from addresses it has not signed in from.
    Account,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Pair => "address_at_account",
            Limit::Address => "address",
            Limit::Account => "account",
        }
    }
}

/// The wait before the next check after `failures` failures of one address at one account:
/// none for the first `free_failures`, then `delay` doubled by each further one, at most
/// `max_delay`.
pub(super) fn pair_delay(cfg: &ThrottleConfig, failures: usize) -> Duration {
    let Some(over) = failures.checked_sub(cfg.free_failures as usize) else {
        return Duration::ZERO;
    };
    let factor = u32::try_from(over)
        .ok()
        .and_then(|n| 1u32.checked_shl(n))
        .unwrap_or(u32::MAX);
    cfg.delay.saturating_mul(factor).min(cfg.max_delay)
}

/// Whether the pair delay refuses an attempt at `now`, and until when.
pub(super) fn pair_ready_at(cfg: &ThrottleConfig, pair: &[i64]) -> Option<i64> {
    let wait = pair_delay(cfg, pair.len());
    if wait.is_zero() {
        return None;
    }
    let last = pair.iter().copied().max()?;
    Some(last.saturating_add(millis(wait)))
}

/// When a sliding `window` with `budget` lets the next attempt in, given the newest others
/// in it (newest first): once the `budget`-th newest has left it. `None` while under budget.
fn window_ready_at(newest: &[i64], budget: u32, window: Duration) -> Option<i64> {
    let nth = newest.get((budget as usize).checked_sub(1)?)?;
    Some(nth.saturating_add(millis(window)))
}

/// The budgets an attempt is over at `now`, given what it saw, each with the time it ends.
pub(super) fn over(cfg: &ThrottleConfig, now: i64, seen: &Seen) -> Vec<(Limit, i64)> {
    let mut limits = Vec::new();
    if let Some(ready) = pair_ready_at(cfg, &seen.pair)
        && now < ready
    {
        limits.push((Limit::Pair, ready));
    }
    if let Some(ready) = window_ready_at(&seen.address, cfg.address_failures, cfg.address_window)
        && !seen.device
    {
        limits.push((Limit::Address, ready));
    }
    if let Some(ready) = window_ready_at(&seen.account, cfg.account_failures, cfg.account_window)
        && (seen.device || !seen.trusted)
    {
        limits.push((Limit::Account, ready));
    }
    limits
}

/// How often a pair's trust is rewritten while nothing else calls for it: a thirtieth of
/// `trusted_for` (a day with the default 30), so the exemption runs from the latest sign-in
/// give or take that much.
const TRUST_REFRESHES_PER_PERIOD: u32 = 30;

/// Whether a correct password must write the pair's trust document, given when the current one
/// was written (`None`: there is none) and how many other attempts the pair saw since then.
/// It must when there are attempts to reset, and when the exemption is on (`trusted_for` above
/// zero) and the trust is missing or older than a thirtieth of `trusted_for`. Otherwise the
/// document already says all a new one would, and the sign-in saves the write.
pub(super) fn trust_needs_writing(
    cfg: &ThrottleConfig,
    now: i64,
    trusted_at: Option<i64>,
    pair_since: usize,
) -> bool {
    if pair_since > 0 {
        return true;
    }
    if cfg.trusted_for.is_zero() {
        return false;
    }
    let refresh = millis(cfg.trusted_for / TRUST_REFRESHES_PER_PERIOD);
    trusted_at.is_none_or(|at| now.saturating_sub(at) >= refresh)
}

/// Whole seconds to put in `Retry-After` for a refusal that ends at `ready`: rounded up, at
/// least one.
pub fn retry_after_secs(now: i64, ready: i64) -> u64 {
    let ms = ready.saturating_sub(now).max(1);
    u64::try_from(ms.saturating_add(999) / 1000)
        .unwrap_or(1)
        .max(1)
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// The defaults the README documents, for the unit tests.
#[cfg(test)]
pub(super) fn defaults() -> ThrottleConfig {
    ThrottleConfig {
        enabled: true,
        free_failures: 5,
        delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(900),
        forget_after: Duration::from_secs(86_400),
        address_failures: 100,
        address_window: Duration::from_secs(86_400),
        account_failures: 100,
        account_window: Duration::from_secs(3600),
        trusted_for: Duration::from_secs(30 * 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ThrottleConfig {
        defaults()
    }

    #[test]
    fn the_pair_delay_is_free_then_doubles_up_to_its_maximum() {
        let c = cfg();
        let got: Vec<u64> = (0..=20).map(|f| pair_delay(&c, f).as_secs()).collect();
        assert_eq!(
            got,
            [
                0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900, 900, 900, 900
            ]
        );
        assert_eq!(pair_delay(&c, usize::MAX).as_secs(), 900, "no overflow");
    }

    #[test]
    fn an_attempt_waits_for_the_delay_after_the_latest_failure() {
        let c = cfg();
        let failures = vec![1_000, 2_000, 3_000, 4_000, 5_000];
        let seen = |now_pair: Vec<i64>| Seen {
            pair: now_pair,
            ..Seen::default()
        };
        assert_eq!(over(&c, 5_001, &seen(failures[..4].to_vec())), vec![]);
        assert_eq!(
            over(&c, 5_500, &seen(failures.clone())),
            vec![(Limit::Pair, 6_000)]
        );
        assert_eq!(over(&c, 6_000, &seen(failures)), vec![]);
    }

    #[test]
    fn the_address_and_account_budgets_count_other_attempts_and_end_with_their_windows() {
        let c = ThrottleConfig {
            address_failures: 3,
            account_failures: 3,
            ..cfg()
        };
        let newest = |n: i64| (0..n).map(|i| 10_000 - i * 1_000).collect::<Vec<i64>>();
        let at = |address: i64, account: i64, trusted| Seen {
            address: newest(address),
            account: newest(account),
            trusted,
            ..Seen::default()
        };
        assert_eq!(over(&c, 10_001, &at(2, 2, false)), vec![]);
        // The third newest (at 8 000) leaves the day-long address window first.
        assert_eq!(
            over(&c, 10_001, &at(3, 0, false)),
            vec![(Limit::Address, 8_000 + 86_400_000)]
        );
        assert_eq!(
            over(&c, 10_001, &at(0, 3, false)),
            vec![(Limit::Account, 8_000 + 3_600_000)]
        );
        assert_eq!(
            over(&c, 10_001, &at(0, 3, true)),
            vec![],
            "an address that signed in to the account is not held to the account's budget"
        );
        assert_eq!(
            over(&c, 10_001, &at(3, 0, true)).len(),
            1,
            "but it is held to its own"
        );
        let device = Seen {
            device: true,
            ..at(3, 2, true)
        };
        assert_eq!(
            over(&c, 10_001, &device),
            vec![],
            "a device the account's cookie vouches for is not held to the address's budget"
        );
        let spent = Seen {
            device: true,
            ..at(0, 3, true)
        };
        assert_eq!(
            over(&c, 10_001, &spent),
            vec![(Limit::Account, 8_000 + 3_600_000)],
            "but to its devices' account budget, trusted or not"
        );
        let delayed = Seen {
            pair: vec![9_000; 6],
            ..device
        };
        assert_eq!(
            over(&c, 10_001, &delayed),
            vec![(Limit::Pair, 9_000 + 2_000)],
            "and to its own delay"
        );
    }

    #[test]
    fn a_correct_password_rewrites_the_trust_only_when_it_says_something_new() {
        let c = cfg();
        let day = 86_400_000;
        let now = 100 * day;
        assert!(trust_needs_writing(&c, now, None, 0), "no trust yet");
        assert!(
            !trust_needs_writing(&c, now, Some(now - day + 1), 0),
            "written within the day, nothing to reset"
        );
        assert!(
            trust_needs_writing(&c, now, Some(now - day), 0),
            "a day old: refreshed"
        );
        assert!(
            trust_needs_writing(&c, now, Some(now - 1), 1),
            "failures since: the success resets them"
        );
        let off = ThrottleConfig {
            trusted_for: Duration::ZERO,
            ..cfg()
        };
        assert!(
            !trust_needs_writing(&off, now, None, 0),
            "with no exemption, only a reset needs the document"
        );
        assert!(trust_needs_writing(&off, now, None, 2));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        assert_eq!(retry_after_secs(0, 1), 1);
        assert_eq!(retry_after_secs(0, 1_000), 1);
        assert_eq!(retry_after_secs(0, 1_001), 2);
        assert_eq!(retry_after_secs(5_000, 4_000), 1);
        assert_eq!(retry_after_secs(0, 900_000), 900);
    }
}
