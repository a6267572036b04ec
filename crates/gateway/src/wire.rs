//! The connection: a byte stream (plain or TLS) with a read buffer, read by lines or as message data, with
//! timeouts that bytes trickling in cannot defeat: a command line must arrive whole within the idle timeout of
//! the moment it is waited for, and message data may pause no longer than the idle timeout and must come at
//! `gateway.min_data_rate` on average once the first idle timeout has passed.
//!
//! Replies to pipelined commands go out together (RFC 2920): a reply waits while another command is already
//! read, and whatever waits is written before the session waits for input.

use std::{pin::Pin, time::Duration};
use tidings_core::submission::data::{DataReader, Fed};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    time::{Instant, Sleep},
};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The free room each read offers: commands are short, message data comes in pieces this size.
const READ_ROOM: usize = 8192;

pub struct Wire {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    /// Replies not written yet: those to commands pipelined after which another command is already here.
    out: Vec<u8>,
    idle: Duration,
    /// The idle timer, set once per line and pushed back at each read of message data: extending a timer
    /// already set is cheaper than setting one per read.
    idle_timer: Pin<Box<Sleep>>,
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    Closed,
    Idle,
    /// Message data came slower than the minimum rate.
    TooSlow,
    Io(std::io::Error),
}

/// A command line, or one that was too long (its bytes discarded up to the CRLF).
pub enum Line {
    Text(Vec<u8>),
    TooLong,
}

impl Wire {
    pub fn new(io: Box<dyn Io>, idle: Duration) -> Self {
        Self {
            io,
            buf: Vec::with_capacity(READ_ROOM),
            out: Vec::new(),
            idle,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// Starts the idle timer again from now.
    fn push_back_idle(&mut self) {
        self.idle_timer.as_mut().reset(Instant::now() + self.idle);
    }

    /// Reads what has arrived into the buffer's free room, within the idle timer as it stands, after writing the
    /// replies that wait.
    async fn fill(&mut self) -> Result<(), ReadError> {
        self.flush().await.map_err(ReadError::Io)?;
        self.buf.reserve(READ_ROOM);
        tokio::select! {
            biased;
            read = self.io.read_buf(&mut self.buf) => match read {
                Err(e) => Err(ReadError::Io(e)),
                Ok(0) => Err(ReadError::Closed),
                Ok(_) => Ok(()),
            },
            () = &mut self.idle_timer => Err(ReadError::Idle),
        }
    }

    /// The next line without its CRLF (a bare LF ends a command line too, as many devices send one).
    pub async fn line(&mut self, max: usize) -> Result<Line, ReadError> {
        let mut too_long = false;
        self.push_back_idle();
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(if too_long || line.len() > max { Line::TooLong } else { Line::Text(line) });
            }
            if self.buf.len() > max {
                too_long = true;
                self.buf.clear();
            }
            self.fill().await?;
        }
    }

    /// Feeds the reader until the end of the data; bytes after it stay for the next command. Data slower than
    /// `min_rate` octets a second on average, once the first idle timeout has passed, ends as `TooSlow`.
    pub async fn data(
        &mut self,
        reader: &mut DataReader,
        min_rate: u32,
    ) -> Result<Result<Vec<u8>, tidings_core::submission::data::DataError>, ReadError> {
        let started = Instant::now();
        let mut received = 0u64;
        loop {
            if !self.buf.is_empty() {
                received += self.buf.len() as u64;
                let elapsed = started.elapsed();
                if elapsed > self.idle
                    && elapsed.as_secs_f64() > self.idle.as_secs_f64() + received as f64 / f64::from(min_rate.max(1))
                {
                    return Err(ReadError::TooSlow);
                }
                match reader.feed(&self.buf) {
                    Fed::Done { used, message } => {
                        self.buf.drain(..used);
                        return Ok(message);
                    }
                    Fed::More => self.buf.clear(),
                }
            }
            self.push_back_idle();
            self.fill().await?;
        }
    }

    /// Sends a reply, or keeps it to go with the next while another command is already read.
    pub async fn send(&mut self, text: &str) -> std::io::Result<()> {
        self.out.extend_from_slice(text.as_bytes());
        if memchr::memchr(b'\n', &self.buf).is_some() { Ok(()) } else { self.flush().await }
    }

    /// Sends a reply now, with any that wait: before TLS starts, or the session ends.
    pub async fn send_now(&mut self, text: &str) -> std::io::Result<()> {
        self.out.extend_from_slice(text.as_bytes());
        self.flush().await
    }

    /// Writes the replies that wait.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.io.write_all(&self.out).await?;
        self.out.clear();
        self.io.flush().await
    }

    /// The stream for a TLS handshake. Whatever the client sent after STARTTLS is dropped unread (RFC 3207:
    /// commands injected before the handshake must not be trusted).
    pub fn into_io(self) -> Box<dyn Io> {
        self.io
    }

    pub async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(line: Line) -> Vec<u8> {
        match line {
            Line::Text(text) => text,
            Line::TooLong => panic!("a line too long"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_counts_from_the_last_read_not_from_the_first() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut wire = Wire::new(Box::new(server), Duration::from_secs(10));
        // Six commands 6 s apart, each read waiting for its command: 36 s in all, each within 10 s of the one
        // before.
        let client = tokio::spawn(async move {
            for n in 0..6 {
                tokio::time::sleep(Duration::from_secs(6)).await;
                client.write_all(format!("NOOP {n}\r\n").as_bytes()).await.unwrap();
            }
            client
        });
        for n in 0..6 {
            assert_eq!(text(wire.line(512).await.unwrap()), format!("NOOP {n}").into_bytes());
        }
        let _client = client.await.unwrap();
        let started = Instant::now();
        let err = wire.line(512).await.err().unwrap();
        assert!(matches!(err, ReadError::Idle), "{err:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_trickling_in_byte_by_byte_does_not_push_back_the_idle_timeout() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut wire = Wire::new(Box::new(server), Duration::from_secs(10));
        let _client = tokio::spawn(async move {
            for byte in b"NOOP and never the end of the line" {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if client.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
        });
        let started = Instant::now();
        let err = wire.line(512).await.err().unwrap();
        assert!(matches!(err, ReadError::Idle), "{err:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(10), "cut 10 s after the line was first waited for");
    }

    #[tokio::test(start_paused = true)]
    async fn data_slower_than_the_minimum_rate_is_cut_after_the_first_idle_timeout() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut wire = Wire::new(Box::new(server), Duration::from_secs(10));
        let _client = tokio::spawn(async move {
            // 100 bytes a second, each pause well within the idle timeout.
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if client.write_all(&[b'x'; 99]).await.is_err() || client.write_all(b"\n").await.is_err() {
                    return;
                }
            }
        });
        let mut reader = DataReader::new(1 << 20, tidings_core::submission::data::BareNewlines::Normalize);
        let started = Instant::now();
        let err = wire.data(&mut reader, 1000).await.err().unwrap();
        assert!(matches!(err, ReadError::TooSlow), "{err:?}");
        let elapsed = started.elapsed();
        assert!(elapsed > Duration::from_secs(10) && elapsed <= Duration::from_secs(12), "{elapsed:?}");
        // At the same pace, a rate of 100 octets a second is enough.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut wire = Wire::new(Box::new(server), Duration::from_secs(10));
        tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                client.write_all(&[b'x'; 98]).await.unwrap();
                client.write_all(b"\r\n").await.unwrap();
            }
            client.write_all(b".\r\n").await.unwrap();
            client
        });
        let mut reader = DataReader::new(1 << 20, tidings_core::submission::data::BareNewlines::Reject);
        assert!(wire.data(&mut reader, 90).await.unwrap().is_ok());
    }
}
