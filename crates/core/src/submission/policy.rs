//! The sender policies' decision on a device's message: whom it is sent as upstream, and what it becomes (see
//! the gateway's documentation). The gateway only looks up what the decision needs and stores the result.

use super::{reply::Reply, rewrite, session::Envelope};
use crate::config::gateway::SenderPolicy;

/// What the decision needs besides the message.
#[derive(Clone, Copy, Debug, Default)]
pub struct Senders<'a> {
    /// The configuration's `sender`.
    pub sender: Option<&'a str>,
    /// `gateway.bulk_address`.
    pub bulk_address: Option<&'a str>,
    /// Under `login_user`, the mailbox the authenticated account connected, if it did.
    pub own_mailbox: Option<&'a str>,
}

/// A message as it goes upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub mail_from: String,
    pub data: Vec<u8>,
    /// Under `login_user`, the device account whose own mailbox sends it.
    pub mailbox_of: Option<String>,
}

/// Applies `policy` to `message` (taken, its header rewritten where it lies); the reply refusing it otherwise.
pub fn apply(policy: SenderPolicy, envelope: &Envelope, senders: Senders<'_>, message: Vec<u8>) -> Result<Sent, Reply> {
    match policy {
        SenderPolicy::Fixed | SenderPolicy::Bulk => {
            let sender = if policy == SenderPolicy::Bulk { senders.bulk_address } else { senders.sender };
            let Some(sender) = sender else {
                return Err(Reply::new(
                    451,
                    "4.3.5",
                    "no sender address is configured on Tidings; ask its administrator",
                ));
            };
            Ok(Sent { mail_from: sender.to_owned(), data: rewrite::send_as(message, sender), mailbox_of: None })
        }
        SenderPolicy::AllowUser => {
            let Some(login) = &envelope.login else {
                return Err(Reply::new(550, "5.7.1", "authenticate to send as your own address"));
            };
            let from = rewrite::from_address(&message).unwrap_or_default();
            if !login.addresses.iter().any(|a| a.eq_ignore_ascii_case(&from)) {
                return Err(Reply::new(550, "5.7.1", &format!("this account may not send as <{from}> (From header)")));
            }
            Ok(Sent { mail_from: envelope.mail_from.clone(), data: message, mailbox_of: None })
        }
        SenderPolicy::LoginUser => {
            let Some(login) = &envelope.login else {
                return Err(Reply::new(530, "5.7.0", "authentication required"));
            };
            let Some(mailbox) = senders.own_mailbox else {
                return Err(Reply::new(
                    550,
                    "5.7.0",
                    "this account has not connected its mailbox: sign in to Tidings' \"My mailbox\" page (/mailbox) \
                     with the device's user name and password and connect it",
                ));
            };
            Ok(Sent {
                mail_from: mailbox.to_owned(),
                data: rewrite::send_as(message, mailbox),
                mailbox_of: Some(login.username.clone()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::session::Login;

    const SCAN: &[u8] = b"From: Scanner <scanner@printers.local>\r\nSubject: Scan\r\n\r\nbody\r\n";

    fn envelope(login: Option<&[&str]>) -> Envelope {
        Envelope {
            mail_from: "scanner@printers.local".into(),
            rcpt_to: vec!["ops@example.com".into()],
            login: login.map(|addresses| Login {
                username: "scanner".into(),
                addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            }),
        }
    }

    #[test]
    fn each_policy_decides_the_sender_or_refuses_with_its_reply() {
        let senders =
            Senders { sender: Some("alerts@example.com"), bulk_address: Some("bulk@example.com"), own_mailbox: None };
        let fixed = apply(SenderPolicy::Fixed, &envelope(None), senders, SCAN.to_vec()).unwrap();
        assert_eq!(fixed.mail_from, "alerts@example.com");
        assert!(fixed.data.starts_with(b"From: alerts@example.com\r\nReply-To: Scanner <scanner@printers.local>\r\n"));
        assert_eq!(
            apply(SenderPolicy::Bulk, &envelope(None), senders, SCAN.to_vec()).unwrap().mail_from,
            "bulk@example.com"
        );
        let none = apply(SenderPolicy::Fixed, &envelope(None), Senders::default(), SCAN.to_vec()).unwrap_err();
        assert_eq!(none.code, 451);

        let allowed =
            apply(SenderPolicy::AllowUser, &envelope(Some(&["scanner@printers.local"])), senders, SCAN.to_vec());
        assert_eq!(allowed.unwrap().data, SCAN, "sent as it came");
        let other = apply(SenderPolicy::AllowUser, &envelope(Some(&["x@example.com"])), senders, SCAN.to_vec());
        assert_eq!(other.unwrap_err().code, 550);
        assert_eq!(apply(SenderPolicy::AllowUser, &envelope(None), senders, SCAN.to_vec()).unwrap_err().code, 550);

        let own = Senders { own_mailbox: Some("scanner@example.com"), ..senders };
        let login_user = apply(SenderPolicy::LoginUser, &envelope(Some(&[])), own, SCAN.to_vec()).unwrap();
        assert_eq!(
            (login_user.mail_from.as_str(), login_user.mailbox_of.as_deref()),
            ("scanner@example.com", Some("scanner"))
        );
        let unconnected = apply(SenderPolicy::LoginUser, &envelope(Some(&[])), senders, SCAN.to_vec()).unwrap_err();
        assert!(unconnected.code == 550 && unconnected.lines.join(" ").contains("/mailbox"), "{unconnected:?}");
        assert_eq!(apply(SenderPolicy::LoginUser, &envelope(None), own, SCAN.to_vec()).unwrap_err().code, 530);
    }
}
