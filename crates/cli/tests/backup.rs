//! `tidings backup` while the daemon runs and `tidings restore` into an empty directory: messages, accounts,
//! secrets and an authorization come back whole; a wrong key, a directory in use and a file that is not an
//! archive are refused, leaving nothing behind.

#![allow(clippy::unwrap_used)] // a failed step is a failed test

mod support;

use std::{io::Write, path::Path};
use support::*;
use tidings_app::{App, authorization::Owner, data_dir::DataDir};
use tidings_core::secret::{SecretName, SecretString};

async fn opened(dir: &Path) -> App {
    App::open(DataDir::new(dir), None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_while_the_daemon_runs_restores_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    ok(&dir, &["init"]);
    let secret = run(&dir, &["config", "set-secret", "smtp.password"], "relay-password-1\n");
    assert!(secret.status.success(), "{}", stderr(&secret));
    ok(
        &dir,
        &[
            "config",
            "set",
            "sender=alerts@example.com",
            "smtp.host=relay.example.com",
            "smtp.auth=password",
            "smtp.username=alerts@example.com",
        ],
    );
    {
        let app = opened(&dir).await;
        let token = SecretString::new("0.refresh-token-of-the-relay-account");
        app.authorized(Owner::Relay, "test", Some(&token), Some("alerts@example.com")).await.unwrap();
        app.create_account(
            "test",
            "jane",
            &SecretString::new("a-long-password-1"),
            tidings_core::account::Role::Viewer,
        )
        .await
        .unwrap();
    }
    for i in 0..3 {
        ok(&dir, &["send", "--to", "ops@example.com", "--subject", &format!("kept {i}"), "--body", "x"]);
    }
    // The daemon runs (and delivers nothing: the relay is not reachable) while the backup is taken.
    let daemon = Daemon::start(&dir, &[]);
    let archive = tmp.path().join("backup.tar");
    let said = ok(&dir, &["backup", archive.to_str().unwrap()]);
    assert!(said.contains("the database and the key"), "{said}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777, 0o600, "the archive holds the key");
    let err = fails(&dir, &["backup", archive.to_str().unwrap()]);
    assert!(err.contains("exists already") && err.contains("--force"), "{err}");
    drop(daemon);

    let restored = tmp.path().join("restored");
    let said = ok(&restored, &["restore", archive.to_str().unwrap()]);
    assert!(said.contains("every stored secret opened"), "{said}");
    let app = opened(&restored).await;
    assert_eq!(app.messages(None, 10, None).await.unwrap().len(), 3, "the messages");
    assert!(app.accounts().await.unwrap().iter().any(|a| a.username == "jane"), "the accounts");
    assert_eq!(app.secret(SecretName::SmtpPassword).await.unwrap(), Some(SecretString::new("relay-password-1")));
    assert_eq!(
        app.refresh_token(Owner::Relay).await.unwrap().map(|t| t.expose().to_owned()).as_deref(),
        Some("0.refresh-token-of-the-relay-account"),
        "the authorization"
    );

    // Never over existing data.
    let err = fails(&restored, &["restore", archive.to_str().unwrap()]);
    assert!(err.contains("not empty") && err.contains("never over existing data"), "{err}");
}

#[test]
fn a_wrong_key_or_a_file_that_is_not_an_archive_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    ok(&dir, &["init"]);
    let secret = run(&dir, &["config", "set-secret", "oauth.client_secret"], "client-secret-1\n");
    assert!(secret.status.success(), "{}", stderr(&secret));
    let archive = tmp.path().join("backup.tar");
    ok(&dir, &["backup", archive.to_str().unwrap()]);

    // The same archive with another node's key.
    let other = tmp.path().join("other");
    ok(&other, &["init"]);
    let forged = tmp.path().join("forged.tar");
    {
        let mut input = tar::Archive::new(std::fs::File::open(&archive).unwrap());
        let mut output = tar::Builder::new(std::fs::File::create(&forged).unwrap());
        for entry in input.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut header = entry.header().clone();
            if name == "secret.key" {
                let key = std::fs::read(other.join("secret.key")).unwrap();
                header.set_size(key.len() as u64);
                header.set_cksum();
                output.append_data(&mut header, &name, key.as_slice()).unwrap();
            } else {
                output.append_data(&mut header, &name, &mut entry).unwrap();
            }
        }
        output.into_inner().unwrap().flush().unwrap();
    }
    let target = tmp.path().join("target");
    let err = fails(&target, &["restore", forged.to_str().unwrap()]);
    assert!(err.contains("secret key does not match"), "{err}");
    assert!(std::fs::read_dir(&target).map(|d| d.count()).unwrap_or(0) == 0, "nothing left behind");

    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar archive at all, just text").unwrap();
    let err = fails(&target, &["restore", junk.to_str().unwrap()]);
    assert!(err.contains("not an archive of `tidings backup`"), "{err}");
}
