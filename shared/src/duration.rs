//! Durations written the way the Node `ms` package reads them (`15m`, `10d`, `2.5 hrs`, `1y`).
//!
//! The Node version of this service documented its token lifetimes in `ms` syntax, so existing
//! deployments already have values like `ACCESS_TOKEN_EXPIRY=15m` and `REFRESH_TOKEN_EXPIRY=10d`.
//! [`parse_duration`] accepts exactly that grammar, with one deliberate difference: a bare number
//! is rejected. `ms` reads `900` as milliseconds while Node's `jsonwebtoken` reads it as seconds,
//! so a bare number in an old `.env` file means different things depending on who reads it.
//!
//! Arithmetic is exact: the number is kept as a decimal fraction and multiplied by the unit in
//! nanoseconds, so `0.1s` is exactly 100 ms and `2.5 hrs` exactly 9000 s (no `f64` rounding).
//! [`format_duration`] writes a duration back in the same syntax, for messages.

use std::time::Duration;

/// Inputs longer than this are rejected outright; no legitimate duration needs more, and it keeps
/// error messages and work bounded whatever an environment variable contains.
pub const MAX_INPUT_LEN: usize = 100;

/// Fraction digits beyond this many are dropped before multiplying: even for the largest unit
/// (a year, about 3.2e16 ns) an 18th decimal place is worth less than a nanosecond, and the cap
/// keeps the fixed-point arithmetic inside `u128`.
const MAX_FRACTION_DIGITS: usize = 18;

/// How much of a rejected input an error message may quote.
const MAX_QUOTED_LEN: usize = 24;

const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000 * NANOS_PER_MILLI;
const NANOS_PER_MIN: u128 = 60 * NANOS_PER_SEC;
const NANOS_PER_HOUR: u128 = 60 * NANOS_PER_MIN;
const NANOS_PER_DAY: u128 = 24 * NANOS_PER_HOUR;
const NANOS_PER_WEEK: u128 = 7 * NANOS_PER_DAY;
/// `ms` counts a year as 365.25 days; we do the same so values mean what they meant in Node.
const NANOS_PER_YEAR: u128 = NANOS_PER_DAY * 36525 / 100;

/// Why a string is not a duration. Messages quote at most a short prefix of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("is empty: expected a number and a unit, e.g. 15m")]
    Empty,
    #[error("is too long to be a duration ({len} characters; at most {MAX_INPUT_LEN})")]
    TooLong { len: usize },
    #[error("a bare number is ambiguous: add a unit, e.g. 15m")]
    BareNumber,
    #[error("must be positive, not negative")]
    Negative,
    #[error("must be greater than zero")]
    Zero,
    #[error("{input:?} does not start with a number: expected e.g. 15m, 10d or 2.5 hrs")]
    NotANumber { input: String },
    #[error(
        "unknown unit {unit:?}: use ms, s, m, h, d, w or y (or a long form such as minutes or days)"
    )]
    UnknownUnit { unit: String },
    #[error("is too large to represent")]
    Overflow,
}

/// A unit and its length in nanoseconds.
struct Unit {
    names: &'static [&'static str],
    nanos: u128,
}

/// The unit names `ms` accepts, matched case-insensitively.
const UNITS: &[Unit] = &[
    Unit {
        names: &["ms", "msec", "msecs", "millisecond", "milliseconds"],
        nanos: NANOS_PER_MILLI,
    },
    Unit {
        names: &["s", "sec", "secs", "second", "seconds"],
        nanos: NANOS_PER_SEC,
    },
    Unit {
        names: &["m", "min", "mins", "minute", "minutes"],
        nanos: NANOS_PER_MIN,
    },
    Unit {
        names: &["h", "hr", "hrs", "hour", "hours"],
        nanos: NANOS_PER_HOUR,
    },
    Unit {
        names: &["d", "day", "days"],
        nanos: NANOS_PER_DAY,
    },
    Unit {
        names: &["w", "week", "weeks"],
        nanos: NANOS_PER_WEEK,
    },
    Unit {
        names: &["y", "yr", "yrs", "year", "years"],
        nanos: NANOS_PER_YEAR,
    },
];

/// Parses `<number><optional whitespace><unit>`, e.g. `15m`, `10 days`, `2.5 hrs`, ` 7 D `.
///
/// The number is a non-negative decimal (`5`, `2.5`, `.5`); no sign, exponent, `NaN` or
/// `Infinity`. Units are case-insensitive: `ms`/`msec(s)`/`millisecond(s)`, `s`/`sec(s)`/
/// `second(s)`, `m`/`min(s)`/`minute(s)`, `h`/`hr(s)`/`hour(s)`, `d`/`day(s)`, `w`/`week(s)`,
/// `y`/`yr(s)`/`year(s)` (365.25 days). Leading and trailing whitespace is ignored.
///
/// Rejected: empty input, a bare number, zero (including values that round to zero
/// nanoseconds), negative values, unknown units, values beyond [`Duration::MAX`], and inputs
/// longer than [`MAX_INPUT_LEN`] characters.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let char_count = s.chars().count();
    if char_count > MAX_INPUT_LEN {
        return Err(DurationError::TooLong { len: char_count });
    }
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Some(rest) = s.strip_prefix('-') {
        // Only call it negative when it would otherwise have been a duration-looking value;
        // `-x` is just garbage.
        if rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return Err(DurationError::Negative);
        }
    }

    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, rest) = s.split_at(number_len);
    let Some((int_digits, frac_digits)) = split_decimal(number) else {
        return Err(DurationError::NotANumber { input: quote(s) });
    };
    let unit_name = rest.trim_start();
    if unit_name.is_empty() {
        return Err(DurationError::BareNumber);
    }
    let Some(unit) = UNITS
        .iter()
        .find(|u| u.names.iter().any(|n| n.eq_ignore_ascii_case(unit_name)))
    else {
        return Err(DurationError::UnknownUnit {
            unit: quote(unit_name),
        });
    };

    let nanos = scale(int_digits, frac_digits, unit.nanos)?;
    if nanos == 0 {
        return Err(DurationError::Zero);
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| DurationError::Overflow)?;
    // The remainder is below one second, so it always fits.
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::new(secs, subsec))
}

/// Splits `12.5` into `("12", "5")`; `.5` into `("", "5")`. `ms` accepts a leading dot but not a
/// trailing one (`5.`), nor more than one dot, so neither do we.
fn split_decimal(number: &str) -> Option<(&str, &str)> {
    let (int, frac) = match number.split_once('.') {
        Some((int, frac)) => {
            if frac.is_empty() || frac.contains('.') {
                return None;
            }
            (int, frac)
        }
        None => (number, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    Some((int, frac))
}

/// `int.frac * unit_nanos`, truncated to whole nanoseconds, in fixed point.
fn scale(int_digits: &str, frac_digits: &str, unit_nanos: u128) -> Result<u128, DurationError> {
    let frac_digits = frac_digits.trim_end_matches('0');
    let frac_digits = &frac_digits[..frac_digits.len().min(MAX_FRACTION_DIGITS)];
    // Leading zeros carry no value and would otherwise count against the u128 range.
    let int_digits = int_digits.trim_start_matches('0');

    let mut numerator: u128 = 0;
    for d in int_digits.bytes().chain(frac_digits.bytes()) {
        numerator = numerator
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(d - b'0')))
            .ok_or(DurationError::Overflow)?;
    }
    // frac_digits.len() <= 18, so this power of ten always fits (10^18 < 2^64).
    let denominator = 10u128.pow(frac_digits.len() as u32);
    numerator
        .checked_mul(unit_nanos)
        .map(|n| n / denominator)
        .ok_or(DurationError::Overflow)
}

/// A short, escaped excerpt of user input for error messages.
fn quote(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_QUOTED_LEN).collect();
    if s.chars().count() > MAX_QUOTED_LEN {
        out.push('…');
    }
    out
}

/// Writes `d` in the syntax [`parse_duration`] reads, using the largest unit that represents it
/// exactly: `15m`, `10d`, `90s`, `1500ms`, `0.5ms`. Weeks and years are never used because
/// `ms` users think in days. `parse_duration(&format_duration(d)) == Ok(d)` for every non-zero
/// `d`; zero formats as `0s`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    for (unit_nanos, name) in [
        (NANOS_PER_DAY, "d"),
        (NANOS_PER_HOUR, "h"),
        (NANOS_PER_MIN, "m"),
        (NANOS_PER_SEC, "s"),
        (NANOS_PER_MILLI, "ms"),
    ] {
        if nanos.is_multiple_of(unit_nanos) {
            return format!("{}{name}", nanos / unit_nanos);
        }
    }
    // Not a whole number of milliseconds: milliseconds with up to six decimals is exact.
    let whole = nanos / NANOS_PER_MILLI;
    let frac = format!("{:06}", nanos % NANOS_PER_MILLI);
    format!("{whole}.{}ms", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn accepts_the_ms_package_syntax() {
        let cases: &[(&str, Duration)] = &[
            ("1d", secs(86_400)),
            ("15m", secs(900)),
            ("10 days", secs(864_000)),
            ("2.5 hrs", secs(9_000)),
            ("1y", secs(31_557_600)),
            ("100ms", Duration::from_millis(100)),
            ("1.5h", secs(5_400)),
            ("  7 D ", secs(604_800)),
            ("1w", secs(604_800)),
            ("2 weeks", secs(1_209_600)),
            ("1 week", secs(604_800)),
            ("10s", secs(10)),
            ("1sec", secs(1)),
            ("3 secs", secs(3)),
            ("1 second", secs(1)),
            ("2 seconds", secs(2)),
            ("1min", secs(60)),
            ("5 mins", secs(300)),
            ("1 minute", secs(60)),
            ("30 minutes", secs(1_800)),
            ("1hr", secs(3_600)),
            ("1 hour", secs(3_600)),
            ("12 hours", secs(43_200)),
            ("1 day", secs(86_400)),
            ("1yr", secs(31_557_600)),
            ("2 yrs", secs(63_115_200)),
            ("1 year", secs(31_557_600)),
            ("2 years", secs(63_115_200)),
            ("1msec", Duration::from_millis(1)),
            ("5 msecs", Duration::from_millis(5)),
            ("1 millisecond", Duration::from_millis(1)),
            ("250 milliseconds", Duration::from_millis(250)),
            ("0.1s", Duration::from_millis(100)),
            (".5s", Duration::from_millis(500)),
            ("0.5ms", Duration::from_micros(500)),
            ("1.000001ms", Duration::from_nanos(1_000_001)),
            ("15M", secs(900)),
            ("10DAYS", secs(864_000)),
            ("2.5 HrS", secs(9_000)),
            ("007m", secs(420)),
            ("1.50h", secs(5_400)),
            ("1\t d", secs(86_400)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Ok(*expected), "input {input:?}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_positive_duration_with_a_unit() {
        use DurationError::*;
        type Check = fn(&DurationError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| *e == Empty),
            ("   ", |e| *e == Empty),
            ("900", |e| *e == BareNumber),
            ("  15 ", |e| *e == BareNumber),
            ("2.5", |e| *e == BareNumber),
            ("0s", |e| *e == Zero),
            ("0", |e| *e == BareNumber),
            ("0.0m", |e| *e == Zero),
            ("0.0000000001ms", |e| *e == Zero),
            ("-5m", |e| *e == Negative),
            ("-.5m", |e| *e == Negative),
            ("+5m", |e| matches!(e, NotANumber { .. })),
            (
                "5 fortnights",
                |e| matches!(e, UnknownUnit { unit } if unit == "fortnights"),
            ),
            ("5mm", |e| matches!(e, UnknownUnit { .. })),
            ("5 m s", |e| matches!(e, UnknownUnit { .. })),
            ("m", |e| matches!(e, NotANumber { .. })),
            ("NaN", |e| matches!(e, NotANumber { .. })),
            ("NaNms", |e| matches!(e, NotANumber { .. })),
            ("Infinity", |e| matches!(e, NotANumber { .. })),
            ("infs", |e| matches!(e, NotANumber { .. })),
            ("inf s", |e| matches!(e, NotANumber { .. })),
            ("1e3ms", |e| matches!(e, UnknownUnit { .. })),
            ("5.m", |e| matches!(e, NotANumber { .. })),
            ("1.2.3s", |e| matches!(e, NotANumber { .. })),
            ("..5s", |e| matches!(e, NotANumber { .. })),
            ("١٥m", |e| matches!(e, NotANumber { .. })),
            ("99999999999999999999999y", |e| *e == Overflow),
            ("584942417356y", |e| *e == Overflow),
            ("18446744073709551616s", |e| *e == Overflow),
        ];
        for (input, check) in cases {
            match parse_duration(input) {
                Ok(d) => panic!("{input:?} was accepted as {d:?}"),
                Err(e) => assert!(check(&e), "{input:?} gave the wrong error: {e:?}"),
            }
        }
    }

    #[test]
    fn the_largest_duration_is_accepted_and_one_more_second_is_not() {
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Ok(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_duration("18446744073709551616s"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn very_long_inputs_are_rejected_without_being_echoed() {
        let input = format!("{}m", "9".repeat(5_000));
        let err = parse_duration(&input).unwrap_err();
        assert_eq!(err, DurationError::TooLong { len: 5_001 });
        assert!(err.to_string().len() < 80, "{err}");

        let junk = format!("1 {}", "x".repeat(90));
        let message = parse_duration(&junk).unwrap_err().to_string();
        assert!(!message.contains(&"x".repeat(30)), "{message}");
    }

    #[test]
    fn long_fractions_keep_nanosecond_precision() {
        assert_eq!(
            parse_duration("1.0000000000000000000000000001s"),
            Ok(secs(1))
        );
        assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn the_bare_number_message_tells_the_user_what_to_do() {
        assert_eq!(
            DurationError::BareNumber.to_string(),
            "a bare number is ambiguous: add a unit, e.g. 15m"
        );
    }

    #[test]
    fn format_uses_the_largest_exact_unit() {
        let cases = [
            (secs(900), "15m"),
            (secs(864_000), "10d"),
            (secs(90), "90s"),
            (secs(5_400), "90m"),
            (secs(7_200), "2h"),
            (Duration::from_millis(1_500), "1500ms"),
            (Duration::from_micros(500), "0.5ms"),
            (Duration::from_nanos(1), "0.000001ms"),
            (Duration::ZERO, "0s"),
            (secs(31_557_600), "8766h"),
        ];
        for (d, expected) in cases {
            assert_eq!(format_duration(d), expected);
        }
    }

    fn unit_name() -> impl Strategy<Value = (&'static str, u128)> {
        let all: Vec<(&'static str, u128)> = UNITS
            .iter()
            .flat_map(|u| u.names.iter().map(move |n| (*n, u.nanos)))
            .collect();
        proptest::sample::select(all)
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
        #[test]
        fn any_formatted_number_and_unit_round_trips(
            n in 1u64..1_000_000,
            (unit, nanos) in unit_name(),
            space in prop_oneof![Just(""), Just(" "), Just("  ")],
            case_mask in any::<u64>(),
        ) {
            let input = format!("{n}{space}{}", mixed_case(unit, case_mask));
            let expected = u128::from(n) * nanos;
            let parsed = parse_duration(&input);
            prop_assert_eq!(parsed.map(|d| d.as_nanos()), Ok(expected), "input {:?}", input);
        }

        #[test]
        fn decimal_tenths_round_trip(
            tenths in 1u64..100_000,
            (unit, nanos) in unit_name(),
        ) {
            let input = format!("{}.{}{unit}", tenths / 10, tenths % 10);
            let expected = u128::from(tenths) * nanos / 10;
            prop_assert_eq!(parse_duration(&input).map(|d| d.as_nanos()), Ok(expected));
        }

        #[test]
        fn format_then_parse_is_the_identity(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assume!(!d.is_zero());
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn parsing_arbitrary_strings_never_panics(s in any::<String>()) {
            let _ = parse_duration(&s);
        }

        #[test]
        fn parsing_duration_shaped_strings_never_panics(s in "[ \\t]{0,2}-?[0-9.]{0,40}[ ]{0,3}[a-zA-Z]{0,14}[ ]{0,2}") {
            if let Err(e) = parse_duration(&s) {
                prop_assert!(e.to_string().chars().count() < 160);
            }
        }

        #[test]
        fn bare_numbers_are_always_rejected(n in "[0-9]{1,30}(\\.[0-9]{1,10})?") {
            prop_assert_eq!(parse_duration(&n), Err(DurationError::BareNumber));
        }
    }
}
