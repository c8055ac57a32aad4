//! Phone numbers: parsed and validated with libphonenumber's rules (the `phonenumber` crate),
//! normalised to E.164. The E.164 form is what state is keyed by, so one number written two ways
//! (`+44 7400 123456`, `+447400123456`) counts once; only the masked form reaches a log.

use std::fmt;

use serde::Deserialize;

/// How the phone number is written in the upstream `login_hint`.
///
/// IPification's own clients send digits only; the seed documents E.164. Which one the upstream
/// accepts is unconfirmed, so it is a per-server setting (`auth_servers[].login_hint_format`,
/// README.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginHintFormat {
    #[default]
    Digits,
    E164,
}

/// A valid phone number, in E.164. `Debug` and `Display` print it masked.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    country_code: u16,
    region: Option<String>,
}

impl PhoneNumber {
    /// Accepts an international number: `+`, the country code, the national number, with ASCII
    /// spaces, dashes, dots or parentheses between digits if the writer likes them. Refuses what
    /// is not a valid number for its country, and anything else (other scripts' digits, control
    /// characters, surrounding whitespace, a missing `+`) rather than guessing what was meant.
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.chars().any(|c| !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'))) {
            return Err(
                "login_hint may contain only '+', ASCII digits, spaces, dashes, dots and parentheses".into(),
            );
        }
        if !input.starts_with('+') {
            return Err(
                "login_hint must be an international number starting with '+' and the country code, e.g. +447400123456"
                    .into(),
            );
        }
        if input.ends_with(' ') || input[1..].starts_with(|c: char| !c.is_ascii_digit()) {
            return Err("login_hint must start with '+' and a digit and end with a digit".into());
        }
        let digits = input.bytes().filter(u8::is_ascii_digit).count();
        if !(2..=15).contains(&digits) {
            return Err("login_hint must have between 2 and 15 digits (E.164)".into());
        }
        let number =
            phonenumber::parse(None, input).map_err(|_| "login_hint is not a phone number".to_owned())?;
        if !number.is_valid() {
            return Err("login_hint is not a valid phone number for its country".into());
        }
        Ok(Self {
            e164: number.format().mode(phonenumber::Mode::E164).to_string(),
            country_code: number.code().value(),
            region: number.country().id().map(|id| id.as_ref().to_owned()),
        })
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The country calling code (44 for +44…): safe to log, useful to group by.
    pub fn country_code(&self) -> u16 {
        self.country_code
    }

    /// The ISO 3166-1 region (`GB`), when the number belongs to exactly one.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The number as the upstream `login_hint` wants it.
    pub fn login_hint(&self, format: LoginHintFormat) -> &str {
        match format {
            LoginHintFormat::E164 => &self.e164,
            LoginHintFormat::Digits => &self.e164[1..],
        }
    }

    /// `+44********56`: enough to tell numbers apart in a log, not enough to call one.
    pub fn masked(&self) -> String {
        mask(&self.e164)
    }
}

/// The country calling code of an E.164 number that [`PhoneNumber::parse`] accepted before (the
/// state store keeps only the E.164 text): calling codes are prefix-free, so it is the one
/// 1–3 digit prefix libphonenumber's metadata knows. A map lookup, not the pattern matching of a
/// second parse (BENCHMARKS.md, "Tuning log").
pub fn country_code_of(e164: &str) -> Option<u16> {
    let digits = e164.strip_prefix('+').filter(|d| d.starts_with(|c: char| matches!(c, '1'..='9')))?;
    (1..=3)
        .filter_map(|len| digits.get(..len)?.parse::<u16>().ok())
        .find(|code| phonenumber::metadata::DATABASE.by_code(code).is_some())
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
    fn accepts_valid_numbers_and_normalises_them() {
        let phone = PhoneNumber::parse("+447400123456").unwrap();
        assert_eq!(phone.e164(), "+447400123456");
        assert_eq!((phone.country_code(), phone.region()), (44, Some("GB")));
        assert_eq!(phone.login_hint(LoginHintFormat::Digits), "447400123456");
        assert_eq!(phone.login_hint(LoginHintFormat::E164), "+447400123456");
        for same in ["+44 7400 123456", "+44-7400-123-456", "+44 (7400) 123.456"] {
            assert_eq!(PhoneNumber::parse(same).unwrap(), phone, "{same} is the same number");
        }
        assert_eq!(PhoneNumber::parse("+1 415 555 2671").unwrap().region(), Some("US"));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "447400123456",
            "+0447400123456",
            "+1234567890123456",
            "+4477009001",
            "+44740012345645",
            "+４４7400123456",
            "+٤٤7400123456",
            "+447400123456\0",
            "+447400123456\r\n",
            " +447400123456",
            "+447400123456 ",
            "++447400123456",
            "+ 447400123456",
            "+",
            "+1",
            "",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn masks_all_but_the_edges() {
        let phone = PhoneNumber::parse("+447400123456").unwrap();
        assert_eq!(phone.masked(), "+44********56");
        assert_eq!(format!("{phone:?}"), "PhoneNumber(+44********56)");
        assert_eq!(format!("{phone}"), "+44********56");
        assert_eq!(mask("+1234"), "+****");
    }

    #[test]
    fn reads_the_country_code_of_a_stored_number_as_a_parse_does() {
        for number in [
            "+447400123456",
            "+14155552671",
            "+79123456789",
            "+8613812345678",
            "+353851234567",
            "+3584012345678",
            "+971501234567",
            "+2348031234567",
            "+6421234567",
            "+881612345678",
        ] {
            let parsed = PhoneNumber::parse(number).unwrap_or_else(|e| panic!("{number}: {e}"));
            assert_eq!(country_code_of(parsed.e164()), Some(parsed.country_code()), "{number}");
        }
        for not_stored in ["", "+", "447400123456", "+0123", "+\u{a0}44"] {
            assert_eq!(country_code_of(not_stored), None, "{not_stored:?}");
        }
    }
}
