//! Property tests over the submission server's parser, session and data reader: whatever a client sends, no
//! panic, no endless loop, every reply well-formed, and a message never keeps a bare newline.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tidings_core::submission::{
    command::parse,
    data::{BareNewlines, DataReader, Fed},
    reply::Reply,
    session::{Login, Policy, SenderCheck, Session, Step},
};

fn well_formed(reply: &Reply) {
    let wire = reply.wire();
    assert!(wire.ends_with("\r\n"), "{wire:?}");
    for line in wire.split_terminator("\r\n") {
        assert!(line.len() >= 4 && line.as_bytes()[..3].iter().all(u8::is_ascii_digit), "{wire:?}");
        assert!(matches!(line.as_bytes()[3], b' ' | b'-'), "{wire:?}");
        assert!(!line.contains(['\r', '\n']), "{wire:?}");
    }
    assert!((200..600).contains(&reply.code), "{wire:?}");
}

fn policy(trusted: bool, tls_required: bool) -> Policy {
    Policy {
        host_name: "tidings.test".into(),
        max_size: 10_000,
        max_recipients: 3,
        starttls_available: true,
        auth_needs_tls: true,
        tls_required,
        trusted_network: trusted,
        recipient_domains: vec!["example.com".into()],
        max_errors: 20,
    }
}

/// Lines that look like SMTP, and some that do not.
fn command_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            "EHLO dev",
            "HELO dev",
            "MAIL FROM:<a@example.com>",
            "MAIL FROM:<>",
            "MAIL FROM:<a@b> SIZE=99999999",
            "RCPT TO:<x@example.com>",
            "RCPT TO:<x@other.org>",
            "DATA",
            "RSET",
            "NOOP",
            "QUIT",
            "STARTTLS",
            "AUTH PLAIN",
            "AUTH LOGIN",
            "AUTH CRAM-MD5",
            "VRFY root",
            "EXPN all",
            "HELP",
            "MAIL FROM:<a@b> BOGUS=1",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..700),
        "[A-Za-z:<>@. =0-9]{0,80}".prop_map(|s| s.into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_line_parses_or_gets_a_well_formed_refusal(line in prop::collection::vec(any::<u8>(), 0..1200)) {
        if let Err(reply) = parse(&line) {
            well_formed(&reply);
            prop_assert!(reply.code >= 500);
        }
    }

    #[test]
    fn any_command_sequence_keeps_the_session_sound(
        lines in prop::collection::vec(command_line(), 0..40),
        trusted in any::<bool>(),
        tls_required in any::<bool>(),
        check in prop_oneof![
            Just(SenderCheck::Rewritten),
            Just(SenderCheck::AccountAddresses),
            Just(SenderCheck::LoginRequired),
        ],
    ) {
        let mut session = Session::new(policy(trusted, tls_required), check, false);
        well_formed(&session.greeting());
        let mut delivered = 0;
        for line in lines {
            let step = match parse(&line) {
                Ok(command) => session.command(command),
                Err(reply) => Step::Reply(reply),
            };
            match step {
                Step::Reply(reply) => well_formed(&reply),
                Step::StartTls => session.tls_started(),
                Step::Auth { .. } => {
                    well_formed(&session.authenticated(Login { username: "u".into(), addresses: vec!["a@example.com".into()] }));
                }
                Step::Data => {
                    let envelope = session.take_envelope();
                    let envelope = envelope.expect("DATA is only allowed with a sender and a recipient");
                    prop_assert!(!envelope.rcpt_to.is_empty() && envelope.rcpt_to.len() <= 3);
                    prop_assert!(envelope.rcpt_to.iter().all(|r| r.to_ascii_lowercase().ends_with("@example.com")));
                    prop_assert!(trusted || envelope.login.is_some(), "no relaying without authentication");
                    prop_assert!(
                        check != SenderCheck::LoginRequired || envelope.login.is_some(),
                        "login_user sends only from an account's own mailbox"
                    );
                    delivered += 1;
                }
                Step::Quit => break,
            }
        }
        prop_assert!(delivered <= 40);
    }

    #[test]
    fn any_data_ends_only_at_crlf_dot_crlf_and_never_keeps_a_bare_newline(
        body in prop::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..1500),
        chunk in 1usize..64,
        normalize in any::<bool>(),
    ) {
        let bare = if normalize { BareNewlines::Normalize } else { BareNewlines::Reject };
        let mut reader = DataReader::new(2000, bare);
        let mut input = body.clone();
        input.extend_from_slice(b"\r\n.\r\n");
        let mut done = None;
        let mut offset = 0;
        for piece in input.chunks(chunk) {
            if let Fed::Done { used, message } = reader.feed(piece) {
                done = Some((offset + used, message));
                break;
            }
            offset += piece.len();
        }
        let (used, message) = done.expect("the final CRLF.CRLF always ends the data");
        // It may end earlier only at a CRLF "." CRLF inside the body itself.
        if used < input.len() {
            prop_assert!(input[..used].ends_with(b"\r\n.\r\n") || used == 3 && input.starts_with(b".\r\n"));
        }
        if let Ok(message) = message {
            prop_assert!(message.len() <= 2000);
            for (i, b) in message.iter().enumerate() {
                if *b == b'\n' { prop_assert!(i > 0 && message[i - 1] == b'\r'); }
                if *b == b'\r' { prop_assert!(message.get(i + 1) == Some(&b'\n')); }
            }
        }
    }
}
