//! Phone numbers: parsed and validated with libphonenumber's rules (the `phonenumber` crate),
//! normalised to E.164. The E.164 form is what state is keyed by, so one number written two ways
//! (`+44 7400 123456`, `+447400123456`) counts once; only the masked form reaches a log.
//!
//! [`NumberPolicy`] is which numbers a client pays an SMS for: its countries, and the number
//! types an SMS really reaches. SMS pumping picks premium-rate, satellite and other
//! global-service ranges (`../shared/reference/abuse-and-limits.md`); real users verify mobiles.

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

/// libphonenumber's number types (`mobile`, `fixed_line`, `premium_rate`, …; snake case in the
/// config and on the wire).
pub use phonenumber::Type as NumberType;

/// A valid phone number, in E.164. `Debug` and `Display` print it masked.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    country_code: u16,
    region: Option<String>,
    number_type: NumberType,
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
        // What `is_valid` checks (its metadata knows a pattern for the number), with the type it finds.
        let number_type = number.number_type(&phonenumber::metadata::DATABASE);
        if number_type == NumberType::Unknown {
            return Err("login_hint is not a valid phone number for its country".into());
        }
        Ok(Self {
            e164: number.format().mode(phonenumber::Mode::E164).to_string(),
            country_code: number.code().value(),
            region: number.country().id().map(|id| id.as_ref().to_owned()),
            number_type,
        })
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The country calling code (44 for +44…): safe to log, useful to group by.
    pub fn country_code(&self) -> u16 {
        self.country_code
    }

    /// The ISO 3166-1 region (`GB`), when the number belongs to exactly one. The global-service
    /// codes (+800, +808, +870, +878, +881, +882, +883, +888, +979: libphonenumber's region `001`)
    /// belong to none.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// [`Self::region`], with the global-service codes as one region of their own,
    /// [`GLOBAL_REGION`]: what the country caps and the fraud guard count by.
    pub fn region_or_global(&self) -> &str {
        self.region().unwrap_or(GLOBAL_REGION)
    }

    /// What kind of line the number is, by libphonenumber's patterns for its country.
    pub fn number_type(&self) -> NumberType {
        self.number_type
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
/// The region libphonenumber gives the global-service codes (+800, +881, …), which have none.
pub const GLOBAL_REGION: &str = "001";

/// The region of a stored E.164 number as [`PhoneNumber::region_or_global`] gives it (a parse:
/// for numbers a store kept without their region).
pub fn region_of(e164: &str) -> String {
    PhoneNumber::parse(e164).map_or(GLOBAL_REGION.to_owned(), |phone| phone.region_or_global().to_owned())
}

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

/// The name of a number type as the config and the API write it.
pub fn number_type_name(kind: NumberType) -> &'static str {
    match kind {
        NumberType::FixedLine => "fixed_line",
        NumberType::Mobile => "mobile",
        NumberType::FixedLineOrMobile => "fixed_line_or_mobile",
        NumberType::TollFree => "toll_free",
        NumberType::PremiumRate => "premium_rate",
        NumberType::SharedCost => "shared_cost",
        NumberType::PersonalNumber => "personal_number",
        NumberType::Voip => "voip",
        NumberType::Pager => "pager",
        NumberType::Uan => "uan",
        NumberType::Emergency => "emergency",
        NumberType::Voicemail => "voicemail",
        NumberType::ShortCode => "short_code",
        NumberType::StandardRate => "standard_rate",
        NumberType::Carrier => "carrier",
        NumberType::NoInternational => "no_international",
        NumberType::Unknown => "unknown",
    }
}

/// The number types a client accepts unless its config says otherwise: mobiles, and the numbers
/// of countries (the NANP's +1) whose plan does not tell mobiles from landlines.
pub const DEFAULT_NUMBER_TYPES: [NumberType; 2] = [NumberType::Mobile, NumberType::FixedLineOrMobile];

/// Which numbers one client sends an SMS to (`clients[].allowed_countries`, `number_types`,
/// `allow_global_numbers`), judged before anything is counted or sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberPolicy {
    /// ISO 3166-1 regions (`GB`) whose numbers may be verified; `None`: all.
    pub allowed_countries: Option<Vec<String>>,
    pub number_types: Vec<NumberType>,
    /// Numbers of the global-service codes, which belong to no region.
    pub allow_global_numbers: bool,
}

impl Default for NumberPolicy {
    fn default() -> Self {
        Self {
            allowed_countries: None,
            number_types: DEFAULT_NUMBER_TYPES.to_vec(),
            allow_global_numbers: false,
        }
    }
}

/// Why a [`NumberPolicy`] refused a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberRefused {
    /// Its country is not in `allowed_countries`.
    Country,
    /// Its type is not in `number_types`, or it is a global-service number.
    Type(NumberType),
}

impl NumberPolicy {
    /// The policy as the config writes it; what is wrong goes to `problems` (`at`: `clients[i]`).
    pub fn from_config(
        countries: Option<Vec<String>>,
        number_types: Option<Vec<NumberType>>,
        allow_global_numbers: Option<bool>,
        at: &str,
        problems: &mut Vec<String>,
    ) -> Self {
        let allowed_countries: Option<Vec<String>> =
            countries.map(|c| c.iter().map(|c| c.trim().to_ascii_uppercase()).collect());
        if let Some(countries) = &allowed_countries
            && (countries.is_empty()
                || countries.iter().any(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase())))
        {
            problems.push(format!(
                "`{at}.allowed_countries` must list ISO 3166-1 alpha-2 codes such as \"GB\" (leave it out to allow all)"
            ));
        }
        let number_types = number_types.unwrap_or_else(|| DEFAULT_NUMBER_TYPES.to_vec());
        if number_types.is_empty() || number_types.contains(&NumberType::Unknown) {
            problems.push(format!(
                "`{at}.number_types` must list at least one of libphonenumber's number types other than \"unknown\", e.g. [\"mobile\", \"fixed_line_or_mobile\"] (leave it out for those two)"
            ));
        }
        Self { allowed_countries, number_types, allow_global_numbers: allow_global_numbers.unwrap_or(false) }
    }

    /// May this client send an SMS to `phone`?
    pub fn judge(&self, phone: &PhoneNumber) -> Result<(), NumberRefused> {
        if let Some(allowed) = &self.allowed_countries
            && !phone.region().is_some_and(|region| allowed.iter().any(|a| a == region))
        {
            return Err(NumberRefused::Country);
        }
        let global_refused = phone.region().is_none() && !self.allow_global_numbers;
        if global_refused || !self.number_types.contains(&phone.number_type()) {
            return Err(NumberRefused::Type(phone.number_type()));
        }
        Ok(())
    }
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

    /// The numbers an SMS pumper picks, and the ones real users verify.
    #[test]
    fn the_default_policy_sends_to_mobiles_only() {
        let policy = NumberPolicy::default();
        let judged = |number: &str| {
            let phone = PhoneNumber::parse(number).unwrap_or_else(|e| panic!("{number}: {e}"));
            (number_type_name(phone.number_type()), policy.judge(&phone))
        };
        assert_eq!(judged("+447400123456"), ("mobile", Ok(())));
        assert_eq!(judged("+12025550123"), ("fixed_line_or_mobile", Ok(())), "US: no type is knowable");
        for (number, kind) in [
            ("+979123456789", "premium_rate"),
            ("+449098790000", "premium_rate"),
            ("+18002345678", "toll_free"),
            ("+442079460000", "fixed_line"),
            // Satellite: typed mobile, but a global-service code (no region).
            ("+881612345678", "mobile"),
            ("+870773111632", "mobile"),
        ] {
            let (name, judgement) = judged(number);
            assert_eq!(name, kind, "{number}");
            assert!(matches!(judgement, Err(NumberRefused::Type(_))), "{number}: {judgement:?}");
        }
        let satellite = NumberPolicy { allow_global_numbers: true, ..NumberPolicy::default() };
        assert_eq!(satellite.judge(&PhoneNumber::parse("+881612345678").unwrap()), Ok(()));
        let landlines = NumberPolicy { number_types: vec![NumberType::FixedLine], ..NumberPolicy::default() };
        assert_eq!(landlines.judge(&PhoneNumber::parse("+442079460000").unwrap()), Ok(()));
        let gb = NumberPolicy { allowed_countries: Some(vec!["GB".into()]), ..NumberPolicy::default() };
        assert_eq!(gb.judge(&PhoneNumber::parse("+12025550123").unwrap()), Err(NumberRefused::Country));
        assert_eq!(gb.judge(&PhoneNumber::parse("+881612345678").unwrap()), Err(NumberRefused::Country));
    }

    #[test]
    fn policies_are_checked_when_the_config_is_read() {
        let mut problems = Vec::new();
        let read = |types: Option<Vec<NumberType>>, problems: &mut Vec<String>| {
            NumberPolicy::from_config(Some(vec![" gb ".into()]), types, None, "clients[0]", problems)
        };
        let policy = read(None, &mut problems);
        assert_eq!(policy.allowed_countries, Some(vec!["GB".to_owned()]));
        assert_eq!((policy.number_types, problems.len()), (DEFAULT_NUMBER_TYPES.to_vec(), 0));
        read(Some(vec![]), &mut problems);
        read(Some(vec![NumberType::Unknown]), &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("`clients[0].number_types` must list"), "{problems:?}");
        let names: Vec<NumberType> = serde_json::from_str(r#"["mobile", "premium_rate", "voip"]"#).unwrap();
        assert_eq!(names, [NumberType::Mobile, NumberType::PremiumRate, NumberType::Voip]);
        assert_eq!(
            names.iter().map(|t| number_type_name(*t)).collect::<Vec<_>>(),
            ["mobile", "premium_rate", "voip"]
        );
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
