//! Reading the files an operator or the configuration names (certificates, keys, CA bundles, client files):
//! only regular files, and never more than a limit. A FIFO is refused without waiting for a writer, a device
//! such as `/dev/zero` without reading it, so that a wrong path can neither freeze nor exhaust the daemon.

use std::{
    fs::OpenOptions,
    io::{self, Read},
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// Why a file was not read; each names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{} cannot be read: {source}", path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{} is {kind}, not a regular file; give the path of the file itself", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is {size} bytes; at most {limit} are read: is it the right file?", path.display())]
    TooLarge { path: PathBuf, size: u64, limit: u64 },
    #[error("{} grew beyond {limit} bytes while being read: is it the right file?", path.display())]
    Grew { path: PathBuf, limit: u64 },
    #[error("{} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
}

impl From<FileError> for tidings_core::Invalid {
    fn from(e: FileError) -> Self {
        Self::new(e.to_string())
    }
}

/// The most read of a PEM file (a certificate chain, a key, a CA bundle).
pub const PEM_LIMIT: u64 = 1024 * 1024;

/// The most read of a configuration document, a client file or a password file.
pub const DOCUMENT_LIMIT: u64 = 1024 * 1024;

/// The most read of a message part given as a file (an HTML body).
pub const TEXT_LIMIT: u64 = 64 * 1024 * 1024;

/// The file's bytes, when it is a regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let unreadable = |source| FileError::Unreadable { path: path.to_owned(), source };
    // Non-blocking, so that opening a FIFO does not wait for a writer; regular files ignore the flag.
    let mut file =
        OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let kind = meta.file_type();
    let not = match () {
        () if kind.is_file() => None,
        () if kind.is_dir() => Some("a directory"),
        () if kind.is_fifo() => Some("a FIFO (named pipe)"),
        () if kind.is_socket() => Some("a socket"),
        () if kind.is_char_device() || kind.is_block_device() => Some("a device"),
        () => Some("not a regular file"),
    };
    if let Some(kind) = not {
        return Err(FileError::NotRegular { path: path.to_owned(), kind });
    }
    if meta.len() > limit {
        return Err(FileError::TooLarge { path: path.to_owned(), size: meta.len(), limit });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file).take(limit + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::Grew { path: path.to_owned(), limit });
    }
    Ok(bytes)
}

/// A regular text file of at most `limit` bytes, in UTF-8.
pub fn read_text(path: &Path, limit: u64) -> Result<String, FileError> {
    String::from_utf8(read_regular(path, limit)?).map_err(|_| FileError::NotText { path: path.to_owned() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert_eq!(read_regular(&file, 100).unwrap().len(), 28);
        let too_big = read_regular(&file, 10).unwrap_err().to_string();
        assert!(too_big.contains("28 bytes") && too_big.contains("at most 10"), "{too_big}");

        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let refused = read_regular(&fifo, PEM_LIMIT).unwrap_err().to_string();
        assert!(refused.contains("FIFO"), "a FIFO is refused at once, not waited on: {refused}");
        let zero = read_regular(Path::new("/dev/zero"), PEM_LIMIT).unwrap_err().to_string();
        assert!(zero.contains("a device"), "{zero}");
        assert!(read_regular(dir.path(), PEM_LIMIT).unwrap_err().to_string().contains("a directory"));
        let missing = read_regular(&dir.path().join("nope"), PEM_LIMIT).unwrap_err().to_string();
        assert!(missing.contains("nope") && missing.contains("cannot be read"), "{missing}");
        assert!(read_text(&file, 100).is_ok());
    }
}
