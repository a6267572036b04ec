//! What an access token says about itself, when it is a JWT (Microsoft's are): its audience, scopes or roles,
//! tenant and expiry, read without checking the signature (the provider checks it), for the doctor to compare
//! with what the transport needs. Never logged.

use base64::Engine;
use serde_json::Value;

/// The claims the doctor looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    pub audience: Option<String>,
    /// Delegated scopes (`scp`) or application roles (`roles`).
    pub permissions: Vec<String>,
    pub tenant: Option<String>,
    pub expires: Option<i64>,
}

/// The claims of `token`, or `None` when it is not a readable JWT (Google's tokens are opaque).
pub fn read(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let mut permissions: Vec<String> = v["scp"].as_str().unwrap_or("").split_whitespace().map(str::to_owned).collect();
    permissions.extend(v["roles"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
    Some(Claims {
        audience: v["aud"].as_str().map(str::to_owned),
        permissions,
        tenant: v["tid"].as_str().map(str::to_owned),
        expires: v["exp"].as_i64(),
    })
}

/// Who a Microsoft token is for, by its audience.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    ExchangeSmtp,
    Graph,
    Other,
}

impl Audience {
    pub fn of(aud: &str) -> Self {
        match aud.trim_end_matches('/') {
            "https://outlook.office.com" | "https://outlook.office365.com" | "00000002-0000-0ff1-ce00-000000000000" => {
                Audience::ExchangeSmtp
            }
            "https://graph.microsoft.com" | "00000003-0000-0000-c000-000000000000" => Audience::Graph,
            _ => Audience::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_tells_its_audience_and_permissions_and_an_opaque_token_nothing() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"aud": "https://graph.microsoft.com", "roles": ["Mail.Send"], "tid": "t", "exp": 5}"#);
        let claims = read(&format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig")).unwrap();
        assert_eq!(claims.permissions, ["Mail.Send"]);
        assert_eq!(Audience::of(claims.audience.as_deref().unwrap()), Audience::Graph);
        assert_eq!(Audience::of("https://outlook.office.com"), Audience::ExchangeSmtp);
        assert!(read("ya29.opaque-google-token").is_none());
    }
}
