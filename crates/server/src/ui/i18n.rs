//! The interface's words in English, French, German and Dutch: `crates/server/i18n/<lang>.txt`, one
//! `key = text` a line. The language is the account's choice, else the browser's (`Accept-Language`), else
//! English. The test suite checks that every catalogue has every key the pages use.

use axum::http::{HeaderMap, header};
use std::{collections::HashMap, sync::OnceLock};
use tidings_core::config::Locale;

const CATALOGUES: [(Locale, &str, &str); 4] = [
    (Locale::En, "en", include_str!("../../i18n/en.txt")),
    (Locale::Fr, "fr", include_str!("../../i18n/fr.txt")),
    (Locale::De, "de", include_str!("../../i18n/de.txt")),
    (Locale::Nl, "nl", include_str!("../../i18n/nl.txt")),
];

type Catalogue = HashMap<&'static str, &'static str>;

fn parse(text: &'static str) -> Catalogue {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = ").map(|(k, v)| (k.trim(), v.trim())))
        .collect()
}

fn catalogues() -> &'static [Catalogue; 4] {
    static ALL: OnceLock<[Catalogue; 4]> = OnceLock::new();
    ALL.get_or_init(|| CATALOGUES.map(|(_, _, text)| parse(text)))
}

/// Words in one language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tr(pub Locale);

impl Tr {
    fn index(self) -> usize {
        CATALOGUES.iter().position(|(l, _, _)| *l == self.0).unwrap_or(0)
    }

    /// The text for `key`; English when the language lacks it; the key itself when no catalogue has it.
    pub fn t(self, key: &str) -> &str {
        let all = catalogues();
        all[self.index()].get(key).or_else(|| all[0].get(key)).copied().unwrap_or(key)
    }

    /// The text for `key` when a catalogue has it.
    pub fn get(self, key: &str) -> Option<&'static str> {
        let all = catalogues();
        all[self.index()].get(key).or_else(|| all[0].get(key)).copied()
    }

    /// `t(key)` with `{name}` replaced by values.
    pub fn f(self, key: &str, values: &[(&str, &str)]) -> String {
        values.iter().fold(self.t(key).to_owned(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
    }

    /// `f` of `key.one` or `key.other` as `count` asks in the language (French takes 0 and 1 as one), with
    /// `{n}` the count.
    pub fn n(self, key: &str, count: i64, values: &[(&str, &str)]) -> String {
        let one = match self.0 {
            Locale::Fr => count == 0 || count == 1,
            _ => count == 1,
        };
        let key = format!("{key}.{}", if one { "one" } else { "other" });
        let n = count.to_string();
        let mut all = vec![("n", n.as_str())];
        all.extend_from_slice(values);
        self.f(&key, &all)
    }

    /// A span of time in words: "45 s", "5 min", "3 h", "2 days".
    pub fn span(self, span: chrono::TimeDelta) -> String {
        let secs = span.num_seconds().abs();
        match secs {
            0..60 => self.f("time.seconds", &[("n", &secs.to_string())]),
            60..3600 => self.f("time.minutes", &[("n", &(secs / 60).to_string())]),
            3600..86400 => self.f("time.hours", &[("n", &(secs / 3600).to_string())]),
            _ => self.n("time.days", secs / 86400, &[]),
        }
    }

    /// How long ago `at` was, in words ("5 min ago").
    pub fn ago(self, at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
        self.f("time.ago", &[("span", &self.span(now - at))])
    }

    /// How long until `at`, in words ("in 59 min"); "ago" once past.
    pub fn until(self, at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
        if at < now { self.ago(at, now) } else { self.f("time.in", &[("span", &self.span(at - now))]) }
    }

    /// The language's code (`de`), for `<html lang>`.
    pub fn code(self) -> &'static str {
        CATALOGUES[self.index()].1
    }
}

/// Every language with its code and its own name.
pub fn languages() -> impl Iterator<Item = (Locale, &'static str, &'static str)> {
    CATALOGUES.iter().map(|(l, code, _)| (*l, *code, Tr(*l).t("language.name")))
}

pub fn locale_from_code(code: &str) -> Option<Locale> {
    CATALOGUES.iter().find(|(_, c, _)| *c == code).map(|(l, _, _)| *l)
}

/// The account's language, else the first of the browser's that Tidings speaks, else English.
pub fn negotiate(account: Option<Locale>, headers: &HeaderMap) -> Tr {
    if let Some(locale) = account {
        return Tr(locale);
    }
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut ranked: Vec<(f32, &str)> = accept
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next()?.trim();
            let q = pieces.find_map(|p| p.trim().strip_prefix("q=")?.parse::<f32>().ok()).unwrap_or(1.0);
            Some((q, tag))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked
        .iter()
        .find_map(|(_, tag)| locale_from_code(&tag.split('-').next().unwrap_or("").to_ascii_lowercase()))
        .map_or(Tr(Locale::En), Tr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_has_every_key_and_no_empty_text() {
        let all = catalogues();
        for (i, (_, code, _)) in CATALOGUES.iter().enumerate() {
            for key in all[0].keys() {
                let text = all[i].get(key).unwrap_or_else(|| panic!("i18n/{code}.txt lacks {key}"));
                assert!(!text.is_empty(), "i18n/{code}.txt: {key} is empty");
            }
            for key in all[i].keys() {
                assert!(all[0].contains_key(key), "i18n/{code}.txt has {key}, which en.txt does not");
            }
        }
    }

    #[test]
    fn every_key_the_pages_use_is_in_the_catalogues() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut used = 0;
        let entries = ["src/ui", "src/http"]
            .iter()
            .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap_or_else(|e| panic!("{d}: {e}")));
        for entry in entries {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for marker in [".t(\"", ".f(\""] {
                for piece in text.split(marker).skip(1) {
                    let key = piece.split('"').next().unwrap_or("");
                    assert!(catalogues()[0].contains_key(key), "{}: key {key:?} is not in i18n/en.txt", path.display());
                    used += 1;
                }
            }
            for piece in text.split(".n(\"").skip(1) {
                let key = piece.split('"').next().unwrap_or("");
                for form in ["one", "other"] {
                    let key = format!("{key}.{form}");
                    assert!(
                        catalogues()[0].contains_key(key.as_str()),
                        "{}: key {key:?} is not in en.txt",
                        path.display()
                    );
                }
            }
        }
        assert!(used > 100, "the scan found only {used} uses");
    }

    #[test]
    fn each_event_kind_has_its_title_in_each_language_and_english_is_the_catalogue_s() {
        for kind in tidings_core::notify::EventKind::ALL {
            let key = format!("event.title.{}", kind.id());
            assert_eq!(catalogues()[0].get(key.as_str()).copied(), Some(kind.title()), "i18n/en.txt: {key}");
        }
    }

    #[test]
    fn keys_named_indirectly_are_in_the_catalogues_too() {
        // Every configuration field has a label.
        for info in tidings_core::config::keys::KEYS {
            let key = format!("field.{}", info.key);
            assert!(catalogues()[0].contains_key(key.as_str()), "i18n/en.txt lacks {key}");
        }
        // Keys held in tables (navigation, roles, statuses, choices, sections, token states).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ui");
        let prefixes = ["\"nav.", "\"role.", "\"status.", "\"option.", "\"config.section.", "\"oauth.state."];
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("src/ui: {e}")) {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            if path.ends_with("i18n.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for prefix in prefixes {
                for piece in text.split(prefix).skip(1) {
                    let key = format!("{}{}", &prefix[1..], piece.split('"').next().unwrap_or(""));
                    assert!(
                        catalogues()[0].contains_key(key.as_str()),
                        "{}: {key:?} is not in i18n/en.txt",
                        path.display()
                    );
                }
            }
        }
    }

    #[test]
    fn the_browser_language_is_negotiated() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_LANGUAGE,
            "es-ES, de-CH;q=0.8, fr;q=0.9".parse().unwrap_or(header::HeaderValue::from_static("")),
        );
        assert_eq!(negotiate(None, &headers).code(), "fr");
        assert_eq!(negotiate(Some(Locale::Nl), &headers).code(), "nl");
        assert_eq!(negotiate(None, &HeaderMap::new()).code(), "en");
        assert_eq!(Tr(Locale::De).n("outbox.attempts_count", 3, &[]), "3 Versuche");
        assert_eq!(Tr(Locale::En).n("outbox.attempts_count", 1, &[]), "1 attempt");
        assert_eq!(Tr(Locale::Fr).n("outbox.attempts_count", 0, &[]), "0 tentative", "French takes 0 as one");
        assert_eq!(
            Tr(Locale::Nl).until(
                chrono::Utc::now() + chrono::Duration::minutes(59) + chrono::Duration::seconds(30),
                chrono::Utc::now()
            ),
            "over 59 min"
        );
    }
}
