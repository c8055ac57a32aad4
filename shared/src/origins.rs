//! Which pages may act with the session cookie: the API's own origin, and the browser origins
//! the deployment names in `BROWSER_ORIGINS` (comma-separated; `template.yaml` fills it from
//! `CorsAllowedOrigins`), read and checked once at cold start.
//!
//! A browser sends the cookie with a form posted from any site that is *same-site*
//! (`SameSite=Lax` stops only the cross-site ones), and old browsers send it from anywhere. A
//! request that acts on the cookie alone is therefore judged by what the browser says of its
//! origin (`Origin`, `Sec-Fetch-Site`): another site's page cannot end a session. A request
//! with neither header is not from a browser page (curl, an app): it is judged by its
//! credentials alone. A bearer token is never sent by a browser on its own, so it needs no check.

use reqwest::Url;

use crate::config::ConfigError;

/// The variable that lists the browser origins.
const ENV: &str = "BROWSER_ORIGINS";

/// The configured origins, each `scheme://host[:port]` in lowercase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrowserOrigins(Vec<String>);

impl BrowserOrigins {
    /// The origins in `BROWSER_ORIGINS`; an error names each entry that is not an origin.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_list(&crate::config::env_var(ENV).unwrap_or_default())
    }

    /// A comma-separated list of origins, as `BROWSER_ORIGINS` holds it.
    pub fn from_list(list: &str) -> Result<Self, ConfigError> {
        let entries: Vec<String> =
            list.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect();
        let mut problems = Vec::new();
        let origins = Self::parse(&entries, ENV, &mut problems);
        if problems.is_empty() { Ok(origins) } else { Err(ConfigError::all(problems)) }
    }

    /// Parses `origins`, naming each one that is not an origin under `at`.
    fn parse(origins: &[String], at: &str, problems: &mut Vec<String>) -> Self {
        let mut parsed = Vec::new();
        for (i, origin) in origins.iter().enumerate() {
            match as_origin(origin) {
                Some(origin) => parsed.push(origin),
                None => problems.push(format!(
                    "`{at}[{i}]` \"{origin}\" is not an origin: write scheme://host[:port], e.g. https://app.example.com"
                )),
            }
        }
        Self(parsed)
    }

    /// Whether a cookie-authenticated request with these headers comes from a page allowed to
    /// use the session: `host` is the API's own `Host`.
    pub fn allow_cookie(
        &self,
        origin: Option<&str>,
        sec_fetch_site: Option<&str>,
        host: Option<&str>,
    ) -> bool {
        if let Some(origin) = origin {
            let Some(origin) = as_origin(origin) else { return false }; // `null`, or nonsense
            let own = host.is_some_and(|host| {
                origin.split_once("://").is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
            });
            return own || self.0.contains(&origin);
        }
        // No Origin (an old browser, or none at all): the browser's own word on the site, if any.
        !matches!(sec_fetch_site, Some(site) if site.eq_ignore_ascii_case("cross-site"))
    }
}

/// `value` as `scheme://host[:port]` (lowercase, default ports left out), if it is exactly an
/// origin: no path, query, fragment or credentials.
fn as_origin(value: &str) -> Option<String> {
    let url = Url::parse(value.trim()).ok()?;
    let plain = url.username().is_empty()
        && url.password().is_none()
        && matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none()
        && !value.trim().ends_with('/');
    if !plain || !matches!(url.scheme(), "https" | "http") {
        return None;
    }
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(list: &[&str]) -> BrowserOrigins {
        let mut problems = Vec::new();
        let origins = BrowserOrigins::parse(
            &list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "o",
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        origins
    }

    #[test]
    fn only_own_and_configured_pages_may_use_the_cookie() {
        let origins = configured(&["https://app.example.com", "http://127.0.0.1:5173"]);
        let host = Some("api.example.com");
        assert!(origins.allow_cookie(Some("https://api.example.com"), Some("same-origin"), host));
        assert!(origins.allow_cookie(Some("https://APP.example.com"), Some("same-site"), host));
        assert!(origins.allow_cookie(Some("http://127.0.0.1:5173"), None, host));
        for other in [
            "https://evil.example",
            "https://app.example.com.evil.example",
            "null",
            "https://api.example.com.evil",
        ] {
            assert!(!origins.allow_cookie(Some(other), Some("cross-site"), host), "{other}");
            assert!(!origins.allow_cookie(Some(other), None, host), "{other}");
        }
        assert!(!origins.allow_cookie(None, Some("cross-site"), host), "the browser says cross-site");
        assert!(origins.allow_cookie(None, None, host), "no browser page: judged by the cookie alone");
        assert!(origins.allow_cookie(None, Some("none"), host), "typed by the user");
    }

    #[test]
    fn configured_origins_must_be_origins() {
        let mut problems = Vec::new();
        let list: Vec<String> = [
            "https://a.example/path",
            "a.example",
            "https://a.example/",
            "ftp://a.example",
            // Credentials with any origin: template.yaml's rule NoWildcardCorsOrigin refuses it too.
            "*",
            "https://ok.example:8443",
        ]
        .map(str::to_owned)
        .to_vec();
        let origins = BrowserOrigins::parse(&list, "BROWSER_ORIGINS", &mut problems);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[0].contains("`BROWSER_ORIGINS[0]`"));
        assert_eq!(origins, BrowserOrigins(vec!["https://ok.example:8443".to_owned()]));
        let listed = BrowserOrigins::from_list(" https://ok.example:8443, ,http://127.0.0.1:5173").unwrap();
        assert_eq!(listed.0, ["https://ok.example:8443", "http://127.0.0.1:5173"]);
        assert!(
            BrowserOrigins::from_list("https://a.example/x")
                .unwrap_err()
                .to_string()
                .contains("is not an origin")
        );
    }
}
