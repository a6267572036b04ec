//! The connection's bytes: a plain or TLS stream, reading replies and writing commands, every step under the
//! configured timeout.

use super::error::{ErrorKind, SmtpError};
use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};
use tidings_core::outbox::reply::{Reply, Stage};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::client::TlsStream;

/// The longest reply line accepted, and the most lines in one reply.
const MAX_LINE: usize = 8192;
const MAX_LINES: usize = 200;

/// `work` within `timeout`; its failure as `stage`'s.
async fn timed<T>(
    stage: Stage,
    timeout: Duration,
    work: impl Future<Output = std::io::Result<T>>,
) -> Result<T, SmtpError> {
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(io_error(stage, e)),
        Err(_) => Err(SmtpError::new(stage, ErrorKind::Timeout(timeout.as_secs()))),
    }
}

/// The most a message's data is written at once.
const WRITE_CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A stream with SMTP framing.
#[derive(Debug)]
pub(crate) struct Wire {
    io: BufReader<Stream>,
    timeout: Duration,
}

impl Wire {
    pub(crate) fn new(stream: Stream, timeout: Duration) -> Self {
        Self { io: BufReader::with_capacity(16 * 1024, stream), timeout }
    }

    /// Whether bytes arrived that nobody has read yet.
    pub(crate) fn has_buffered(&self) -> bool {
        !self.io.buffer().is_empty()
    }

    /// The certificates the server presented (its own first), once TLS is on.
    pub(crate) fn peer_certificates(&self) -> Vec<Vec<u8>> {
        match self.io.get_ref() {
            Stream::Tls(tls) => {
                tls.get_ref().1.peer_certificates().unwrap_or_default().iter().map(|c| c.to_vec()).collect()
            }
            Stream::Plain(_) => Vec::new(),
        }
    }

    pub(crate) fn into_stream(self) -> Stream {
        self.io.into_inner()
    }

    /// Reads one reply, all its lines.
    pub(crate) async fn read_reply(&mut self, stage: Stage) -> Result<Reply, SmtpError> {
        Ok(self.read_reply_lines(stage).await?.0)
    }

    /// Reads one reply, also returning its lines as received (for EHLO's keywords).
    pub(crate) async fn read_reply_lines(&mut self, stage: Stage) -> Result<(Reply, Vec<String>), SmtpError> {
        let mut lines = Vec::new();
        loop {
            let timeout = self.timeout;
            let line = match tokio::time::timeout(timeout, read_line(&mut self.io)).await {
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) => return Err(SmtpError::new(stage, ErrorKind::Closed)),
                Ok(Err(e)) => return Err(io_error(stage, e)),
                Err(_) => return Err(SmtpError::new(stage, ErrorKind::Timeout(timeout.as_secs()))),
            };
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok()).filter(|c| (200..600).contains(c));
            let Some(code) = code else {
                return Err(SmtpError::new(
                    stage,
                    ErrorKind::Protocol(format!("{:?} is not an SMTP reply", truncate(&line))),
                ));
            };
            let more = line.as_bytes().get(3) == Some(&b'-');
            if let Some(first) = lines.first().and_then(|l: &String| l.get(..3))
                && first != &line[..3]
            {
                return Err(SmtpError::new(
                    stage,
                    ErrorKind::Protocol(format!("reply codes change mid-reply: {first} then {code}")),
                ));
            }
            lines.push(line);
            if lines.len() > MAX_LINES {
                return Err(SmtpError::new(stage, ErrorKind::Protocol("a reply of more than 200 lines".into())));
            }
            if !more {
                return Ok((Reply::from_lines(code, &lines), lines));
            }
        }
    }

    /// Sends `line` and CRLF.
    pub(crate) async fn send_line(&mut self, stage: Stage, line: &str) -> Result<(), SmtpError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send(stage, &bytes).await
    }

    /// Sends raw bytes and flushes.
    pub(crate) async fn send(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), SmtpError> {
        let io = self.io.get_mut();
        timed(stage, self.timeout, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
    }

    /// Sends `pieces` one after the other and flushes: gathered into one write when small (a message and the
    /// next envelope), else in writes of at most [`WRITE_CHUNK`] straight from the pieces, so that a large
    /// message is never copied whole. The timeout applies to each write.
    pub(crate) async fn send_pieces(&mut self, stage: Stage, pieces: &[&[u8]]) -> Result<(), SmtpError> {
        let timeout = self.timeout;
        let io = self.io.get_mut();
        let total: usize = pieces.iter().map(|p| p.len()).sum();
        let mut gathered = Vec::with_capacity(total.min(WRITE_CHUNK));
        let step = async |io: &mut Stream, bytes: &[u8]| timed(stage, timeout, io.write_all(bytes)).await;
        for piece in pieces {
            let mut piece = *piece;
            while !piece.is_empty() {
                if gathered.is_empty() && piece.len() >= WRITE_CHUNK {
                    step(io, &piece[..WRITE_CHUNK]).await?;
                    piece = &piece[WRITE_CHUNK..];
                    continue;
                }
                let n = (WRITE_CHUNK - gathered.len()).min(piece.len());
                gathered.extend_from_slice(&piece[..n]);
                piece = &piece[n..];
                if gathered.len() == WRITE_CHUNK {
                    step(io, &gathered).await?;
                    gathered.clear();
                }
            }
        }
        step(io, &gathered).await?;
        timed(stage, timeout, io.flush()).await
    }

    /// Sends a command and reads its reply.
    pub(crate) async fn command(&mut self, stage: Stage, line: &str) -> Result<Reply, SmtpError> {
        self.send_line(stage, line).await?;
        self.read_reply(stage).await
    }

    /// Closes, ignoring errors.
    pub(crate) async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(self.timeout, self.io.get_mut().shutdown()).await;
    }
}

/// One line without its ending; `None` at end of stream.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return if line.is_empty() { Ok(None) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) };
        }
        let (used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..used]);
        reader.consume(used);
        if line.len() > MAX_LINE {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a reply line longer than 8192 bytes"));
        }
        if done {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

fn io_error(stage: Stage, e: std::io::Error) -> SmtpError {
    use std::io::ErrorKind as K;
    let kind = match e.kind() {
        K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted => ErrorKind::Closed,
        _ if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => ErrorKind::Tls(e.to_string()),
        _ => ErrorKind::Io(e.to_string()),
    };
    SmtpError::new(stage, kind)
}

fn truncate(line: &str) -> &str {
    line.get(..80).unwrap_or(line)
}
