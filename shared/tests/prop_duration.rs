//! Property tests of the `ms`-syntax duration parser, complementing the ones in
//! `src/duration.rs` (round trips of number + unit, decimals, format/parse identity, arbitrary
//! strings, bare numbers): padding, case, signs, zero, unknown units, ordering, length limits
//! and how much of the input an error may quote.
//!
//! 256 cases per property (2,816 in all); well under a second.
use std::time::Duration;

use proptest::prelude::*;
use shared::duration::{DurationError, MAX_INPUT_LEN, format_duration, parse_duration};

const UNITS: &[&str] = &[
    "ms",
    "msec",
    "msecs",
    "millisecond",
    "milliseconds",
    "s",
    "sec",
    "secs",
    "second",
    "seconds",
    "m",
    "min",
    "mins",
    "minute",
    "minutes",
    "h",
    "hr",
    "hrs",
    "hour",
    "hours",
    "d",
    "day",
    "days",
    "w",
    "week",
    "weeks",
    "y",
    "yr",
    "yrs",
    "year",
    "years",
];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn unit() -> impl Strategy<Value = &'static str> {
    prop::sample::select(UNITS)
}

/// A non-zero decimal as people write them: `5`, `2.5`, `.5`, `007`.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u64..1_000_000).prop_map(|n| n.to_string()),
        (0u64..10_000, 1u32..100).prop_map(|(i, f)| format!("{i}.{f}")),
        (1u32..1000).prop_map(|f| format!(".{f}")),
        (1u64..100).prop_map(|n| format!("00{n}")),
    ]
}

fn valid() -> impl Strategy<Value = String> {
    (
        number(),
        prop_oneof![Just(""), Just(" "), Just("\t")],
        unit(),
    )
        .prop_map(|(n, sep, u)| format!("{n}{sep}{u}"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn surrounding_whitespace_never_changes_the_value(
        input in valid(),
        before in "[ \t\n\r\u{a0}\u{2003}]{0,3}",
        after in "[ \t\n\r\u{a0}\u{2003}]{0,3}",
    ) {
        let padded = format!("{before}{input}{after}");
        prop_assume!(padded.chars().count() <= MAX_INPUT_LEN);
        prop_assert_eq!(parse_duration(&padded), parse_duration(&input));
    }

    #[test]
    fn units_are_case_insensitive(input in valid()) {
        prop_assert_eq!(parse_duration(&input.to_uppercase()), parse_duration(&input));
    }

    #[test]
    fn a_minus_sign_is_always_negative_and_a_plus_sign_is_never_a_number(input in valid()) {
        prop_assert_eq!(parse_duration(&format!("-{input}")), Err(DurationError::Negative));
        let plus = parse_duration(&format!("+{input}"));
        prop_assert!(matches!(plus, Err(DurationError::NotANumber { .. })), "{plus:?}");
    }

    #[test]
    fn zero_in_any_spelling_and_unit_is_refused(
        zeros in "0{1,5}(\\.0{1,5})?",
        unit in unit(),
    ) {
        prop_assert_eq!(parse_duration(&format!("{zeros}{unit}")), Err(DurationError::Zero));
    }

    #[test]
    fn unknown_units_are_named_and_refused(
        n in number(),
        word in "[a-zA-Z]{1,12}",
    ) {
        prop_assume!(!UNITS.iter().any(|u| u.eq_ignore_ascii_case(&word)));
        let e = parse_duration(&format!("{n}{word}")).expect_err("unknown unit");
        prop_assert!(matches!(e, DurationError::UnknownUnit { .. }), "{e:?}");
    }

    #[test]
    fn exponents_signs_and_foreign_digits_are_never_numbers(
        n in 1u32..1000,
        unit in unit(),
        junk in prop_oneof![Just("e3"), Just("E-1"), Just("_000"), Just(",5"), Just("٥"), Just("x")],
    ) {
        let (inside, ahead) = (format!("{n}{junk}{unit}"), format!("{junk}{n}{unit}"));
        prop_assert!(parse_duration(&inside).is_err(), "{inside:?}");
        prop_assert!(parse_duration(&ahead).is_err(), "{ahead:?}");
    }

    #[test]
    fn more_of_a_unit_is_never_shorter(
        a in 1u64..1_000_000,
        b in 1u64..1_000_000,
        unit in unit(),
    ) {
        let (da, db) = (parse_duration(&format!("{a}{unit}")), parse_duration(&format!("{b}{unit}")));
        prop_assert_eq!(a.cmp(&b), da.expect("a").cmp(&db.expect("b")));
    }

    #[test]
    fn long_and_short_unit_names_mean_the_same(n in 1u64..100_000) {
        for group in [&UNITS[0..5], &UNITS[5..10], &UNITS[10..15], &UNITS[15..20], &UNITS[20..23], &UNITS[23..26], &UNITS[26..31]] {
            let first = parse_duration(&format!("{n}{}", group[0]));
            for name in group {
                prop_assert_eq!(parse_duration(&format!("{n} {name}")), first.clone());
            }
        }
    }

    #[test]
    fn overlong_inputs_are_refused_before_parsing(
        input in "[0-9a-z .]{101,300}",
    ) {
        let len = input.chars().count();
        prop_assert_eq!(parse_duration(&input), Err(DurationError::TooLong { len }));
    }

    #[test]
    fn errors_quote_at_most_a_short_excerpt(input in "[ -~]{0,100}") {
        if let Err(e) = parse_duration(&input) {
            let message = e.to_string();
            // The longest fixed text plus 24 quoted characters (escaped at most 2x) and an ellipsis.
            prop_assert!(message.chars().count() <= 160, "{message}");
            if input.trim().chars().count() > 30 {
                prop_assert!(!message.contains(input.trim()), "{message}");
            }
        }
    }

    #[test]
    fn formatting_any_duration_gives_text_that_parses_back(nanos in 1u64..u64::MAX) {
        let d = Duration::from_nanos(nanos);
        let text = format_duration(d);
        prop_assert!(text.len() <= 40, "{text}");
        prop_assert_eq!(parse_duration(&text), Ok(d));
    }
}
