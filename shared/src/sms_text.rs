//! The text of a client's SMS: its template in the user's language (`clients[].sms_templates`,
//! chosen by `/sms/auth`'s `locale`), and the lines that let the phone fill the code in by itself.
//!
//! The upstream puts the code in for every `{{code}}` of the `message` it is sent. The message is
//! the chosen template, then, each on its own line and in this order:
//! - the app's SMS Retriever hash (`android_app_hash`), which Android's SMS Retriever API looks
//!   for anywhere in the message;
//! - `@<otp_domain> #{{code}}` (`otp_domain`), which must be the **last line** for WebOTP and
//!   for iOS's domain-bound codes.
//!
//! So with both set, both formats hold: the hash is in the message, the origin line is last.

use std::collections::BTreeMap;

use icu_locale_core::LanguageIdentifier;

/// Placeholder the upstream replaces with the one-time code.
pub const CODE_PLACEHOLDER: &str = "{{code}}";
/// One SMS segment: 160 GSM-7 characters (an extension character counts twice), or 70 UCS-2 ones.
const GSM7_SEGMENT: usize = 160;
const UCS2_SEGMENT: usize = 70;
/// The longest code the check assumes the upstream puts in (codes are 4 to 10 digits).
const LONGEST_CODE: &str = "0000000000";
/// GSM 03.38's basic character set and its extension table (each extension character is sent
/// as an escape and itself).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// A client's SMS messages, each template with its autofill lines, built and checked once at
/// cold start.
#[derive(Clone, Debug)]
pub struct SmsText {
    /// From `sms_template`: for a request with no locale, or one no template is written for.
    default: String,
    /// From `sms_templates`, by tag in lowercase.
    localized: BTreeMap<String, String>,
}

impl SmsText {
    /// The `message` to send upstream for a request in `locale` (a BCP 47 tag, any case): the
    /// one of exactly that tag, else of its primary language (`de-AT` → `de`), else the default.
    pub fn message(&self, locale: Option<&str>) -> &str {
        let Some(locale) = locale.map(str::to_ascii_lowercase) else { return &self.default };
        let language = locale.split(['-', '_']).next().unwrap_or_default();
        self.localized.get(&locale).or_else(|| self.localized.get(language)).unwrap_or(&self.default)
    }

    /// Checks the client's `sms_template`, `sms_templates`, `otp_domain` and `android_app_hash`
    /// at `at`, and builds each message: a problem for what cannot work, a warning for a message
    /// longer than one segment (it still goes out, as several billed SMS).
    pub(crate) fn from_config(
        default: String,
        templates: Option<BTreeMap<String, String>>,
        otp_domain: Option<String>,
        android_app_hash: Option<String>,
        at: &str,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Self {
        let mut autofill = String::new();
        if let Some(hash) = &android_app_hash {
            if hash.len() != 11 || !hash.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
            {
                problems.push(format!(
                    "`{at}.android_app_hash` must be the 11-character SMS Retriever hash of the app (letters, digits, + and /)"
                ));
            }
            autofill.push_str(&format!("\n{hash}"));
        }
        if let Some(domain) = &otp_domain {
            if !is_host(domain) {
                problems.push(format!(
                    "`{at}.otp_domain` \"{domain}\" must be a host name such as app.example.com (no scheme, port or path)"
                ));
            }
            autofill.push_str(&format!("\n@{domain} #{CODE_PLACEHOLDER}"));
        }
        let default = with_autofill(&format!("{at}.sms_template"), default, &autofill, problems, warnings);
        let mut localized = BTreeMap::new();
        for (tag, template) in templates.unwrap_or_default() {
            if LanguageIdentifier::try_from_str(&tag).is_err() || tag.contains('_') {
                problems.push(format!(
                    "`{at}.sms_templates` key \"{tag}\" is not a BCP 47 language tag (e.g. \"de\", \"pt-BR\")"
                ));
                continue;
            }
            let key = format!("{at}.sms_templates.{tag}");
            let built = with_autofill(&key, template, &autofill, problems, warnings);
            if localized.insert(tag.to_ascii_lowercase(), built).is_some() {
                problems
                    .push(format!("`{at}.sms_templates` names \"{tag}\" twice (tags are case-insensitive)"));
            }
        }
        Self { default, localized }
    }
}

/// The message of the template at `key`: the template, checked, then the autofill lines.
fn with_autofill(
    key: &str,
    template: String,
    autofill: &str,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> String {
    if !template.contains(CODE_PLACEHOLDER) {
        problems.push(format!("`{key}` must contain {CODE_PLACEHOLDER}"));
    }
    let message = template + autofill;
    if let Some(why) = longer_than_one_segment(&message.replace(CODE_PLACEHOLDER, LONGEST_CODE)) {
        warnings.push(format!("`{key}`, with the autofill lines and a 10-digit code, {why}"));
    }
    message
}

/// Why `text` needs more than one SMS segment, if it does.
fn longer_than_one_segment(text: &str) -> Option<String> {
    let gsm7: Option<usize> = text
        .chars()
        .map(|c| {
            if GSM7_BASIC.contains(c) {
                Some(1)
            } else if GSM7_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    match gsm7 {
        Some(septets) if septets > GSM7_SEGMENT => Some(format!(
            "is {septets} GSM-7 characters, over one SMS's {GSM7_SEGMENT}: it goes out as several billed SMS"
        )),
        Some(_) => None,
        None => {
            let units = text.encode_utf16().count();
            (units > UCS2_SEGMENT).then(|| {
                format!(
                    "is {units} UCS-2 characters (it has characters outside GSM-7), over one SMS's {UCS2_SEGMENT}: it goes out as several billed SMS"
                )
            })
        }
    }
}

/// A DNS host name: dot-separated labels of letters, digits and inner hyphens.
fn is_host(domain: &str) -> bool {
    domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(
        templates: &[(&str, &str)],
        domain: Option<&str>,
        hash: Option<&str>,
    ) -> (SmsText, Vec<String>, Vec<String>) {
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        let templates = templates.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let text = SmsText::from_config(
            "Your code: {{code}}".into(),
            Some(templates),
            domain.map(str::to_owned),
            hash.map(str::to_owned),
            "clients[0]",
            &mut problems,
            &mut warnings,
        );
        (text, problems, warnings)
    }

    #[test]
    fn the_template_is_chosen_by_tag_then_language_then_default() {
        let (text, problems, _) =
            text(&[("de", "Ihr Code: {{code}}"), ("pt-BR", "Seu código: {{code}}")], None, None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(text.message(Some("de-AT")), "Ihr Code: {{code}}");
        assert_eq!(text.message(Some("DE")), "Ihr Code: {{code}}");
        assert_eq!(text.message(Some("pt-br")), "Seu código: {{code}}");
        assert_eq!(text.message(Some("pt-PT")), "Your code: {{code}}", "no `pt` template");
        assert_eq!(text.message(Some("fr")), "Your code: {{code}}");
        assert_eq!(text.message(None), "Your code: {{code}}");
    }

    #[test]
    fn the_autofill_lines_come_last_with_the_origin_line_at_the_very_end() {
        let (text, problems, _) = text(&[], Some("app.example.com"), Some("FA+9qCX9VSu"));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(text.message(None), "Your code: {{code}}\nFA+9qCX9VSu\n@app.example.com #{{code}}");
    }

    #[test]
    fn bad_tags_domains_hashes_and_placeholders_are_problems() {
        let (_, problems, _) = text(
            &[("de_DE", "x {{code}}"), ("en", "no code")],
            Some("https://app.example.com"),
            Some("short"),
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("\"de_DE\" is not a BCP 47")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("sms_templates.en` must contain")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("otp_domain")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("android_app_hash")), "{problems:?}");
    }

    #[test]
    fn a_message_over_one_segment_is_a_warning_by_its_alphabet() {
        let long_latin = format!("{} {{{{code}}}}", "a".repeat(150));
        let cyrillic = format!("{} {{{{code}}}}", "код".repeat(20));
        let (_, problems, warnings) =
            text(&[("en", &long_latin), ("ru", &cyrillic), ("de", "Code {{code}}")], None, None);
        assert!(problems.is_empty());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings.iter().any(|w| w.contains("sms_templates.en") && w.contains("GSM-7")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("sms_templates.ru") && w.contains("UCS-2")),
            "{warnings:?}"
        );
        assert!(longer_than_one_segment(&"€".repeat(81)).is_some(), "extension characters count twice");
        assert_eq!(longer_than_one_segment(&"€".repeat(80)), None);
        assert_eq!(longer_than_one_segment(&"é".repeat(160)), None);
    }
}
