//! Replies a submission server sends: a code, an enhanced status code (RFC 3463) and text.

use std::fmt::Write;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<&'static str>,
    /// One line a piece; several make a multi-line reply.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: &str) -> Self {
        Self { code, enhanced: Some(enhanced), lines: vec![text.to_owned()] }
    }

    /// A reply without an enhanced code (greeting, EHLO, 334 challenges).
    pub fn plain(code: u16, lines: Vec<String>) -> Self {
        Self { code, enhanced: None, lines }
    }

    /// The reply as sent: `250-…` lines then `250 …`, each ending in CRLF; no line ever holds CR or LF.
    pub fn wire(&self) -> String {
        let mut out = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let text: String = line.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            match self.enhanced {
                Some(e) => {
                    let _ = write!(out, "{}{sep}{e} {text}\r\n", self.code);
                }
                None => {
                    let _ = write!(out, "{}{sep}{text}\r\n", self.code);
                }
            }
        }
        if self.lines.is_empty() {
            let _ = write!(out, "{} \r\n", self.code);
        }
        out
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }
}
