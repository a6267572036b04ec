//! How long a provider keeps a refresh token that nobody uses: Microsoft ends it after 90 days without use,
//! Google after six months. Past that, someone must sign in again.

use crate::config::Provider;
use chrono::Duration;

/// The inactivity limit of `provider`'s refresh tokens; none when the provider does not publish one.
pub fn refresh_token_unused_limit(provider: Option<Provider>) -> Option<Duration> {
    match provider? {
        Provider::Microsoft => Some(Duration::days(90)),
        Provider::Google => Some(Duration::days(182)),
        Provider::Custom => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_provider_s_published_limit() {
        assert_eq!(refresh_token_unused_limit(Some(Provider::Microsoft)), Some(Duration::days(90)));
        assert_eq!(refresh_token_unused_limit(Some(Provider::Google)), Some(Duration::days(182)));
        assert_eq!(refresh_token_unused_limit(None), None);
    }
}
