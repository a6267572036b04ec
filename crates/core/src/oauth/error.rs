//! What an OAuth error means for Tidings, and what an administrator should do about it: Microsoft's AADSTS
//! codes (in `error_codes`, or as `AADSTSnnnn:` in the description) and Google's messages explained.

use super::response::ErrorResponse;
use crate::config::Provider;

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Device flow: the user has not finished yet; poll again after the interval.
    Pending,
    /// Device flow: poll less often (interval + 5 s).
    SlowDown,
    /// A passing problem at the provider; try again later, keep everything.
    Retry,
    /// The authorization is gone (expired, revoked, MFA or policy): an administrator must authorize again.
    Reauthorize,
    /// The client registration or configuration is wrong: fix it, then authorize.
    Misconfigured,
    /// The user refused at the provider.
    Declined,
    /// The device code expired before the user finished: start again.
    Expired,
}

/// An error, classified and explained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    pub verdict: Verdict,
    /// `error: description` as the provider said it (first line).
    pub said: String,
    /// What it means and what to do.
    pub explanation: String,
}

/// Classifies and explains a provider's error.
pub fn explain(provider: Option<Provider>, error: &ErrorResponse) -> Explained {
    let description = error.error_description.as_deref().unwrap_or("").lines().next().unwrap_or("").trim().to_owned();
    let said = if description.is_empty() { error.error.clone() } else { format!("{}: {description}", error.error) };
    // The device flow's polling states are told by `error` itself, whatever AADSTS code comes with them.
    let polling = matches!(
        error.error.as_str(),
        "authorization_pending" | "slow_down" | "authorization_declined" | "access_denied" | "expired_token"
    );
    let (verdict, explanation) = match aadsts(error).and_then(microsoft).filter(|_| !polling) {
        Some(known) => known,
        None => by_error(provider, error, &description),
    };
    Explained { verdict, said, explanation: explanation.to_owned() }
}

/// The first AADSTS code: from `error_codes`, or from `AADSTSnnnn` in the description.
fn aadsts(error: &ErrorResponse) -> Option<u64> {
    error.error_codes.first().copied().or_else(|| {
        let d = error.error_description.as_deref()?;
        let start = d.find("AADSTS")? + 6;
        let digits: String = d[start..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

fn microsoft(code: u64) -> Option<(Verdict, &'static str)> {
    Some(match code {
        70000 => (
            Verdict::Reauthorize,
            "Microsoft no longer accepts this authorization (the grant is invalid, or a scope was not consented). Authorize Tidings again.",
        ),
        700082 => (
            Verdict::Reauthorize,
            "The refresh token expired because it was not used for 90 days. Authorize Tidings again; it then refreshes regularly on its own.",
        ),
        50173 => (
            Verdict::Reauthorize,
            "The authorization was revoked (the account's password changed, or an administrator revoked its sessions). Authorize Tidings again.",
        ),
        50076 | 50079 => (
            Verdict::Reauthorize,
            "Multi-factor authentication is required. Authorize Tidings again in a browser, completing the MFA prompt.",
        ),
        53003 => (
            Verdict::Reauthorize,
            "A Conditional Access policy blocked the sign-in. Ask the Entra administrator to allow Tidings' application (or this location) in Conditional Access, then authorize again.",
        ),
        7000222 => (
            Verdict::Misconfigured,
            "The application's client secret has expired. Create a new one in the Entra admin center (App registrations > the app > Certificates & secrets) and set it with `tidings config set-secret oauth.client_secret`.",
        ),
        7000218 => (
            Verdict::Misconfigured,
            "Microsoft expects a client secret, or public client flows to be allowed. Set oauth.client_secret, or enable 'Allow public client flows' (App registrations > the app > Authentication) for the device flow.",
        ),
        7000215 => (
            Verdict::Misconfigured,
            "The client secret is wrong: use the secret's value (not its id) from Certificates & secrets.",
        ),
        700027 => (
            Verdict::Misconfigured,
            "Microsoft does not know the certificate that signed Tidings' client assertion, or the signature does not match it. Upload the certificate `tidings oauth certificate show` prints (or the OAuth page offers) to the app registration (Certificates & secrets > Certificates); a certificate made anew must be uploaded again.",
        ),
        700024 => (
            Verdict::Misconfigured,
            "Microsoft took Tidings' client assertion as outside its valid time: check this machine's clock (NTP).",
        ),
        700021 => (
            Verdict::Misconfigured,
            "The client assertion names another application than oauth.client_id: check oauth.client_id.",
        ),
        50013 => (
            Verdict::Misconfigured,
            "The client assertion was made for another token endpoint: check oauth.tenant and oauth.token_endpoint.",
        ),
        700016 => (
            Verdict::Misconfigured,
            "No application with this client id exists in the tenant. Check oauth.client_id and oauth.tenant.",
        ),
        90002 => (Verdict::Misconfigured, "The tenant does not exist. Check oauth.tenant."),
        65001 => (
            Verdict::Misconfigured,
            "The application lacks consent for its permissions. Grant admin consent (App registrations > the app > API permissions), then authorize again.",
        ),
        50011 | 500113 => (
            Verdict::Misconfigured,
            "The redirect URI is not registered for the application. Add Tidings' redirect URI (`tidings config show` prints it) under Authentication > Web.",
        ),
        65004 => (Verdict::Declined, "The user declined to consent. Authorize again and accept the permissions."),
        _ => return None,
    })
}

fn by_error(provider: Option<Provider>, error: &ErrorResponse, description: &str) -> (Verdict, &'static str) {
    match error.error.as_str() {
        "authorization_pending" => (Verdict::Pending, "Waiting for the user to finish signing in."),
        "slow_down" => (Verdict::SlowDown, "The provider asks to poll less often."),
        "access_denied" | "authorization_declined" => {
            (Verdict::Declined, "The sign-in was refused or cancelled. Start again and accept the permissions.")
        }
        "expired_token" => {
            (Verdict::Expired, "The code expired before the sign-in was finished. Start the device flow again.")
        }
        "temporarily_unavailable" | "server_error" => {
            (Verdict::Retry, "The provider is having trouble; Tidings tries again later.")
        }
        "invalid_grant" if description.contains("Invalid JWT Signature") => (
            Verdict::Misconfigured,
            "Google does not know the key that signed Tidings' assertion: the service account's key was deleted, or \
             it is another service account's. Import the service account's JSON key again \
             (`tidings config import-google-service-account FILE`), or upload the certificate `tidings oauth \
             certificate show` prints to the service account's keys.",
        ),
        "invalid_grant" if description.contains("short-lived token") => (
            Verdict::Misconfigured,
            "Google took Tidings' assertion as outside its valid time: check this machine's clock (NTP).",
        ),
        "invalid_grant" if description.contains("Invalid email or User ID") => (
            Verdict::Misconfigured,
            "Google knows no user by the mailbox the service account acts for (oauth.account, or the sender): it \
             must be a user of the Workspace domain that granted the delegation.",
        ),
        "unauthorized_client" if description.contains("Client is unauthorized to retrieve access tokens") => (
            Verdict::Misconfigured,
            "The service account may not act for the domain's users with these scopes: in the Google Admin console \
             (Security > Access and data control > API controls > Manage Domain Wide Delegation), add the service \
             account's client id (oauth.client_id) with the scopes of oauth.scopes. A change there can take some \
             minutes to apply.",
        ),
        "invalid_grant" if provider == Some(Provider::Google) || description.contains("expired or revoked") => (
            Verdict::Reauthorize,
            "Google no longer accepts this authorization: it was revoked, the account's password changed, or the app is \
             in Testing in the OAuth consent screen, where refresh tokens expire after 7 days (publish the app to \
             production to keep them). Authorize Tidings again.",
        ),
        "invalid_grant" => (
            Verdict::Reauthorize,
            "The provider no longer accepts this authorization (expired or revoked). Authorize Tidings again.",
        ),
        "invalid_client" | "unauthorized_client" => (
            Verdict::Misconfigured,
            "The provider does not accept this client: check oauth.client_id and oauth.client_secret, and that the \
             application may use this grant type.",
        ),
        "invalid_scope" => (
            Verdict::Misconfigured,
            "The provider refuses the requested scopes for this client or flow. Check oauth.scopes.",
        ),
        "invalid_request" | "unsupported_grant_type" => (
            Verdict::Misconfigured,
            "The provider refused the request as malformed for this client. Check the OAuth endpoints and client settings.",
        ),
        _ => (Verdict::Reauthorize, "The provider refused. Check the OAuth settings, then authorize Tidings again."),
    }
}

/// Google ends the refresh tokens of an app whose OAuth consent screen is in "Testing" seven days after the sign-in.
const TESTING_LIFETIME_DAYS: i64 = 7;

/// A Google refusal of a refresh (`invalid_grant`) that comes in the days after the seventh since the sign-in
/// `signed_in` ago: the signs of a consent screen left in "Testing". The explanation to give instead of the
/// general one.
pub fn consent_screen_in_testing(
    provider: Option<Provider>,
    said: &str,
    signed_in: chrono::Duration,
) -> Option<String> {
    let days = signed_in.num_days();
    let in_window = (TESTING_LIFETIME_DAYS..=TESTING_LIFETIME_DAYS + 2).contains(&days);
    (provider == Some(Provider::Google) && said.starts_with("invalid_grant") && in_window).then(|| {
        format!(
            "Google refused the refresh {days} days after the sign-in: Google ends refresh tokens after {TESTING_LIFETIME_DAYS} \
             days when the app's OAuth consent screen is in \"Testing\". In the Google Cloud console (APIs & Services > \
             OAuth consent screen), publish the app (\"In production\"), or make it \"Internal\" for a Workspace \
             domain; then authorize Tidings again. Until then every sign-in lasts a week."
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(code: u64, error: &str, text: &str) -> ErrorResponse {
        ErrorResponse {
            error: error.into(),
            error_description: Some(format!("AADSTS{code}: {text}\r\nTrace ID: x")),
            error_codes: vec![code],
            error_uri: None,
        }
    }

    #[test]
    fn microsoft_aadsts_codes() {
        for (code, verdict, needle) in [
            (70000, Verdict::Reauthorize, "Authorize Tidings again"),
            (700082, Verdict::Reauthorize, "90 days"),
            (50173, Verdict::Reauthorize, "revoked"),
            (50076, Verdict::Reauthorize, "Multi-factor"),
            (53003, Verdict::Reauthorize, "Conditional Access"),
            (7000222, Verdict::Misconfigured, "client secret has expired"),
            (7000218, Verdict::Misconfigured, "Allow public client flows"),
        ] {
            let e = explain(Some(Provider::Microsoft), &ms(code, "invalid_grant", "text"));
            assert_eq!(e.verdict, verdict, "{code}");
            assert!(e.explanation.contains(needle), "{code}: {}", e.explanation);
            assert_eq!(e.said, format!("invalid_grant: AADSTS{code}: text"), "first line only");
        }
    }

    #[test]
    fn the_code_is_found_in_the_description_too() {
        let e = ErrorResponse {
            error: "invalid_grant".into(),
            error_description: Some("AADSTS700082: expired".into()),
            error_codes: vec![],
            error_uri: None,
        };
        assert!(explain(None, &e).explanation.contains("90 days"));
    }

    #[test]
    fn device_flow_states() {
        let plain = |error: &str| ErrorResponse {
            error: error.into(),
            error_description: None,
            error_codes: vec![],
            error_uri: None,
        };
        assert_eq!(explain(None, &plain("authorization_pending")).verdict, Verdict::Pending);
        assert_eq!(explain(None, &plain("slow_down")).verdict, Verdict::SlowDown);
        assert_eq!(explain(None, &plain("authorization_declined")).verdict, Verdict::Declined);
        assert_eq!(explain(None, &plain("access_denied")).verdict, Verdict::Declined);
        assert_eq!(explain(None, &plain("expired_token")).verdict, Verdict::Expired);
        assert_eq!(explain(None, &plain("temporarily_unavailable")).verdict, Verdict::Retry);
    }

    #[test]
    fn polling_states_win_over_aadsts_codes() {
        for (error, verdict) in [
            ("authorization_declined", Verdict::Declined),
            ("slow_down", Verdict::SlowDown),
            ("authorization_pending", Verdict::Pending),
        ] {
            assert_eq!(explain(Some(Provider::Microsoft), &ms(70000, error, "x")).verdict, verdict, "{error}");
        }
    }

    #[test]
    fn google_invalid_grant_mentions_testing_mode() {
        let e = ErrorResponse {
            error: "invalid_grant".into(),
            error_description: Some("Token has been expired or revoked.".into()),
            error_codes: vec![],
            error_uri: None,
        };
        let got = explain(Some(Provider::Google), &e);
        assert_eq!(got.verdict, Verdict::Reauthorize);
        assert!(got.explanation.contains("7 days") && got.explanation.contains("production"), "{}", got.explanation);
        let scope = ErrorResponse {
            error: "invalid_scope".into(),
            error_description: None,
            error_codes: vec![],
            error_uri: None,
        };
        assert_eq!(explain(Some(Provider::Google), &scope).verdict, Verdict::Misconfigured);
    }

    #[test]
    fn a_google_refusal_a_week_after_sign_in_is_the_testing_consent_screen() {
        let said = "invalid_grant: Token has been expired or revoked.";
        let week = chrono::Duration::days(7) + chrono::Duration::minutes(5);
        let got = consent_screen_in_testing(Some(Provider::Google), said, week).unwrap();
        assert!(got.contains("7 days after the sign-in") && got.contains("In production"), "{got}");
        assert!(consent_screen_in_testing(Some(Provider::Google), said, chrono::Duration::days(9)).is_some());
        for (provider, said, age) in [
            (Some(Provider::Google), said, chrono::Duration::days(3)),
            (Some(Provider::Google), said, chrono::Duration::days(30)),
            (Some(Provider::Microsoft), said, week),
            (Some(Provider::Google), "invalid_client: Unauthorized", week),
        ] {
            assert_eq!(consent_screen_in_testing(provider, said, age), None, "{provider:?} {said} {age}");
        }
    }
}
