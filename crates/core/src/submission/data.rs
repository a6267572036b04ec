//! Reading the message after DATA: lines up to `<CRLF>.<CRLF>` only (a bare LF or CR never ends the data, so
//! SMTP smuggling cannot split one message into two), dot-unstuffing, the size limit, the line-length limit,
//! and what to do with bare CR or LF inside the message.

/// What to do with a bare CR or LF inside a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareNewlines {
    /// Refuse the message (the default: what Postfix and Exchange do since the smuggling attacks).
    Reject,
    /// Turn each into CRLF (for old devices that send bare LF).
    Normalize,
}

/// The longest text line, CRLF included (RFC 5321 §4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 1000;

/// Why a message was refused; the data was read to its end regardless, so the session goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    TooLarge,
    LineTooLong,
    BareNewline,
}

impl DataError {
    /// The reply to a message refused for it.
    pub fn reply(self) -> super::reply::Reply {
        use super::reply::Reply;
        match self {
            DataError::TooLarge => Reply::new(552, "5.3.4", "message too large"),
            DataError::LineTooLong => Reply::new(500, "5.5.6", "a line of the message is longer than 1000 octets"),
            DataError::BareNewline => Reply::new(550, "5.6.11", "bare CR or LF in the message; send CRLF line endings"),
        }
    }
}

/// The message buffer's first allocation.
const INITIAL_CAPACITY: usize = 16 * 1024;

/// Incremental reader: feed it bytes as they arrive.
#[derive(Debug)]
pub struct DataReader {
    max_size: usize,
    bare: BareNewlines,
    message: Vec<u8>,
    /// The current line, without its ending.
    line: Vec<u8>,
    /// A CR seen at the end of the last chunk or line.
    pending_cr: bool,
    /// The previous line ended with a proper CRLF (only then can a "." line end the data).
    after_crlf: bool,
    error: Option<DataError>,
}

/// The outcome of feeding bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// Give more bytes.
    More,
    /// The end-of-data line was read after `used` bytes of the chunk (the rest belongs to the next command).
    Done { used: usize, message: Result<Vec<u8>, DataError> },
}

impl DataReader {
    pub fn new(max_size: usize, bare: BareNewlines) -> Self {
        // Room for a typical device message up front, instead of growing through a dozen reallocations.
        let message = Vec::with_capacity(max_size.min(INITIAL_CAPACITY));
        Self { max_size, bare, message, line: Vec::new(), pending_cr: false, after_crlf: true, error: None }
    }

    fn fail(&mut self, e: DataError) {
        self.error.get_or_insert(e);
        self.message.clear();
    }

    /// Ends the current line (`crlf`: with a proper CRLF, else a normalized bare newline); true at the end of
    /// the data, which is a "." line between two proper CRLFs.
    fn end_line(&mut self, crlf: bool) -> bool {
        let after_crlf = std::mem::replace(&mut self.after_crlf, crlf);
        if self.line == b"." && crlf && after_crlf {
            return true;
        }
        if self.error.is_none() {
            let text = if self.line.first() == Some(&b'.') { &self.line[1..] } else { &self.line[..] };
            if self.line.len() + 2 > MAX_TEXT_LINE {
                self.fail(DataError::LineTooLong);
            } else if self.message.len() + text.len() + 2 > self.max_size {
                self.fail(DataError::TooLarge);
            } else {
                self.message.extend_from_slice(text);
                self.message.extend_from_slice(b"\r\n");
            }
        }
        self.line.clear();
        false
    }

    fn bare(&mut self, byte: u8) {
        match self.bare {
            BareNewlines::Reject => {
                self.fail(DataError::BareNewline);
                // Keep reading to the real end of data; the bare newline is just a byte of this line (so that
                // ".<CR><CR><LF>" is not taken for the end).
                if self.line.len() <= MAX_TEXT_LINE {
                    self.line.push(byte);
                }
            }
            // The end of data still needs CRLF.CRLF: a normalized line never ends it.
            BareNewlines::Normalize => {
                self.end_line(false);
            }
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Fed {
        let mut i = 0;
        while let Some(&b) = chunk.get(i) {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    if self.end_line(true) {
                        let message = match self.error {
                            Some(e) => Err(e),
                            None => Ok(std::mem::take(&mut self.message)),
                        };
                        return Fed::Done { used: i + 1, message };
                    }
                    i += 1;
                    continue;
                }
                self.bare(b'\r');
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.bare(b'\n'),
                _ => {
                    // The line's text up to the next CR or LF, at once.
                    let end = memchr::memchr2(b'\r', b'\n', &chunk[i..]).map_or(chunk.len(), |at| i + at);
                    let text = &chunk[i..end];
                    // Lines are bounded in memory even when too long.
                    let room = (MAX_TEXT_LINE + 1).saturating_sub(self.line.len());
                    self.line.extend_from_slice(&text[..text.len().min(room)]);
                    if text.len() > room && self.error.is_none() {
                        self.fail(DataError::LineTooLong);
                    }
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
        Fed::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8], bare: BareNewlines) -> (usize, Result<Vec<u8>, DataError>) {
        let mut r = DataReader::new(10_000, bare);
        match r.feed(input) {
            Fed::Done { used, message } => (used, message),
            Fed::More => panic!("not done"),
        }
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf_and_unstuffs() {
        let (used, m) = read(b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n", BareNewlines::Reject);
        assert_eq!(m.unwrap(), b"Subject: x\r\n\r\n.dot\r\nbody\r\n");
        assert_eq!(used, 30);
    }

    #[test]
    fn smuggling_attempts_do_not_end_the_data() {
        // "\n.\n" and "\r\n.\n" and "\n.\r\n" must not end the message.
        for attack in
            [&b"a\n.\nMAIL FROM:<x@y>\r\n"[..], b"a\r\n.\nMAIL FROM:<x@y>\r\n", b"a\n.\r\nMAIL FROM:<x@y>\r\n"]
        {
            let mut r = DataReader::new(10_000, BareNewlines::Reject);
            assert_eq!(r.feed(attack), Fed::More, "{attack:?}");
            let Fed::Done { message, .. } = r.feed(b".\r\n") else { panic!("not done") };
            assert_eq!(message, Err(DataError::BareNewline));
            let mut r = DataReader::new(10_000, BareNewlines::Normalize);
            assert_eq!(r.feed(attack), Fed::More, "{attack:?}");
            let Fed::Done { message, .. } = r.feed(b".\r\n") else { panic!("not done") };
            let message = message.unwrap();
            assert!(message.windows(3).any(|w| w == b"MAI"), "the smuggled command stays inside the message");
            assert!(
                !message
                    .windows(2)
                    .enumerate()
                    .any(|(i, w)| w[1] == b'\n' && (w[0] != b'\r' || i == 0 && message[0] == b'\n'))
            );
        }
    }

    #[test]
    fn limits_are_enforced_and_the_session_resynchronizes() {
        let mut r = DataReader::new(20, BareNewlines::Reject);
        let Fed::Done { message, used } = r.feed(b"0123456789\r\n0123456789\r\n.\r\nNOOP\r\n") else { panic!() };
        assert_eq!((message, used), (Err(DataError::TooLarge), 27));
        let mut long = vec![b'x'; 1200];
        long.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(read(&long, BareNewlines::Reject).1, Err(DataError::LineTooLong));
    }

    #[test]
    fn a_line_of_998_characters_passes_and_999_do_not_however_the_chunks_fall() {
        for (length, expected) in [(998, Ok(())), (999, Err(DataError::LineTooLong))] {
            let mut input = vec![b'x'; length];
            input.extend_from_slice(b"\r\n.\r\n");
            for chunk in [1, 7, 500, 998, 999, 1000, 2000] {
                let mut r = DataReader::new(10_000, BareNewlines::Reject);
                let done = input.chunks(chunk).map(|piece| r.feed(piece)).find(|fed| *fed != Fed::More);
                let Some(Fed::Done { message, .. }) = done else { panic!("not done") };
                assert_eq!(message.map(|_| ()), expected, "length {length}, chunks of {chunk}");
            }
        }
    }

    #[test]
    fn chunks_may_split_anywhere() {
        let input = b"a\r\n..b\r\n.\r\n";
        for split in 0..input.len() {
            let mut r = DataReader::new(100, BareNewlines::Reject);
            let first = r.feed(&input[..split]);
            let second = if first == Fed::More { r.feed(&input[split..]) } else { first };
            let Fed::Done { message, .. } = second else { panic!("split {split}") };
            assert_eq!(message.unwrap(), b"a\r\n.b\r\n", "split {split}");
        }
    }
}
