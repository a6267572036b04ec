//! Backups: the database copied while the daemon runs, and the key that opens its secrets, in one archive
//! (tar: `manifest.json`, `secret.key`, and with SQLite `tidings.db`); and the way back: into an empty data
//! directory only, every sealed secret opened with the archive's key before the restore says done.

use crate::{App, Error, Result, cipher::SecretKey, data_dir::DataDir};
use std::{
    fs,
    io::{Read, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// The archive's own description.
const MANIFEST: &str = "manifest.json";
const DATABASE: &str = "tidings.db";
const KEY: &str = "secret.key";
/// The largest member read back (a database of many large messages is larger: a restore reads it in parts).
const SMALL: u64 = 1 << 20;

/// What a backup holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Made {
    /// The database is in the archive (SQLite); without it, only the key (PostgreSQL: the database is pg_dump's).
    pub database: bool,
    pub bytes: u64,
}

impl App {
    /// Writes the archive at `file` (created 0600, never replacing one unless `replace`), with the key `key`.
    pub async fn backup(&self, file: &Path, key: &SecretKey, replace: bool) -> Result<Made> {
        if file.exists() && !replace {
            return Err(Error::Input(format!("{} exists already; give --force to replace it", file.display())));
        }
        let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let staging =
            tempfile::Builder::new().prefix(".tidings-backup-").tempdir_in(dir).map_err(|e| Error::io(dir, e))?;
        let copy = staging.path().join(DATABASE);
        let database = match self.store.backup_into(&copy).await {
            Ok(()) => true,
            Err(tidings_store::Error::Unsupported(_)) => false,
            Err(e) => return Err(e.into()),
        };
        let manifest = serde_json::json!({
            "tidings": env!("CARGO_PKG_VERSION"),
            "made_at": chrono::Utc::now().to_rfc3339(),
            "database": if database { "sqlite" } else { "postgresql (not in the archive: pg_dump)" },
        });
        let partial = staging.path().join("archive.tar");
        let (partial_path, key_text) = (partial.clone(), key.to_base64());
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let out = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial_path)?;
            let mut tar = tar::Builder::new(out);
            let mut add = |name: &str, bytes: &[u8]| {
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o600);
                header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
                header.set_cksum();
                tar.append_data(&mut header, name, bytes)
            };
            add(MANIFEST, manifest.to_string().as_bytes())?;
            add(KEY, key_text.as_bytes())?;
            if database {
                let mut file = fs::File::open(&copy)?;
                let mut header = tar::Header::new_gnu();
                header.set_size(file.metadata()?.len());
                header.set_mode(0o600);
                header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
                header.set_cksum();
                tar.append_data(&mut header, DATABASE, &mut file)?;
            }
            let mut out = tar.into_inner()?;
            out.flush()?;
            out.sync_all()?;
            Ok(out.metadata()?.len())
        })
        .await
        .map_err(|e| Error::Input(format!("the backup stopped: {e}")))?
        .map_err(|e| Error::io(&partial, e))?;
        // Whole or not at all: the archive takes its name once complete.
        fs::rename(&partial, file).map_err(|e| Error::io(file, e))?;
        Ok(Made { database, bytes: written })
    }
}

/// Restores the archive `file` into `dir`, which must be empty or absent; opens every sealed secret with the
/// archive's key before returning. On any failure, what was written is removed again.
pub async fn restore(file: &Path, dir: &DataDir) -> Result<App> {
    let root = dir.root().to_owned();
    let existing = fs::read_dir(&root).map(|mut d| d.next().is_some()).unwrap_or(false);
    if existing {
        return Err(Error::Input(format!(
            "{} is not empty: a restore goes into an empty data directory only, never over existing data",
            root.display()
        )));
    }
    let (archive, target) = (file.to_owned(), root.clone());
    let unpacked = tokio::task::spawn_blocking(move || unpack(&archive, &target))
        .await
        .map_err(|e| Error::Input(format!("the restore stopped: {e}")))?;
    let outcome = match unpacked {
        Ok(()) => verify(dir).await,
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        for name in [DATABASE, KEY, "tidings.db-wal", "tidings.db-shm"] {
            let _ = fs::remove_file(root.join(name));
        }
    }
    outcome
}

/// Writes the archive's key and database into `root` (0700, files 0600); refuses any other member.
fn unpack(file: &Path, root: &Path) -> Result<()> {
    let opened = fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let mut tar = tar::Archive::new(opened);
    let (mut key, mut database, mut manifest) = (false, false, false);
    fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(root, e))?;
    let not_ours =
        |why: String| Error::Input(format!("{}: not an archive of `tidings backup` ({why})", file.display()));
    for entry in tar.entries().map_err(|e| not_ours(e.to_string()))? {
        let mut entry = entry.map_err(|e| not_ours(e.to_string()))?;
        let name = entry.path().map_err(|e| not_ours(e.to_string()))?.to_string_lossy().into_owned();
        match name.as_str() {
            MANIFEST => {
                let mut text = String::new();
                entry.by_ref().take(SMALL).read_to_string(&mut text).map_err(|e| not_ours(e.to_string()))?;
                serde_json::from_str::<serde_json::Value>(&text).map_err(|e| not_ours(format!("{MANIFEST}: {e}")))?;
                manifest = true;
            }
            KEY | DATABASE => {
                let path = root.join(&name);
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                std::io::copy(&mut entry, &mut out).map_err(|e| Error::io(&path, e))?;
                out.sync_all().map_err(|e| Error::io(&path, e))?;
                if name == KEY { key = true } else { database = true }
            }
            other => return Err(not_ours(format!("it holds {other:?}"))),
        }
    }
    match (manifest, key, database) {
        (true, true, true) => Ok(()),
        (true, true, false) => Err(Error::Input(format!(
            "{}: the archive holds the key only (its database was on PostgreSQL): restore the database with \
             pg_restore, and the key with --secret-key or into DIR/secret.key",
            file.display()
        ))),
        _ => Err(not_ours("it lacks the manifest, the key or the database".into())),
    }
}

/// Opens the restored directory and every secret it seals, so that a wrong or damaged key is found now, not on
/// the day a secret is needed.
async fn verify(dir: &DataDir) -> Result<App> {
    let app = App::open(dir.clone(), None).await?;
    for sealed in app.store.sealed_secrets().await? {
        app.cipher.open(&sealed.name, &sealed.sealed).map_err(|e| {
            Error::Key(format!("the archive's key does not open the stored secret {}: {e}", sealed.name))
        })?;
    }
    for record in app.authorizations().await? {
        app.refresh_token(record.owner).await.map_err(|e| {
            Error::Key(format!("the archive's key does not open a stored authorization's refresh token: {e}"))
        })?;
    }
    Ok(app)
}
