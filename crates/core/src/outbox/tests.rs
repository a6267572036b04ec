use super::*;
use chrono::TimeZone;
use std::time::Duration;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn reply(code: u16, line: &str) -> Reply {
    Reply::from_lines(code, &[line.to_owned()])
}

fn pending(recipients: &[&str], attempts: u32) -> Pending {
    Pending { created_at: t(0), attempts, recipients: recipients.iter().map(|a| Recipient::pending(*a)).collect() }
}

fn report(at: i64, recipients: Vec<(&str, RcptResult)>, outcome: Outcome) -> AttemptReport {
    AttemptReport {
        started_at: t(at),
        finished_at: t(at + 1),
        recipients: recipients.into_iter().map(|(a, r)| (a.to_owned(), r)).collect(),
        outcome,
        notes: vec![],
    }
}

fn failure(class: Class, stage: Stage, r: Option<Reply>) -> Outcome {
    let error = r.as_ref().map(ToString::to_string).unwrap_or_else(|| "connection refused".into());
    Outcome::Failed(Failure {
        class,
        scope: super::reply::scope(stage, r.as_ref()),
        stage,
        text: r.as_ref().map_or(error.clone(), |r| r.text.clone()),
        reply: r,
        error,
        explanation: None,
        retry_after: None,
    })
}

const POLICY: RetryPolicy = RetryPolicy {
    first: Duration::from_secs(60),
    max: Duration::from_secs(600),
    give_up_after: Duration::from_secs(3600),
};

#[test]
fn accepted_for_every_recipient_is_delivered() {
    let r = report(
        5,
        vec![("a@x.test", RcptResult::Accepted)],
        Outcome::Accepted { reply: reply(250, "250 2.0.0 OK queued") },
    );
    let s = settle(&pending(&["a@x.test"], 0), &r, &POLICY);
    assert_eq!((s.status, s.next_attempt_at, s.attempt.number), (Status::Delivered, None, 1));
    assert_eq!(
        (s.attempt.result.as_str(), s.attempt.reply_code, s.attempt.text.as_str()),
        ("delivered", Some(250), "OK queued")
    );
    assert_eq!(s.recipients[0].state, RecipientState::Delivered);
}

#[test]
fn a_transient_failure_defers_with_growing_delays() {
    let out = failure(Class::Transient, Stage::Connect, None);
    let s = settle(&pending(&["a@x.test"], 0), &report(10, vec![], out.clone()), &POLICY);
    assert_eq!((s.status, s.next_attempt_at), (Status::Deferred, Some(t(11 + 60))));
    assert_eq!(s.attempt.result, "transient");
    let s = settle(&pending(&["a@x.test"], 2), &report(10, vec![], out), &POLICY);
    assert_eq!(s.next_attempt_at, Some(t(11 + 240)), "third attempt: 60 s doubled twice");
}

#[test]
fn a_permanent_refusal_fails_at_once() {
    let out = failure(Class::Permanent, Stage::Message, Some(reply(554, "554 5.2.252 SendAsDenied")));
    let s = settle(&pending(&["a@x.test", "b@x.test"], 0), &report(1, vec![], out), &POLICY);
    assert_eq!((s.status, s.next_attempt_at), (Status::Failed, None));
    assert!(s.recipients.iter().all(|r| r.state == RecipientState::Failed));
    assert_eq!((s.attempt.reply_code, s.attempt.enhanced_code.as_deref()), (Some(554), Some("5.2.252")));
}

#[test]
fn recipients_are_settled_one_by_one() {
    let r = report(
        1,
        vec![
            ("a@x.test", RcptResult::Accepted),
            ("b@x.test", RcptResult::Refused(reply(550, "550 5.1.1 no such user"))),
            ("c@x.test", RcptResult::Refused(reply(452, "452 4.2.2 mailbox full"))),
        ],
        Outcome::Accepted { reply: reply(250, "250 OK") },
    );
    let s = settle(&pending(&["a@x.test", "b@x.test", "c@x.test"], 0), &r, &POLICY);
    let states: Vec<_> = s.recipients.iter().map(|r| r.state).collect();
    assert_eq!(states, [RecipientState::Delivered, RecipientState::Failed, RecipientState::Pending]);
    assert_eq!(s.status, Status::Deferred, "c is retried");

    // The retry names only c; once it is accepted the message ends failed (b never got it), not delivered.
    let next = Pending { created_at: t(0), attempts: 1, recipients: s.recipients };
    let r = report(100, vec![("c@x.test", RcptResult::Accepted)], Outcome::Accepted { reply: reply(250, "250 OK") });
    let s = settle(&next, &r, &POLICY);
    assert_eq!(s.status, Status::Failed);
    assert_eq!(s.recipients[2].state, RecipientState::Delivered);
    assert!(s.recipients[1].reply.as_deref().unwrap().contains("no such user"));
}

#[test]
fn every_recipient_refused_at_rcpt() {
    let out = failure(Class::Permanent, Stage::RcptTo, Some(reply(550, "550 5.7.1 relaying denied")));
    let r = report(1, vec![("a@x.test", RcptResult::Refused(reply(550, "550 5.7.1 relaying denied")))], out);
    let s = settle(&pending(&["a@x.test"], 0), &r, &POLICY);
    assert_eq!(s.status, Status::Failed);
}

#[test]
fn authentication_and_reauthorization_problems_wait_instead_of_failing() {
    for class in [Class::AuthFailed, Class::ReauthRequired] {
        let out = failure(class, Stage::Auth, Some(reply(535, "535 5.7.139 Authentication unsuccessful")));
        let s = settle(&pending(&["a@x.test"], 0), &report(1, vec![], out), &POLICY);
        assert_eq!(s.status, Status::Deferred, "{class:?}");
        assert_eq!(s.recipients[0].state, RecipientState::Pending);
    }
}

#[test]
fn after_the_lifetime_a_deferred_message_fails_saying_why() {
    let out = failure(Class::Transient, Stage::Connect, None);
    let s = settle(&pending(&["a@x.test"], 9), &report(3600, vec![], out), &POLICY);
    assert_eq!(s.status, Status::Failed);
    let why = s.last_error.unwrap();
    assert!(why.contains("gave up after 1h") && why.contains("connection refused"), "{why}");
}

#[test]
fn statuses_parse() {
    for st in Status::ALL {
        assert_eq!(st.as_str().parse::<Status>(), Ok(st));
    }
    assert!("lost".parse::<Status>().unwrap_err().reason().contains("queued"));
    assert!(Status::Delivered.is_final() && !Status::Deferred.is_final());
}

#[test]
fn a_retry_puts_failed_recipients_back_unless_nothing_is_left_to_send() {
    let r = |address: &str, state| Recipient { address: address.into(), state, reply: None };
    let list = [r("a@example.com", RecipientState::Delivered), r("b@example.com", RecipientState::Failed)];
    let again = requeued(Status::Failed, &list).unwrap();
    assert_eq!(again[1].state, RecipientState::Pending);
    assert_eq!(again[0].state, RecipientState::Delivered, "a delivered recipient is not sent again");
    assert_eq!(requeued(Status::Delivered, &list), Err(Status::Delivered));
    assert_eq!(requeued(Status::Sending, &list), Err(Status::Sending));
    assert_eq!(requeued(Status::Deferred, &[r("a@example.com", RecipientState::Delivered)]), Err(Status::Deferred));
}

#[test]
fn a_message_delivered_to_some_is_partly_delivered_and_each_refusal_is_explained() {
    let r = |address: &str, state, reply: Option<&str>| Recipient {
        address: address.into(),
        state,
        reply: reply.map(str::to_owned),
    };
    let some = [
        r("ok@example.com", RecipientState::Delivered, None),
        r("gone@example.com", RecipientState::Failed, Some("550 5.1.1 User unknown")),
    ];
    assert!(partly_delivered(Status::Failed, &some));
    assert!(!partly_delivered(Status::Delivered, &some) && !partly_delivered(Status::Failed, &some[1..]));
    let why =
        explain::explain_refusal("550 5.1.1 User unknown", crate::config::Locale::En).expect("5.1.1 is explained");
    assert!(why.to_lowercase().contains("address") || why.to_lowercase().contains("mailbox"), "{why}");
    assert_eq!(
        explain::explain_refusal("connection reset", crate::config::Locale::En),
        None,
        "a local error has no code to explain"
    );
}
