//! The doctor: the path a message takes, walked step by step until one fails, each step with the time it took,
//! what was seen (the relay's replies as they came) and, when it fails, what to change. Nothing is sent unless
//! asked: the session ends after `MAIL FROM` with `RSET` and `QUIT`, or, given an address, after a whole test
//! message to it.

use crate::{
    api::ApiSettings,
    smtp::{Connection, RelayAuth, RelaySettings, error::SmtpError, tls},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Instant;
use tidings_core::{
    config::{Encryption, Transport},
    oauth::claims::{self, Audience},
    outbox::{
        Failure, Outcome,
        reply::{Reply, Stage},
    },
};

/// One step of the walk.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// `resolve`, `connect`, `tls`, `ehlo`, `token`, `auth`, `mail_from`, `message`.
    pub step: &'static str,
    pub ok: bool,
    pub took_ms: u64,
    /// What was seen, a line each.
    pub seen: Vec<String>,
    /// What to change, when the step failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// The whole walk.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub at: DateTime<Utc>,
    /// Every step passed.
    pub ok: bool,
    pub steps: Vec<Step>,
}

struct Walk {
    steps: Vec<Step>,
}

impl Walk {
    fn record(
        &mut self,
        step: &'static str,
        started: Instant,
        outcome: Result<Vec<String>, (Vec<String>, String)>,
    ) -> bool {
        let took_ms = started.elapsed().as_millis() as u64;
        let (ok, seen, explanation) = match outcome {
            Ok(seen) => (true, seen, None),
            Err((seen, explanation)) => (false, seen, Some(explanation)),
        };
        self.steps.push(Step { step, ok, took_ms, seen, explanation });
        ok
    }
}

/// Walks the path of a message sent as `sender` with `settings`; with `send_to`, ends with a whole test message
/// to that address.
pub async fn examine(settings: &RelaySettings, sender: &str, send_to: Option<&str>) -> Report {
    let mut walk = Walk { steps: Vec::new() };
    let _ = walk_path(&mut walk, settings, sender, send_to).await;
    let ok = walk.steps.iter().all(|s| s.ok);
    Report { at: Utc::now(), ok, steps: walk.steps }
}

async fn walk_path(walk: &mut Walk, settings: &RelaySettings, sender: &str, send_to: Option<&str>) -> Option<()> {
    let relay = settings.address();
    if let Some(api) = &settings.api {
        return api_path(walk, settings, api, sender, send_to).await;
    }
    // 1. The name, each of its addresses.
    let started = Instant::now();
    let host = settings.host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let resolved =
        tokio::time::timeout(settings.timeout, tokio::net::lookup_host((host.as_str(), settings.port))).await;
    let (addresses, why): (Vec<std::net::SocketAddr>, String) = match resolved {
        Ok(Ok(found)) => (found.collect(), "it has no address".into()),
        Ok(Err(e)) => (Vec::new(), e.to_string()),
        Err(_) => (Vec::new(), format!("no answer within {} s", settings.timeout.as_secs())),
    };
    let outcome = match &addresses[..] {
        [] => Err((
            vec![format!("{host} does not resolve: {why}")],
            format!("Check smtp.host ({host}) and this machine's DNS (resolv.conf)."),
        )),
        found => Ok(found.iter().map(|a| a.ip().to_string()).collect()),
    };
    walk.record("resolve", started, outcome).then_some(())?;

    // 2. TCP to the first address that answers.
    let started = Instant::now();
    let connected = tokio::time::timeout(settings.timeout, tokio::net::TcpStream::connect(&addresses[..])).await;
    let outcome = match connected {
        Ok(Ok(tcp)) => Ok(vec![format!("connected to {}", tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default())]),
        Ok(Err(e)) => Err((
            vec![format!("{relay}: {e}")],
            format!(
                "Nothing accepts connections at {relay}: check smtp.host and smtp.port, and that no firewall blocks the way."
            ),
        )),
        Err(_) => Err((
            vec![format!("no answer from {relay} within {} s", settings.timeout.as_secs())],
            "A firewall may drop the connection silently: check the way out to the relay's port.".into(),
        )),
    };
    walk.record("connect", started, outcome).then_some(())?;

    // 3 and 4. TLS as configured, then what the relay offers.
    let started = Instant::now();
    let shown = match Connection::look(settings).await {
        Ok(shown) => shown,
        Err(e) => {
            let failure = e.to_failure(&relay);
            let tls = matches!(failure.stage, Stage::Tls | Stage::Starttls);
            let (mut seen, explanation) = failed(failure);
            if tls {
                seen.extend(untrusted_certificate(settings).await.as_ref().map_or_else(Vec::new, described));
            }
            walk.record(if tls { "tls" } else { "ehlo" }, started, Err((seen, explanation)));
            return None;
        }
    };
    if settings.encryption != Encryption::None {
        let seen = shown.certificate.as_deref().map_or_else(|| vec!["encrypted".into()], described);
        walk.record("tls", started, Ok(seen));
    }
    let mut seen = vec![format!("extensions: {}", shown.extensions.join(" "))];
    seen.push(format!("AUTH: {}", if shown.auth.is_empty() { "(none offered)".into() } else { shown.auth.join(" ") }));
    let wanted: &[&str] = match &settings.auth {
        RelayAuth::None => &[],
        RelayAuth::Password { .. } => &["PLAIN", "LOGIN"],
        RelayAuth::OAuth2 { .. } => &["XOAUTH2"],
    };
    let offered = wanted.is_empty() || wanted.iter().any(|w| shown.auth.iter().any(|a| a == w));
    let outcome = if offered {
        Ok(seen)
    } else {
        let explanation = format!(
            "The relay does not offer AUTH {} after {}: check smtp.auth, smtp.encryption (many relays offer AUTH only \
             once encrypted) and that SMTP AUTH is enabled for the mailbox.",
            wanted.join(" or "),
            if settings.encryption == Encryption::None { "EHLO" } else { "TLS" }
        );
        Err((seen, explanation))
    };
    // Encrypted, the look's time went to TLS; in clear, to EHLO.
    let ehlo_started = if settings.encryption == Encryption::None { started } else { Instant::now() };
    walk.record("ehlo", ehlo_started, outcome).then_some(())?;

    // 5. The token, and whether it is for this transport.
    if let RelayAuth::OAuth2 { tokens, .. } = &settings.auth {
        check_token(walk, tokens.as_ref(), Transport::Smtp).await?;
    }

    // 6. AUTH, then MAIL FROM with the sender; RSET and QUIT.
    let started = Instant::now();
    let mut connection = match Connection::open(settings).await {
        Ok(c) => c,
        Err(e) => {
            walk.record("auth", started, Err(failed(e.to_failure(&relay))));
            return None;
        }
    };
    let seen = match &settings.auth {
        RelayAuth::None => "no authentication configured",
        _ => "authenticated",
    };
    walk.record("auth", started, Ok(vec![seen.into()]));
    let started = Instant::now();
    let passed = walk.record("mail_from", started, replied(connection.try_sender(sender).await, &relay));
    if let (true, Some(to)) = (passed, send_to) {
        let started = Instant::now();
        let sent = connection.send(sender, &[to.to_owned()], &test_message(sender, to)).await;
        walk.record("message", started, replied(sent.result, &relay));
    }
    connection.quit().await;
    passed.then_some(())
}

/// A short test message from `sender` to `to`, saying where it comes from.
fn test_message(sender: &str, to: &str) -> Vec<u8> {
    let now = Utc::now();
    let id = format!("<doctor-{}@tidings>", now.timestamp_nanos_opt().unwrap_or_default());
    format!(
        "From: {sender}\r\nTo: {to}\r\nSubject: Tidings doctor: a test message\r\nDate: {}\r\nMessage-ID: {id}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe Tidings doctor sent this message to check \
         the whole path to the relay. Nothing needs to be done.\r\n",
        now.to_rfc2822()
    )
    .into_bytes()
}

/// A failure as a failed step's: what was said, and what to do.
fn failed(failure: Failure) -> (Vec<String>, String) {
    (vec![failure.error], failure.explanation.unwrap_or_else(|| "See what the relay said.".into()))
}

/// The relay's reply as a step's outcome.
fn replied(result: Result<Reply, SmtpError>, relay: &str) -> Result<Vec<String>, (Vec<String>, String)> {
    result.map(|reply| vec![format!("{} {}", reply.code, reply.text)]).map_err(|e| failed(e.to_failure(relay)))
}

/// A delivery outcome as a step's.
fn outcome_of(outcome: Outcome) -> Result<Vec<String>, (Vec<String>, String)> {
    match outcome {
        Outcome::Accepted { reply } => Ok(vec![format!("{} {}", reply.code, reply.text)]),
        Outcome::Failed(f) => Err(failed(f)),
    }
}

/// With an API transport: the API reached as delivery reaches it (its name, the proxy when one is set, TLS), the
/// token and that it is for that API; then, when asked, a whole test message.
async fn api_path(
    walk: &mut Walk,
    settings: &RelaySettings,
    api: &ApiSettings,
    sender: &str,
    send_to: Option<&str>,
) -> Option<()> {
    let started = Instant::now();
    let outcome = match api.client.get(&api.endpoint).send().await {
        Ok(answer) => Ok(vec![format!("{} answers (HTTP {})", api.endpoint, answer.status().as_u16())]),
        Err(e) => Err((
            vec![format!("{}: {}", api.endpoint, tidings_app::error_chain(&e))],
            format!(
                "Check that this machine reaches {} (DNS, firewall, oauth.proxy_url) and that the TLS settings trust it.",
                api.endpoint
            ),
        )),
    };
    walk.record("connect", started, outcome).then_some(())?;
    let RelayAuth::OAuth2 { user, tokens } = &settings.auth else { return Some(()) };
    check_token(walk, tokens.as_ref(), api.transport).await?;
    let Some(to) = send_to else { return Some(()) };
    let started = Instant::now();
    let (_, outcome) = crate::api::send(api, user, tokens.as_ref(), &test_message(sender, to), &[to.to_owned()]).await;
    walk.record("message", started, outcome_of(outcome)).then_some(())
}

async fn check_token(walk: &mut Walk, tokens: &dyn crate::token::TokenSource, transport: Transport) -> Option<()> {
    let started = Instant::now();
    let token = match tokens.access_token().await {
        Ok(token) => token,
        Err(e) => {
            let explanation = match e {
                crate::token::TokenError::ReauthorizationRequired(_) => {
                    "Authorize Tidings (tidings oauth login, or the OAuth page)."
                }
                crate::token::TokenError::Unavailable(_) => {
                    "Check oauth.token_endpoint, oauth.proxy_url and the way out to the provider."
                }
            };
            walk.record("token", started, Err((vec![e.to_string()], explanation.into())));
            return None;
        }
    };
    let Some(claims) = claims::read(token.0.expose()) else {
        return walk
            .record("token", started, Ok(vec!["an access token (opaque: its audience cannot be read here)".into()]))
            .then_some(());
    };
    let audience = claims.audience.clone().unwrap_or_default();
    let mut seen = vec![format!("audience {audience}"), format!("permissions {}", claims.permissions.join(" "))];
    if let Some(tenant) = &claims.tenant {
        seen.push(format!("tenant {tenant}"));
    }
    if let Some(exp) = claims.expires.and_then(|e| DateTime::from_timestamp(e, 0)) {
        seen.push(format!("expires {}", exp.format("%Y-%m-%d %H:%M UTC")));
    }
    let wrong = match (Audience::of(&audience), transport) {
        (Audience::Graph, Transport::Smtp) => Some(
            "This token is for Microsoft Graph, not for Exchange SMTP: the scope must be \
             https://outlook.office.com/SMTP.Send (https://outlook.office365.com/.default for app-only tokens); \
             fix oauth.scopes, then authorize again.",
        ),
        (Audience::ExchangeSmtp, Transport::MicrosoftGraph) => Some(
            "This token is for Exchange SMTP, not for Microsoft Graph: the scope must be \
             https://graph.microsoft.com/Mail.Send (https://graph.microsoft.com/.default for app-only tokens); \
             fix oauth.scopes, then authorize again.",
        ),
        _ => None,
    };
    let outcome = match wrong {
        Some(explanation) => Err((seen, explanation.to_owned())),
        None => Ok(seen),
    };
    walk.record("token", started, outcome).then_some(())
}

/// What an administrator checks of the relay's certificate: whom it is for, its names, its issuer and validity.
fn described(c: &tls::Certificate) -> Vec<String> {
    vec![
        format!("certificate for {}", c.subject),
        format!("names: {}", if c.names.is_empty() { "(none)".into() } else { c.names.join(", ") }),
        format!("issued by {}", c.issuer),
        format!("valid from {} until {}", c.not_before.format("%Y-%m-%d"), c.not_after.format("%Y-%m-%d")),
    ]
}

/// The relay's certificate, taken without trusting it, to show what was refused.
async fn untrusted_certificate(settings: &RelaySettings) -> Option<tls::Certificate> {
    let looking =
        RelaySettings { tls: tls::accept_any(), verify_certificates: false, auth: RelayAuth::None, ..settings.clone() };
    let chain = Connection::fetch_certificates(&looking).await.ok()?;
    tls::Certificate::parse(chain.first()?)
}
