//! Standard output for the commands: a reader that goes away (`tidings audit --json | head`) ends the command
//! quietly, as with any Unix tool, instead of a panic; text from the store (audit entries, events, replies)
//! is shown with its control characters escaped, so that no stored value can forge a line or
//! send escape sequences.

use std::{fmt, io::Write};

/// Writes `args` to standard output.
pub fn write(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Stored text as it may be shown: control characters (newlines, escape sequences) escaped, other text as it
/// is.
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        let mut escaped = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            if c.is_control() {
                escaped.extend(c.escape_default());
            } else {
                escaped.push(c);
            }
        }
        escaped.into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::shown("web:x\n2026-01-01  forged\u{1b}[31m"), "web:x\\n2026-01-01  forged\\u{1b}[31m");
        assert_eq!(super::shown("cli:tester"), "cli:tester");
    }
}
