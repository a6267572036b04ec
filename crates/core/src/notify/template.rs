//! Turning an event into a mail: the template of its kind in the configured language (English when a
//! translation is missing), placeholders filled, the details not already named, repeats and a footer.
//!
//! Templates are files, `crates/core/templates/<kind>.<lang>.txt`: a `Subject:` line, a blank line, the body.
//! `common.<lang>.txt` holds the shared phrases as `name = text` lines; `explanations.<lang>.txt` what known
//! relay replies mean (`outbox::explain`). Placeholders are `{name}`: `{node}`,
//! `{time}` and the kind's [`fields`](super::EventKind::fields).

use super::catalog::{EventKind, Severity};
use crate::config::Locale;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// What happened, for the mail.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    pub kind: EventKind,
    pub node: &'a str,
    pub at: DateTime<Utc>,
    pub details: &'a BTreeMap<String, String>,
    /// Occurrences not mailed before this mail, and since when.
    pub repeats: Option<Repeats>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repeats {
    pub count: u32,
    pub since: DateTime<Utc>,
}

/// A rendered mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

/// Placeholders every template may use.
pub const COMMON_PLACEHOLDERS: &[&str] = &["node", "time"];

/// The language code of template files.
pub fn language(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "en",
        Locale::Fr => "fr",
        Locale::De => "de",
        Locale::Nl => "nl",
    }
}

/// A template file's text by name (`failover.takeover.de`).
pub fn file(name: &str) -> Option<&'static str> {
    TEMPLATE_FILES.binary_search_by(|(n, _)| (*n).cmp(name)).ok().map(|i| TEMPLATE_FILES[i].1)
}

/// The template for `kind` in `locale`, or English's.
fn template(kind: EventKind, locale: Locale) -> &'static str {
    file(&format!("{}.{}", kind.id(), language(locale)))
        .or_else(|| file(&format!("{}.en", kind.id())))
        .unwrap_or("Subject: {node}\n\n")
}

/// A shared phrase in `locale`, or English's.
fn phrase(locale: Locale, name: &str) -> String {
    let lookup = |lang: &str| {
        file(&format!("common.{lang}")).and_then(|text| {
            text.lines().find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
        })
    };
    lookup(language(locale)).or_else(|| lookup("en")).unwrap_or_default()
}

/// The `{name}` placeholders of a text, in order.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if after[..close].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                found.push(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    found
}

/// Replaces each `{name}` with `value(name)`; an unknown name stays visible as `{name}`.
fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    for name in placeholders(text) {
        let token = format!("{{{name}}}");
        let at = rest.find(&token).unwrap_or(rest.len());
        out.push_str(&rest[..at]);
        out.push_str(&value(name).unwrap_or_else(|| token.clone()));
        rest = rest.get(at + token.len()..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// A time as administrators read it: local to the configured zone, with the zone's abbreviation.
pub fn local_time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

fn severity_word(locale: Locale, severity: Severity) -> String {
    phrase(locale, severity.as_str())
}

/// Renders the mail for `facts` in `locale`, times in `tz`.
pub fn render(facts: &Facts<'_>, locale: Locale, tz: Tz) -> Mail {
    let text = template(facts.kind, locale);
    let (subject_line, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let subject = subject_line.strip_prefix("Subject:").unwrap_or(subject_line).trim();
    let time = local_time(facts.at, tz);
    let value = |name: &str| match name {
        "node" => Some(facts.node.to_owned()),
        "time" => Some(time.clone()),
        other => facts.details.get(other).cloned(),
    };
    let one_line = |s: String| s.replace(['\r', '\n'], " ");
    let severity = severity_word(locale, facts.kind.severity());
    let subject = match facts.kind.severity() {
        Severity::Info => format!("[Tidings] {}", one_line(fill(subject, value))),
        _ => format!("[Tidings] {severity}: {}", one_line(fill(subject, value))),
    };

    let mut out = fill(body.trim_end(), value);
    let named = placeholders(text);
    let unnamed: Vec<(&String, &String)> = facts.details.iter().filter(|(k, _)| !named.contains(&k.as_str())).collect();
    if !unnamed.is_empty() {
        out.push_str("\n\n");
        out.push_str(&phrase(locale, "details"));
        for (key, val) in unnamed {
            out.push_str(&format!("\n  {key}: {val}"));
        }
    }
    if let Some(r) = facts.repeats.filter(|r| r.count > 0) {
        out.push_str("\n\n");
        let since = local_time(r.since, tz);
        out.push_str(&fill(&phrase(locale, "repeats"), |n| match n {
            "count" => Some(r.count.to_string()),
            "since" => Some(since.clone()),
            _ => None,
        }));
    }
    out.push_str("\n\n-- \n");
    out.push_str(&fill(&phrase(locale, "footer"), |n| match n {
        "kind" => Some(facts.kind.id().to_owned()),
        "severity" => Some(severity.clone()),
        other => value(other),
    }));
    out.push('\n');
    Mail { subject, body: out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::catalog::Source;

    const LOCALES: [Locale; 4] = [Locale::En, Locale::Fr, Locale::De, Locale::Nl];

    fn sample_details(kind: EventKind) -> BTreeMap<String, String> {
        kind.fields().iter().map(|f| (f.to_string(), format!("<{f}>"))).collect()
    }

    #[test]
    fn every_kind_has_a_template_in_every_language_using_only_known_placeholders() {
        for &kind in EventKind::ALL {
            for locale in LOCALES {
                let name = format!("{}.{}", kind.id(), language(locale));
                let text = file(&name).unwrap_or_else(|| panic!("templates/{name}.txt is missing"));
                assert!(text.starts_with("Subject: "), "{name}: first line must be Subject:");
                assert!(text.contains("\n\n"), "{name}: a blank line must separate subject and body");
                for p in placeholders(text) {
                    assert!(
                        COMMON_PLACEHOLDERS.contains(&p) || kind.fields().contains(&p),
                        "{name} names {{{p}}}, which {kind} does not supply"
                    );
                }
            }
        }
        // No stray template: every file is a kind's or a common phrase file.
        for (name, _) in TEMPLATE_FILES {
            let (stem, lang) = name.rsplit_once('.').unwrap_or((name, ""));
            assert!(["en", "fr", "de", "nl"].contains(&lang), "{name}: unknown language");
            let shared = stem == "common" || stem == "explanations";
            assert!(shared || EventKind::parse(stem).is_ok(), "{name}: unknown kind");
        }
    }

    #[test]
    fn every_placeholder_is_filled_in_every_language() {
        let at = "2026-11-22T09:30:00Z".parse().unwrap_or_default();
        let since = "2026-11-22T08:30:00Z".parse().unwrap_or_default();
        for &kind in EventKind::ALL {
            let mut details = sample_details(kind);
            if kind.source() == Source::Appliance {
                details.insert("primary_version".into(), "7.2".into());
            }
            for locale in LOCALES {
                let facts =
                    Facts { kind, node: "node-a", at, details: &details, repeats: Some(Repeats { count: 14, since }) };
                let mail = render(&facts, locale, chrono_tz::Europe::Brussels);
                let all = format!("{}\n{}", mail.subject, mail.body);
                assert!(placeholders(&all).is_empty(), "{kind} {locale:?}: unfilled {:?}", placeholders(&all));
                assert!(all.contains("node-a") && all.contains("14") && all.contains("2026-11-22 10:30 CET"), "{all}");
                assert!(!mail.subject.contains('\n'), "{kind} {locale:?}");
                for f in kind.fields() {
                    assert!(all.contains(&format!("<{f}>")), "{kind} {locale:?}: {f} not shown");
                }
                if kind.source() == Source::Appliance {
                    assert!(mail.body.contains("primary_version: 7.2"), "{kind} {locale:?}");
                }
            }
        }
    }

    #[test]
    fn the_mail_is_in_the_configured_language() {
        let details = BTreeMap::new();
        let at = "2026-07-01T06:00:00Z".parse().unwrap_or_default();
        let facts = Facts { kind: EventKind::Takeover, node: "backup-1", at, details: &details, repeats: None };
        let de = render(&facts, Locale::De, chrono_tz::Europe::Berlin);
        assert_eq!(de.subject, "[Tidings] KRITISCH: backup-1: Der Backup-Knoten wird zum Primärknoten");
        assert!(de.body.contains("2026-07-01 08:00 CEST") && !de.body.contains("Details"), "{}", de.body);
        let fr = render(&facts, Locale::Fr, chrono_tz::UTC);
        assert!(fr.subject.starts_with("[Tidings] CRITIQUE: backup-1 : le nœud de secours"), "{}", fr.subject);
        let nl = render(&Facts { kind: EventKind::TestEmail, ..facts }, Locale::Nl, chrono_tz::UTC);
        assert_eq!(nl.subject, "[Tidings] backup-1: testbericht");
    }

    #[test]
    fn values_cannot_break_the_subject_line() {
        let details = BTreeMap::from([("subject".to_owned(), "a\r\nBcc: x@evil.test".to_owned())]);
        let facts = Facts { kind: EventKind::DeadLetter, node: "n", at: Utc::now(), details: &details, repeats: None };
        assert!(!render(&facts, Locale::En, chrono_tz::UTC).subject.contains(['\r', '\n']));
    }
}
