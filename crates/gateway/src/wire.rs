//! The connection: a byte stream (plain or TLS) with a read buffer, read by lines or as message data, with
//! the idle timeout on every read.

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
    idle: Duration,
    /// The idle timer, pushed back at each read: extending a timer already set is cheaper than setting one
    /// per read.
    idle_timer: Pin<Box<Sleep>>,
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    Closed,
    Idle,
    Io(std::io::Error),
}

/// A command line, or one that was too long (its bytes discarded up to the CRLF).
pub enum Line {
    Text(Vec<u8>),
    TooLong,
}

impl Wire {
    pub fn new(io: Box<dyn Io>, idle: Duration) -> Self {
        Self { io, buf: Vec::with_capacity(READ_ROOM), idle, idle_timer: Box::pin(tokio::time::sleep(idle)) }
    }

    /// Reads what has arrived into the buffer's free room.
    async fn fill(&mut self) -> Result<(), ReadError> {
        self.buf.reserve(READ_ROOM);
        self.idle_timer.as_mut().reset(Instant::now() + self.idle);
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

    /// Feeds the reader until the end of the data; bytes after it stay for the next command.
    pub async fn data(
        &mut self,
        reader: &mut DataReader,
    ) -> Result<Result<Vec<u8>, tidings_core::submission::data::DataError>, ReadError> {
        loop {
            if !self.buf.is_empty() {
                match reader.feed(&self.buf) {
                    Fed::Done { used, message } => {
                        self.buf.drain(..used);
                        return Ok(message);
                    }
                    Fed::More => self.buf.clear(),
                }
            }
            self.fill().await?;
        }
    }

    pub async fn send(&mut self, text: &str) -> std::io::Result<()> {
        self.io.write_all(text.as_bytes()).await?;
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
}
