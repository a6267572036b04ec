//! Reading a message's header section (RFC 5322 §2.2): its fields with their continuation lines, a field's
//! name and its unfolded value. The one reader of headers: the sender policies' rewrite, the `Date` and
//! `Message-ID` check, and the subject and Message-ID the outbox lists.

/// The header fields (each with its continuation lines and CRLF) and the rest of the message: the blank line
/// and the body. A message without a blank line is all header.
pub fn fields(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let head_end = memchr::memmem::find(data, b"\r\n\r\n").map_or(data.len(), |i| i + 2);
    let (head, body) = data.split_at(head_end);
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < head.len() {
        let end = memchr::memmem::find(&head[i..], b"\r\n").map_or(head.len(), |p| i + p + 2);
        let continuation = matches!(head.get(end), Some(b' ' | b'\t'));
        if !continuation {
            fields.push(&head[start..end]);
            start = end;
        }
        i = end;
    }
    (fields, body)
}

/// Whether `field` is named `name`, in any case; whitespace before the colon is tolerated (RFC 5322's obsolete
/// syntax, which devices still send).
pub fn name_is(field: &[u8], name: &str) -> bool {
    field.len() > name.len()
        && field[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        && field[name.len()..].trim_ascii_start().first() == Some(&b':')
}

/// A field's value, unfolded: continuation lines joined, runs of whitespace made one space.
pub fn value(field: &[u8]) -> String {
    let colon = field.iter().position(|b| *b == b':').map_or(field.len(), |i| i + 1);
    String::from_utf8_lossy(&field[colon..]).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value of the first of `fields` named `name`.
pub fn find(fields: &[&[u8]], name: &str) -> Option<String> {
    fields.iter().find(|f| name_is(f, name)).map(|f| value(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] =
        b"From: a@b.c\r\nSubject : folded\r\n  over two\r\nmessage-id: <x@y>\r\n\r\nSubject: in the body\r\n";

    fn first(data: &[u8], name: &str) -> Option<String> {
        find(&fields(data).0, name)
    }

    #[test]
    fn fields_names_and_unfolded_values() {
        let (fields, body) = fields(MESSAGE);
        assert_eq!(fields.len(), 3);
        assert_eq!(body, b"\r\nSubject: in the body\r\n");
        assert_eq!(first(MESSAGE, "subject").as_deref(), Some("folded over two"), "space before the colon");
        assert_eq!(first(MESSAGE, "Message-ID").as_deref(), Some("<x@y>"));
        assert_eq!(first(MESSAGE, "Date"), None, "not in the body either");
        assert!(!name_is(b"Subjects: x\r\n", "Subject"));
        assert_eq!(first(b"Subject: no body", "Subject").as_deref(), Some("no body"));
    }
}
