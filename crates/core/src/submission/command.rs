//! SMTP commands as a submission server reads them (RFC 5321 §4.1), with the replies for malformed ones.

use super::reply::Reply;

/// The longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;

/// ESMTP parameters of MAIL and RCPT: `SIZE=1234` as (`SIZE`, `Some("1234")`).
pub type Params = Vec<(String, Option<String>)>;

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    /// The reverse path (empty for the null sender `<>`) and ESMTP parameters.
    Mail {
        from: String,
        params: Vec<(String, Option<String>)>,
    },
    Rcpt {
        to: String,
        params: Vec<(String, Option<String>)>,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    /// The mechanism (upper case) and the initial response, if given.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// Parses one command line (without its CRLF). The error is the reply to send.
pub fn parse(line: &[u8]) -> Result<Command, Reply> {
    if line.len() + 2 > MAX_COMMAND_LINE {
        return Err(Reply::new(500, "5.5.2", "line too long"));
    }
    let line = std::str::from_utf8(line).map_err(|_| Reply::new(500, "5.5.2", "commands are ASCII"))?;
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Reply::new(500, "5.5.2", "control characters in the command"));
    }
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line.trim(), ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args =
        |cmd: Command| if rest.is_empty() { Ok(cmd) } else { Err(Reply::new(501, "5.5.4", "no arguments expected")) };
    match verb.as_str() {
        "EHLO" | "HELO" => {
            let domain = rest.split_whitespace().next().unwrap_or("");
            if domain.is_empty() {
                return Err(Reply::new(501, "5.5.4", &format!("{verb} needs your host name")));
            }
            Ok(if verb == "EHLO" { Command::Ehlo(domain.to_owned()) } else { Command::Helo(domain.to_owned()) })
        }
        "MAIL" => {
            let (from, params) = path_and_params(rest, "FROM:")?;
            Ok(Command::Mail { from, params })
        }
        "RCPT" => {
            let (to, params) = path_and_params(rest, "TO:")?;
            if to.is_empty() {
                return Err(Reply::new(501, "5.1.3", "a recipient is needed"));
            }
            Ok(Command::Rcpt { to, params })
        }
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => {
            let mut words = rest.split_whitespace();
            let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
            if mechanism.is_empty() {
                return Err(Reply::new(501, "5.5.4", "AUTH needs a mechanism: PLAIN or LOGIN"));
            }
            let initial = words.next().map(str::to_owned);
            if words.next().is_some() {
                return Err(Reply::new(501, "5.5.4", "too many AUTH arguments"));
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(Reply::new(500, "5.5.1", "command not recognized")),
    }
}

/// `FROM:<path> PARAM=VALUE …` (a space after the colon is tolerated, as many devices send one).
fn path_and_params(rest: &str, keyword: &str) -> Result<(String, Params), Reply> {
    let head = rest.get(..keyword.len()).unwrap_or("");
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(Reply::new(501, "5.5.4", &format!("syntax: {keyword}<address>")));
    }
    let rest = rest[keyword.len()..].trim_start();
    let (path, params) = match rest.strip_prefix('<') {
        Some(inner) => {
            let close = inner.find('>').ok_or_else(|| Reply::new(501, "5.1.7", "the address has no closing '>'"))?;
            (&inner[..close], inner[close + 1..].trim())
        }
        // Without brackets (tolerated): the address is the first word.
        None => match rest.find(' ') {
            Some(i) => (&rest[..i], rest[i + 1..].trim()),
            None => (rest, ""),
        },
    };
    // A source route (`@a,@b:user@c`) is ignored, as RFC 5321 §4.1.2 allows.
    let path = path.rsplit_once(':').map_or(path, |(_, p)| p);
    if path.chars().any(|c| c.is_whitespace() || c == '<' || c == '>') {
        return Err(Reply::new(501, "5.1.7", "malformed address"));
    }
    let params = params
        .split_whitespace()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_ascii_uppercase(), Some(v.to_owned())),
            None => (p.to_ascii_uppercase(), None),
        })
        .collect();
    Ok((path.to_owned(), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_as_devices_send_them() {
        assert_eq!(parse(b"ehlo printer.local"), Ok(Command::Ehlo("printer.local".into())));
        assert_eq!(
            parse(b"MAIL FROM:<scan@example.com> SIZE=1234 BODY=8BITMIME"),
            Ok(Command::Mail {
                from: "scan@example.com".into(),
                params: vec![("SIZE".into(), Some("1234".into())), ("BODY".into(), Some("8BITMIME".into()))]
            })
        );
        assert_eq!(parse(b"MAIL FROM: <a@b.c>"), Ok(Command::Mail { from: "a@b.c".into(), params: vec![] }));
        assert_eq!(parse(b"MAIL FROM:<>"), Ok(Command::Mail { from: "".into(), params: vec![] }));
        assert_eq!(parse(b"rcpt to:b@c.d"), Ok(Command::Rcpt { to: "b@c.d".into(), params: vec![] }));
        assert_eq!(
            parse(b"AUTH plain AGEAYg=="),
            Ok(Command::Auth { mechanism: "PLAIN".into(), initial: Some("AGEAYg==".into()) })
        );
        assert_eq!(parse(b"RCPT TO:<@relay:x@y.z>"), Ok(Command::Rcpt { to: "x@y.z".into(), params: vec![] }));
    }

    #[test]
    fn malformed_commands_get_the_right_codes() {
        assert_eq!(parse(b"FOO").unwrap_err().code, 500);
        assert_eq!(parse(b"EHLO").unwrap_err().code, 501);
        assert_eq!(parse(b"MAIL TO:<a@b>").unwrap_err().code, 501);
        assert_eq!(parse(b"MAIL FROM:<a@b").unwrap_err().code, 501);
        assert_eq!(parse(b"RCPT TO:<>").unwrap_err().code, 501);
        assert_eq!(parse(b"DATA now").unwrap_err().code, 501);
        assert_eq!(parse(&[b'N'; 600]).unwrap_err().code, 500);
        assert_eq!(parse(b"MAIL FROM:<a\x00@b>").unwrap_err().code, 500);
        assert_eq!(parse(&[0xff, 0xfe]).unwrap_err().code, 500);
    }
}
