//! Phone numbers in E.164 (`+` then 2–15 digits, the first not 0): the only form the API takes,
//! the form state is keyed by, and the source of the masked form that logs may carry.

use std::fmt;

use crate::config::LoginHintFormat;

/// A phone number known to be in E.164 form. `Debug` and `Display` print it masked.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts exactly `+` followed by 2–15 ASCII digits with a leading non-zero digit. Spaces,
    /// dashes, other scripts' digits and surrounding whitespace are refused rather than repaired,
    /// so the same number can never be written two ways.
    pub fn parse_e164(input: &str) -> Result<Self, String> {
        let Some(digits) = input.strip_prefix('+') else {
            return Err("login_hint must be a phone number in E.164 form, starting with '+' and the country code, e.g. +447700900123".into());
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("login_hint must contain only ASCII digits after the '+'".into());
        }
        if digits.starts_with('0') {
            return Err("login_hint: a country code never starts with 0".into());
        }
        if !(2..=15).contains(&digits.len()) {
            return Err("login_hint must have between 2 and 15 digits (E.164)".into());
        }
        Ok(Self(input.to_owned()))
    }

    pub fn e164(&self) -> &str {
        &self.0
    }

    /// The number as the upstream `login_hint` wants it.
    pub fn login_hint(&self, format: LoginHintFormat) -> &str {
        match format {
            LoginHintFormat::E164 => &self.0,
            LoginHintFormat::Digits => &self.0[1..],
        }
    }

    /// `+44******23`: enough to tell numbers apart in a log, not enough to call one.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Masks any phone-like string, keeping the `+`, the first two and last two digits.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let plus = usize::from(chars.first() == Some(&'+'));
    let digits = chars.len() - plus;
    if digits <= 4 {
        return format!("{}{}", if plus == 1 { "+" } else { "" }, "*".repeat(digits));
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < plus + 2 || i >= chars.len() - 2 { *c } else { '*' })
        .collect()
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164() {
        let phone = PhoneNumber::parse_e164("+447700900123").unwrap();
        assert_eq!(phone.e164(), "+447700900123");
        assert_eq!(phone.login_hint(LoginHintFormat::Digits), "447700900123");
        assert_eq!(phone.login_hint(LoginHintFormat::E164), "+447700900123");
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "447700900123",
            "+0447700900123",
            "+1234567890123456",
            "+44 7700 900123",
            "+44-7700-900123",
            "+４４7700900123",
            "+٤٤7700900123",
            "+447700900123\0",
            "+447700900123\r\n",
            " +447700900123",
            "+447700900123 ",
            "+",
            "+1",
            "",
        ] {
            assert!(PhoneNumber::parse_e164(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn masks_all_but_the_edges() {
        let phone = PhoneNumber::parse_e164("+447700900123").unwrap();
        assert_eq!(phone.masked(), "+44********23");
        assert_eq!(format!("{phone:?}"), "PhoneNumber(+44********23)");
        assert_eq!(mask("+1234"), "+****");
    }
}
