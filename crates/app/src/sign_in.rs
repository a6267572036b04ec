//! Signing in to the web interface: password check against the argon2id hash, lockout after repeated
//! failures, sessions whose cookie value is kept only as a SHA-256, each with its CSRF token; account changes
//! that keep at least one administrator. Every sign-in, failure, sign-out and change is audited.

use crate::{
    App, Error, Result,
    accounts::{DECOY_HASH, hash_password},
    api_tokens::token_hash,
    attempts::{Attempt, Limit},
    later,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::RngCore;
use std::{net::IpAddr, time::Duration};
use tidings_core::{
    account::{self, Role},
    audit::NewAuditEntry,
    config::Locale,
    secret::SecretString,
};
use tidings_store::{Account, AccountChange, NewSession, SessionRecord};

/// How sign-in protects itself, and how long sessions live. Every value is configurable (`tidings serve`).
#[derive(Clone, Copy, Debug)]
pub struct SignInPolicy {
    /// Consecutive failures that lock an account.
    pub max_failures: u32,
    /// How long a locked account stays locked.
    pub lockout: Duration,
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
    /// Failed sign-ins from one client address, whatever the account, after which that address is refused
    /// until `lockout` has passed since the oldest of them (password spraying across accounts).
    pub max_failures_per_address: u32,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
            idle: Duration::from_secs(8 * 3600),
            absolute: Duration::from_secs(7 * 24 * 3600),
            max_failures_per_address: 20,
        }
    }
}

/// A new session: the cookie's value (shown once, to the browser) and the CSRF token.
#[derive(Debug)]
pub struct Session {
    pub token: SecretString,
    pub csrf: String,
    pub account: Account,
    pub expires_at: DateTime<Utc>,
}

/// An account change asked for by an administrator (or by the account itself for its language and password).
#[derive(Debug, Default)]
pub struct AccountUpdate {
    pub role: Option<Role>,
    pub password: Option<SecretString>,
    /// The account's password now, checked before a new one replaces it (someone changing their own).
    pub current_password: Option<SecretString>,
    pub locale: Option<Option<Locale>>,
    pub unlock: bool,
}

pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The one answer to a refused sign-in, whether the name is unknown, the password wrong or the account locked:
/// nothing tells which account names exist. The audit log records the real reason.
const REFUSED: &str = "wrong user name or password; after repeated failures an account is locked for a while";

impl App {
    /// Admits one sign-in attempt from `from`, counted against the address's limit before any password is
    /// checked (both sign-in pages share it).
    pub(crate) async fn sign_in_attempt(&self, from: IpAddr, policy: &SignInPolicy) -> Result<Attempt<'_, IpAddr>> {
        let limit = Limit { max: policy.max_failures_per_address, lockout: policy.lockout };
        self.sign_in_addresses.begin(from, limit, self.passwords.wait()).await.map_err(|_| {
            self.metrics.count("tidings_sign_ins_total", "throttled");
            Error::Throttled("too many failed sign-ins from this address; wait a while, then try again".into())
        })
    }

    /// Checks a user name and password; on success opens a session. `from` (the client's address) is limited
    /// and goes into the audit log. Every attempt is counted before its password is checked, so that no number
    /// of concurrent attempts gets more guesses than the account's and the address's limits; a locked account
    /// costs the same check as any other and gets the same answer.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &SecretString,
        from: IpAddr,
        policy: &SignInPolicy,
    ) -> Result<Session> {
        let now = Utc::now();
        let shown = account::shown_name(username);
        let audit = |action: &str, fields: Vec<String>| NewAuditEntry {
            actor: format!("web:{shown}"),
            action: action.to_owned(),
            fields: [vec![format!("from {from}")], fields].concat(),
        };
        let attempt = self.sign_in_attempt(from, policy).await?;
        let refused = async |attempt: Attempt<'_, IpAddr>, why: &str| {
            attempt.failed();
            self.store.record_audit(&audit("sign-in.refused", vec![why.to_owned()])).await?;
            self.metrics.count("tidings_sign_ins_total", "refused");
            Err(Error::Refused(REFUSED.into()))
        };
        let found = match account::validate_username(username) {
            Ok(()) => self.store.account_for_login(username).await?,
            Err(_) => None,
        };
        let Some(record) = found else {
            self.passwords.verify(username, password, DECOY_HASH, false, async || Ok(())).await?;
            return refused(attempt, "unknown user").await;
        };
        let Some(failures) = self.store.login_attempt(record.account.id, policy.max_failures, now).await? else {
            self.passwords.verify(username, password, DECOY_HASH, false, async || Ok(())).await?;
            return refused(attempt, "locked").await;
        };
        if !self.passwords.verify(username, password, &record.password_hash, false, async || Ok(())).await?.valid {
            let lock = (failures >= policy.max_failures).then(|| later(now, policy.lockout));
            let why = match lock {
                Some(_) => format!("wrong password; locked for {} after {failures} failures", minutes(policy.lockout)),
                None => format!("wrong password ({failures} of {})", policy.max_failures),
            };
            self.store.login_failed(record.account.id, lock, &audit("sign-in.refused", vec![why])).await?;
            attempt.failed();
            self.metrics.count("tidings_sign_ins_total", "refused");
            return Err(Error::Refused(REFUSED.into()));
        }
        attempt.succeeded();
        let token = random_token();
        let csrf = random_token();
        let expires_at = later(now, policy.idle.min(policy.absolute));
        let session = NewSession {
            token_hash: token_hash(&token),
            account_id: record.account.id,
            csrf: csrf.clone(),
            created_at: now,
            expires_at,
        };
        self.store.login_succeeded(&session, &audit("sign-in", vec![])).await?;
        self.metrics.count("tidings_sign_ins_total", "ok");
        Ok(Session { token: SecretString::new(token), csrf, account: record.account, expires_at })
    }

    /// The live session for a cookie's value, its expiry slid forward.
    pub async fn session(&self, token: &str, policy: &SignInPolicy) -> Result<Option<SessionRecord>> {
        let now = Utc::now();
        let absolute = chrono::Duration::from_std(policy.absolute).unwrap_or(chrono::TimeDelta::MAX);
        Ok(self.store.session(&token_hash(token), now, later(now, policy.idle), absolute).await?)
    }

    pub async fn sign_out(&self, token: &str, username: &str) -> Result<()> {
        let audit = NewAuditEntry { actor: format!("web:{username}"), action: "sign-out".into(), fields: vec![] };
        Ok(self.store.end_session(&token_hash(token), Some(&audit)).await?)
    }

    /// Changes an account. Refuses to leave no administrator, and checks a new password's strength.
    pub async fn update_account(&self, actor: &str, id: i64, update: AccountUpdate) -> Result<()> {
        self.refuse_on_follower().await?;
        let accounts = self.store.accounts().await?;
        let target = accounts.iter().find(|a| a.id == id).ok_or_else(|| Error::Input(format!("no account {id}")))?;
        if update.role.is_some_and(|r| r != Role::Administrator) && target.role == Role::Administrator {
            ensure_another_administrator(&accounts, id)?;
        }
        if let (Some(current), Some(_)) = (&update.current_password, &update.password) {
            let record = self.store.account_for_login(&target.username).await?;
            let hash = record.map(|r| r.password_hash).unwrap_or_else(|| DECOY_HASH.to_owned());
            if !self.passwords.verify(&target.username, current, &hash, false, async || Ok(())).await?.valid {
                return Err(Error::Input(
                    "current password: this is not the account's password now; nothing was changed".into(),
                ));
            }
        }
        let password_hash = match &update.password {
            Some(p) => {
                account::validate_password(p.expose()).map_err(|why| Error::Input(format!("password: {why}")))?;
                Some(hash_password(p)?)
            }
            None => None,
        };
        let mut fields = vec![target.username.clone()];
        fields.extend(update.role.map(|r| format!("role={r}")));
        fields.extend(password_hash.as_ref().map(|_| "password".to_owned()));
        fields.extend(
            update.locale.map(|l| format!("locale={}", l.map_or("browser", tidings_core::config::keys::locale_name))),
        );
        if update.unlock {
            fields.push("unlocked".into());
        }
        let change = AccountChange { role: update.role, password_hash, locale: update.locale, unlock: update.unlock };
        let audit = NewAuditEntry { actor: actor.to_owned(), action: "account.change".into(), fields };
        if self.store.change_account(id, &change, &audit).await? {
            Ok(())
        } else {
            Err(Error::Input(format!("no account {id}")))
        }
    }

    /// Deletes an account (and its sessions), never the last administrator.
    pub async fn delete_account(&self, actor: &str, id: i64) -> Result<()> {
        self.refuse_on_follower().await?;
        let accounts = self.store.accounts().await?;
        let target = accounts.iter().find(|a| a.id == id).ok_or_else(|| Error::Input(format!("no account {id}")))?;
        if target.role == Role::Administrator {
            ensure_another_administrator(&accounts, id)?;
        }
        let audit = NewAuditEntry {
            actor: actor.to_owned(),
            action: "account.delete".into(),
            fields: vec![target.username.clone()],
        };
        self.store.delete_account(id, &audit).await?;
        Ok(())
    }
}

fn ensure_another_administrator(accounts: &[Account], id: i64) -> Result<()> {
    if accounts.iter().any(|a| a.id != id && a.role == Role::Administrator) {
        Ok(())
    } else {
        Err(Error::Conflict("this is the last administrator account; make another account administrator first".into()))
    }
}

fn minutes(d: Duration) -> String {
    let minutes = d.as_secs().div_ceil(60);
    if minutes == 1 { "1 minute".into() } else { format!("{minutes} minutes") }
}
