//! Property tests of the domain parsers: `Username`, `Email`, `FullName`, `Password`, `UserId`
//! and `SessionId` accept exactly what their rules say, normalise the same way for storing and
//! for lookup, are idempotent (a parsed value parses to itself), and never panic.
//!
//! 256 cases per property (2,304 in all); well under a second unoptimised.
use proptest::prelude::*;
use shared::domain::{Email, FullName, Password, SessionId, UserId, Username};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings a hostile client would try: anything, operator objects as text, look-alikes.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        "[ -~]{0,40}",
        Just("{\"$gt\":\"\"}".to_owned()),
        Just("$where".to_owned()),
        Just("jоhn".to_owned()), // Cyrillic o
        Just("jo\u{200b}hn".to_owned()),
        Just("admin\u{0}".to_owned()),
        Just("\u{202e}nimda".to_owned()),
    ]
}

fn whitespace() -> impl Strategy<Value = String> {
    "[ \t\n\r]{0,3}"
}

fn mixed_case(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn usernames_are_short_lowercase_safe_ascii_and_idempotent(raw in hostile()) {
        if let Ok(u) = Username::parse(&raw) {
            let s = u.as_ref();
            prop_assert!((3..=30).contains(&s.len()), "{s:?}");
            prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)), "{s:?}");
            prop_assert_eq!(s, Username::normalise_for_lookup(&raw), "stored and looked up alike");
            prop_assert_eq!(Username::parse(s), Ok(u.clone()));
        }
    }

    #[test]
    fn every_well_formed_username_is_accepted_in_any_case_and_padding(
        name in "[a-z0-9._-]{3,30}",
        mask in any::<u64>(),
        before in whitespace(),
        after in whitespace(),
    ) {
        let raw = format!("{before}{}{after}", mixed_case(&name, mask));
        prop_assert_eq!(Username::parse(&raw).map(|u| u.as_ref().to_owned()), Ok(name));
    }

    #[test]
    fn a_username_with_any_other_character_is_refused(
        prefix in "[a-z0-9]{1,10}",
        bad in any::<char>().prop_filter("not allowed", |c| {
            !(c.is_ascii_alphanumeric() || "._-".contains(*c) || c.is_whitespace())
        }),
        suffix in "[a-z0-9]{1,10}",
    ) {
        let raw = format!("{prefix}{bad}{suffix}");
        prop_assert!(Username::parse(&raw).is_err(), "{raw:?} was accepted");
    }

    #[test]
    fn emails_are_trimmed_lowercase_ascii_bounded_and_idempotent(raw in hostile()) {
        if let Ok(e) = Email::parse(&raw) {
            let s = e.as_ref();
            prop_assert!(s.is_ascii() && s.len() <= 254, "{s:?}");
            prop_assert_eq!(s, s.to_lowercase());
            prop_assert_eq!(s, s.trim());
            prop_assert!(!s.contains('"') && !s.contains('['));
            let (_, domain) = s.rsplit_once('@').expect("an address has an @");
            prop_assert!(domain.contains('.'));
            prop_assert_eq!(s, Email::normalise_for_lookup(&raw), "stored and looked up alike");
            prop_assert_eq!(Email::parse(s), Ok(e.clone()));
        }
    }

    #[test]
    fn ordinary_addresses_are_accepted_and_lowercased(
        local in "[a-zA-Z0-9][a-zA-Z0-9._+-]{0,20}[a-zA-Z0-9]",
        labels in prop::collection::vec("[a-zA-Z0-9]{1,12}", 1..4),
        tld in "[a-zA-Z]{2,6}",
        before in whitespace(),
        after in whitespace(),
    ) {
        prop_assume!(!local.contains(".."));
        let address = format!("{local}@{}.{tld}", labels.join("."));
        let parsed = Email::parse(&format!("{before}{address}{after}"));
        prop_assert_eq!(parsed.map(|e| e.as_ref().to_owned()), Ok(address.to_lowercase()));
    }

    #[test]
    fn full_names_are_trimmed_bounded_printable_and_idempotent(raw in hostile()) {
        if let Ok(n) = FullName::parse(&raw) {
            let s = n.as_ref();
            prop_assert!((1..=100).contains(&s.chars().count()));
            prop_assert_eq!(s, s.trim());
            prop_assert!(!s.chars().any(char::is_control));
            prop_assert_eq!(FullName::parse(s), Ok(n.clone()));
        }
    }

    #[test]
    fn names_in_any_script_within_the_limit_are_accepted(
        name in "\\PC{1,100}",
    ) {
        let trimmed = name.trim();
        prop_assume!(!trimmed.is_empty());
        prop_assert_eq!(FullName::parse(&name).map(|n| n.as_ref().to_owned()), Ok(trimmed.to_owned()));
    }

    #[test]
    fn passwords_are_8_to_128_characters_kept_exactly_and_never_printed(raw in prop_oneof![
        any::<String>(),
        "\\PC{0,140}",
        "[ ]{0,10}[a-z]{0,130}[ ]{0,10}",
    ]) {
        let chars = raw.chars().count();
        match Password::parse(raw.clone()) {
            Ok(p) => {
                prop_assert!((8..=128).contains(&chars));
                prop_assert_eq!(p.expose(), raw.as_str(), "never trimmed or truncated");
                let printed = format!("{p:?}");
                prop_assert!(chars < 4 || !printed.contains(&raw));
            }
            Err(_) => prop_assert!(!(8..=128).contains(&chars)),
        }
    }

    #[test]
    fn ids_parse_only_from_their_exact_shapes(raw in prop_oneof![
        hostile(),
        "[0-9a-fA-F]{24}",
        "[0-9a-f]{32}",
        "[0-9a-fA-F]{30,34}",
    ]) {
        let hex = |n: usize| raw.len() == n && raw.bytes().all(|b| b.is_ascii_hexdigit());
        match UserId::parse(&raw) {
            Ok(id) => {
                prop_assert!(hex(24));
                prop_assert_eq!(id.to_string(), raw.to_ascii_lowercase());
            }
            Err(_) => prop_assert!(!hex(24)),
        }
        let session_shape = hex(32) && raw.bytes().all(|b| !b.is_ascii_uppercase());
        prop_assert_eq!(SessionId::parse(&raw).is_ok(), session_shape);
    }
}
