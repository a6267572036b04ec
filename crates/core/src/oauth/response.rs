//! The JSON the token and device-authorization endpoints answer with, as providers actually spell it.

use serde::{Deserialize, Deserializer, de};
use std::fmt;

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    /// Seconds; some servers send it as a string.
    #[serde(default, deserialize_with = "number_or_string")]
    pub expires_in: Option<u64>,
    /// Present when the server issues a (new) refresh token; it then replaces the stored one.
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "<redacted>"))
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The device authorization response (RFC 8628 §3.2). Google spells `verification_uri` as
/// `verification_url`; a missing `interval` means 5 seconds.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    #[serde(alias = "verification_url")]
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    #[serde(deserialize_with = "required_number_or_string")]
    pub expires_in: u64,
    #[serde(default = "five", deserialize_with = "required_number_or_string")]
    pub interval: u64,
    /// Microsoft's ready-made instruction for the user.
    #[serde(default)]
    pub message: Option<String>,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn five() -> u64 {
    5
}

/// An error response (RFC 6749 §5.2), with Microsoft's `error_codes`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    /// Microsoft's AADSTS numbers.
    #[serde(default)]
    pub error_codes: Vec<u64>,
    #[serde(default)]
    pub error_uri: Option<String>,
}

fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Number(u64),
        Text(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Number(n)) => Ok(Some(n)),
        Some(N::Text(t)) => {
            t.trim().parse().map(Some).map_err(|_| de::Error::custom(format!("{t:?} is not a number of seconds")))
        }
    }
}

fn required_number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    number_or_string(d)?.ok_or_else(|| de::Error::custom("a number of seconds is required"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses() {
        let t: TokenResponse = serde_json::from_str(
            r#"{"token_type":"Bearer","scope":"https://outlook.office.com/SMTP.Send","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0","refresh_token":"0.AXo"}"#,
        )
        .unwrap();
        assert_eq!((t.expires_in, t.refresh_token.as_deref()), (Some(3599), Some("0.AXo")));
        assert!(!format!("{t:?}").contains("0.AXo") && !format!("{t:?}").contains("eyJ0"));
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"a","expires_in":"3600"}"#).unwrap();
        assert_eq!((t.expires_in, t.refresh_token), (Some(3600), None));
        assert!(serde_json::from_str::<TokenResponse>(r#"{"access_token":"a","expires_in":"soon"}"#).is_err());
    }

    #[test]
    fn device_authorization_in_microsofts_and_googles_spelling() {
        let ms: DeviceAuthorization = serde_json::from_str(
            r#"{"user_code":"FJ4KXC2P7","device_code":"DAQABAAEAAAD","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":5,"message":"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code FJ4KXC2P7 to authenticate."}"#,
        )
        .unwrap();
        assert_eq!(
            (ms.verification_uri.as_str(), ms.expires_in, ms.interval),
            ("https://microsoft.com/devicelogin", 900, 5)
        );
        let google: DeviceAuthorization = serde_json::from_str(
            r#"{"device_code":"AH-1Ng","user_code":"GQVQ-JKEC","verification_url":"https://www.google.com/device","expires_in":1800,"interval":5}"#,
        )
        .unwrap();
        assert_eq!(google.verification_uri, "https://www.google.com/device");
        let no_interval: DeviceAuthorization = serde_json::from_str(
            r#"{"device_code":"d","user_code":"U","verification_uri":"https://idp/device","expires_in":600}"#,
        )
        .unwrap();
        assert_eq!(no_interval.interval, 5, "RFC 8628: 5 seconds when absent");
    }

    #[test]
    fn error_responses() {
        let e: ErrorResponse = serde_json::from_str(
            r#"{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity.","error_codes":[700082],"timestamp":"2026-11-22 08:00:00Z","trace_id":"t","correlation_id":"c"}"#,
        )
        .unwrap();
        assert_eq!((e.error.as_str(), e.error_codes.as_slice()), ("invalid_grant", &[700082][..]));
    }
}
