//! SQL text handling that needs no full parse: a lexer, statement fingerprints with a coarse
//! classification, and redaction of sensitive literals.
//!
//! Architecture invariant: pure functions over text; no I/O, no knowledge of sessions.

pub mod fingerprint;
pub mod lexer;
pub mod redact;

pub use fingerprint::{has_backslash_string, shape, shape_into, shape_key, Fingerprint, Shape};
pub use redact::{literals_masked, redact};

use std::sync::Arc;

/// Whether `hay` holds `needle` ignoring ASCII case. The statement path asks this of every
/// statement's text for a few rare words (`application_name`, `current_setting`,
/// `encoding`), so it is one pass looking for the needle's first byte and a comparison only
/// where that byte is, not a window compared at every position.
pub fn mentions(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let Some(last_start) = hay.len().checked_sub(needle.len()) else {
        return false;
    };
    // memchr's vector search finds the candidates; most texts have few of them.
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    memchr::memchr2_iter(lower, upper, &hay[..=last_start])
        .any(|i| hay[i + 1..i + needle.len()].eq_ignore_ascii_case(rest))
}

/// Rare words the statement path asks a statement's text about: whether a `SET` may name
/// `application_name`, whether it may switch `client_encoding` (`SET NAMES`), whether it may
/// call `set_config` or read `current_setting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    ApplicationName,
    CurrentSetting,
    Encoding,
    Names,
    SetConfig,
}

impl Word {
    const ALL: [Word; 5] = [
        Word::ApplicationName,
        Word::CurrentSetting,
        Word::Encoding,
        Word::Names,
        Word::SetConfig,
    ];

    const fn text(self) -> &'static str {
        match self {
            Word::ApplicationName => "application_name",
            Word::CurrentSetting => "current_setting",
            Word::Encoding => "encoding",
            Word::Names => "names",
            Word::SetConfig => "set_config",
        }
    }
}

/// Which [`Word`]s a text holds anywhere (ignoring ASCII case, inside literals and comments
/// too: [`mentions`] of each), found in one pass. A statement that arrives with new text
/// (`pgbench -M simple`: every one) asked [`mentions`] five times, five scans that each
/// stopped at every `a`, `c`, `e`, `n` or `s`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mentions(u8);

impl Mentions {
    pub fn of(text: &str) -> Mentions {
        if !may_mention(text.as_bytes()) {
            return Mentions::default();
        }
        static WORDS: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> =
            std::sync::LazyLock::new(|| {
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(Word::ALL.map(Word::text))
                    .ok()
            });
        let Some(words) = WORDS.as_ref() else {
            // Cannot happen with these patterns; if it did, every word counts as mentioned,
            // which only makes the checks that follow do their full work.
            return Mentions(u8::MAX);
        };
        let mut found = Mentions::default();
        for m in words.find_overlapping_iter(text) {
            found.0 |= 1 << m.pattern().as_usize();
        }
        found
    }

    pub fn has(self, word: Word) -> bool {
        // `ALL` lists the words in declaration order: a word's discriminant is its pattern.
        self.0 & (1 << word as u8) != 0
    }
}

/// A word's first four bytes as [`may_mention`] compares them.
const fn head(word: Word) -> u32 {
    let b = word.text().as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) | 0x2020_2020
}

/// Whether a [`Word`] may start somewhere in `b`: every four bytes compared with each word's
/// first four, ASCII case folded by setting bit 5 on both sides (equal bytes stay equal, so no
/// occurrence is missed; `_` and DEL both become DEL, a harmless false hit). The automaton,
/// overlapping and case-insensitive, has no prefilter and cost about 110 ns on pgbench's
/// 55-byte statement; this costs about 40, and nearly every statement mentions no word.
fn may_mention(b: &[u8]) -> bool {
    const HEADS: [u32; Word::ALL.len()] = {
        let mut heads = [0; Word::ALL.len()];
        let mut i = 0;
        while i < heads.len() {
            heads[i] = head(Word::ALL[i]);
            i += 1;
        }
        heads
    };
    b.windows(4).any(|w| {
        let x = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) | 0x2020_2020;
        HEADS.contains(&x)
    })
}

/// A statement's text with what one pass over it tells: computed once when the statement
/// arrives (a prepared statement: once for all its executions) and shared from then on.
#[derive(Debug)]
pub struct Statement {
    pub sql: Arc<str>,
    pub fingerprint: Fingerprint,
    pub kinds: Vec<String>,
    pub may_write: bool,
    /// What the classification and lineage caches look it up by ([`shape_key`]), made in the
    /// same pass: no execution lexes the text again.
    pub shape_key: String,
    /// See [`has_backslash_string`].
    pub backslash_string: bool,
    words: Mentions,
    /// The text with its literals redacted, as a JSON string: what every audit record of the
    /// statement carries, made at its first record (a prepared statement's executions share it).
    audit_text: std::sync::OnceLock<Box<str>>,
}

impl Statement {
    pub fn new(sql: &str) -> Arc<Statement> {
        // The key is the text's tokens lower-cased, a separator after each and literals
        // shortened to two characters: about the text's length and a quarter. Sized once, it
        // is one allocation instead of a doubling series of them.
        let mut shape_key = String::with_capacity(sql.len() + sql.len() / 4 + 16);
        let shape = shape_into(sql, Some(&mut shape_key));
        Arc::new(Statement {
            sql: Arc::from(sql),
            fingerprint: shape.fingerprint,
            kinds: shape.kinds,
            may_write: shape.may_write,
            shape_key,
            backslash_string: shape.backslash_string,
            words: Mentions::of(sql),
            audit_text: std::sync::OnceLock::new(),
        })
    }

    /// Whether the text holds `word` anywhere, ignoring ASCII case.
    pub fn mentions(&self, word: Word) -> bool {
        self.words.has(word)
    }

    /// The redacted text as a JSON string (quotes included), made once per statement.
    pub fn audit_text(&self, to_json: impl FnOnce(&str) -> String) -> &str {
        self.audit_text
            .get_or_init(|| to_json(&redact(&self.sql)).into_boxed_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agrees(text: &str) {
        let found = Mentions::of(text);
        for w in Word::ALL {
            assert_eq!(
                found.has(w),
                mentions(text.as_bytes(), w.text().as_bytes()),
                "{w:?} in {text:?}"
            );
        }
    }

    #[test]
    fn one_pass_finds_what_each_word_s_own_scan_finds() {
        for text in [
            "",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
            "SET NAMES 'SJIS'",
            "set Application_Name = 'x'; select CURRENT_SETTING('a')",
            "DO $$BEGIN PERFORM set_config('client_' || 'ENCODING', 'SJIS', false); END$$",
            "select 'namesencoding'",
            "select nameS, set_confi, current_settin",
            "SELECT 'é' || names FROM t",
        ] {
            agrees(text);
        }
    }

    proptest::proptest! {
        #[test]
        fn one_pass_agrees_on_any_text(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "names", "NAMES", "nam", "es", "encoding", "Encod", "ing",
                    "application_name", "applicatio", "n_name", "set_config", "SET_", "config",
                    "current_setting", "current_", "setting", " ", "'", "é", "x",
                    "APPL", "Curr", "cUrReNt_SeTtInG", "ENCO", "Name", "set\u{7f}", "_",
                ]),
                0..12,
            )
        ) {
            agrees(&parts.concat());
        }
    }
}
