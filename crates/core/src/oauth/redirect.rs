//! What came back from the provider: the redirect to `/login/smtp-verification`, or what an administrator
//! pasted because the browser could not reach Tidings (the whole URL from the address bar, or just the code).

use crate::Invalid;
use url::Url;

/// The provider's answer to an authorization request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Returned {
    /// An authorization code; `state` is absent when only the code was pasted.
    Code { code: String, state: Option<String> },
    /// The provider (or the user) refused.
    Refused { error: String, description: Option<String> },
}

/// Reads a pasted redirect URL (`https://…/login/smtp-verification/?code=…&state=…`), a query string, or a
/// bare authorization code.
pub fn parse(input: &str) -> Result<Returned, Invalid> {
    let input = input.trim();
    if input.is_empty() {
        return Err("nothing was pasted: paste the whole address the browser ended on, or the code".into());
    }
    let query = if let Ok(url) = Url::parse(input) {
        // Some providers answer in the fragment (response_mode=fragment).
        url.query().or(url.fragment()).unwrap_or_default().to_owned()
    } else if input.contains('=') {
        input.trim_start_matches(['/', '?', '#']).rsplit('?').next().unwrap_or_default().to_owned()
    } else if input.chars().all(|c| c.is_ascii_graphic()) {
        return Ok(Returned::Code { code: input.to_owned(), state: None });
    } else {
        return Err("this is neither a redirect address nor an authorization code".into());
    };
    from_query(&query)
}

/// Reads the query of the redirect itself.
pub fn from_query(query: &str) -> Result<Returned, Invalid> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let Some(error) = get("error") {
        return Ok(Returned::Refused { error, description: get("error_description") });
    }
    match get("code") {
        Some(code) if !code.is_empty() => Ok(Returned::Code { code, state: get("state") }),
        _ => Err("the address holds no authorization code (no code= in it); start the sign-in again".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_redirect_url() {
        let got =
            parse("https://tidings.example.com/login/smtp-verification/?code=0.AXoA-abc_123&state=s1&session_state=x")
                .unwrap();
        assert_eq!(got, Returned::Code { code: "0.AXoA-abc_123".into(), state: Some("s1".into()) });
    }

    #[test]
    fn an_unreachable_localhost_redirect_pasted_from_the_address_bar() {
        let got = parse("  http://localhost/login/smtp-verification?state=s2&code=4%2F0AX4XfWh&scope=https%3A%2F%2Fmail.google.com%2F\n").unwrap();
        assert_eq!(got, Returned::Code { code: "4/0AX4XfWh".into(), state: Some("s2".into()) });
    }

    #[test]
    fn a_bare_code_or_query() {
        assert_eq!(parse("4/0AX4XfWhCODE").unwrap(), Returned::Code { code: "4/0AX4XfWhCODE".into(), state: None });
        assert_eq!(parse("?code=abc&state=s").unwrap(), Returned::Code { code: "abc".into(), state: Some("s".into()) });
    }

    #[test]
    fn a_refusal() {
        let got = parse("https://t/login/smtp-verification/?error=access_denied&error_description=AADSTS65004%3A+User+declined+to+consent.&state=s").unwrap();
        assert_eq!(
            got,
            Returned::Refused {
                error: "access_denied".into(),
                description: Some("AADSTS65004: User declined to consent.".into())
            }
        );
    }

    #[test]
    fn nonsense_is_refused_saying_what_to_paste() {
        assert!(parse("").unwrap_err().reason().contains("paste the whole address"));
        assert!(parse("https://t/login/smtp-verification/?state=s").unwrap_err().reason().contains("no code="));
        assert!(parse("some words here").unwrap_err().reason().contains("neither"));
    }
}
