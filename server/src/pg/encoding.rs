//! The session's `client_encoding`, and reading client text the way the server will.
//!
//! PostgreSQL converts every string a client sends (statement text, statement and portal names)
//! from the session's `client_encoding`. The gateway must see the same statements, so:
//!
//! - In every encoding PostgreSQL accepts on the server side, bytes below 0x80 are ASCII and never
//!   part of a multi-byte character. Quotes, backslashes, semicolons, comment and dollar-quote
//!   delimiters are ASCII, so the statement *structure* is the same whichever of these encodings
//!   is in force; only the characters of non-ASCII identifiers and literals differ.
//! - The client-only encodings (SJIS, BIG5, GBK, GB18030, UHC, JOHAB) break that: a trailing byte
//!   of a two-byte character can be `\` or `'`, so a byte the gateway would read as the end of a
//!   string is inside a character for the server. They are refused, at startup and whenever the
//!   server reports one (the relay ends the session), and `SET client_encoding` to one is refused
//!   before it is sent.
//! - Text that is not valid in the session encoding is an error, never an empty string. With
//!   UTF8 the gateway checks it exactly (as the server will). Other encodings accept almost any
//!   byte sequence (and the server rejects what is invalid), so their text is read with a
//!   lossless byte-to-character mapping: names stay distinct and the structure is exact.
//!
//! Architecture invariant: pure; no I/O.

use std::borrow::Cow;

/// What the gateway knows about the session's `client_encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientEncoding {
    /// UTF8 (PostgreSQL's `UTF8`, alias `UNICODE`): text must be valid UTF-8.
    #[default]
    Utf8,
    /// Any other server-side encoding (including SQL_ASCII): ASCII-transparent.
    AsciiSafe,
}

/// Why a client encoding is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingRefused {
    #[error("client_encoding \"{0}\" is refused by the gateway: in that encoding a quote or backslash byte can be part of a character, so the gateway cannot read statements exactly as the database will")]
    QuoteUnsafe(String),
    #[error("client_encoding \"{0}\" is not an encoding PostgreSQL knows")]
    Unknown(String),
}

impl EncodingRefused {
    pub const HINT: &'static str =
        "Use UTF8 (e.g. PGCLIENTENCODING=UTF8, or SET client_encoding = 'UTF8').";
}

/// Bytes not valid in the session's encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid byte sequence for encoding \"UTF8\": 0x{byte:02x} at offset {offset}")]
pub struct InvalidText {
    pub offset: usize,
    pub byte: u8,
}

impl InvalidText {
    pub const SQLSTATE: super::error::SqlState = super::error::SqlState::CharacterNotInRepertoire;
}

/// PostgreSQL's `clean_encoding_name`: letters and digits only, lower case.
fn clean(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Client-only encodings and their aliases (PostgreSQL's `pg_encname_tbl`, cleaned).
const QUOTE_UNSAFE: &[&str] = &[
    "sjis",
    "shiftjis",
    "mskanji",
    "win932",
    "windows932",
    "shiftjis2004",
    "big5",
    "win950",
    "windows950",
    "gbk",
    "win936",
    "windows936",
    "gb18030",
    "uhc",
    "win949",
    "windows949",
    "johab",
];

/// Server-side encodings and their aliases (cleaned), other than UTF8.
const ASCII_SAFE: &[&str] = &[
    "sqlascii",
    "eucjp",
    "eucjis2004",
    "euccn",
    "euckr",
    "euctw",
    "mule",
    "muleinternal",
    "latin1",
    "latin2",
    "latin3",
    "latin4",
    "latin5",
    "latin6",
    "latin7",
    "latin8",
    "latin9",
    "latin10",
    "iso88591",
    "iso88592",
    "iso88593",
    "iso88594",
    "iso88599",
    "iso885910",
    "iso885913",
    "iso885914",
    "iso885915",
    "iso885916",
    "iso88595",
    "iso88596",
    "iso88597",
    "iso88598",
    "win1250",
    "win1251",
    "win1252",
    "win1253",
    "win1254",
    "win1255",
    "win1256",
    "win1257",
    "win1258",
    "windows1250",
    "windows1251",
    "windows1252",
    "windows1253",
    "windows1254",
    "windows1255",
    "windows1256",
    "windows1257",
    "windows1258",
    "win866",
    "windows866",
    "win874",
    "windows874",
    "alt",
    "koi8",
    "koi8r",
    "koi8u",
    "tcvn",
    "tcvn5712",
    "vscii",
    "abc",
];

impl ClientEncoding {
    /// Reads an encoding name as PostgreSQL does (case, punctuation and aliases ignored).
    pub fn from_name(name: &str) -> Result<ClientEncoding, EncodingRefused> {
        let c = clean(name);
        if c == "utf8" || c == "unicode" {
            Ok(ClientEncoding::Utf8)
        } else if ASCII_SAFE.contains(&c.as_str()) {
            Ok(ClientEncoding::AsciiSafe)
        } else if QUOTE_UNSAFE.contains(&c.as_str()) {
            Err(EncodingRefused::QuoteUnsafe(name.to_string()))
        } else {
            Err(EncodingRefused::Unknown(name.to_string()))
        }
    }

    /// Whether a `client_encoding` value may be set: known and quote-safe. libpq's `auto`
    /// (resolved by the client before it is sent) and `DEFAULT` pass: the server answers with
    /// the value it picked, which the relay checks again.
    pub fn check_setting(value: &str) -> Result<(), EncodingRefused> {
        let c = clean(value);
        if c == "default" || c == "auto" || c.is_empty() {
            return Ok(());
        }
        Self::from_name(value).map(|_| ())
    }

    /// `text` in characters the session can receive: in a session that is not UTF8, the
    /// gateway's own messages (refusals raised by the upstream, then converted to the client's
    /// encoding) are reduced to ASCII, or the conversion would fail and replace the refusal
    /// with an encoding error.
    pub fn receivable(self, text: &str) -> Cow<'_, str> {
        if self == ClientEncoding::Utf8 || text.is_ascii() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                c if c.is_ascii() => out.push(c),
                '\u{2013}' | '\u{2014}' => out.push('-'),
                '\u{2026}' => out.push_str("..."),
                '\u{2018}' | '\u{2019}' => out.push('\''),
                '\u{201c}' | '\u{201d}' => out.push('"'),
                _ => out.push('?'),
            }
        }
        Cow::Owned(out)
    }

    /// The text of a client string as the gateway reads it (see the module doc).
    pub fn decode(self, bytes: &[u8]) -> Result<Cow<'_, str>, InvalidText> {
        match self {
            ClientEncoding::Utf8 => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
                let offset = e.valid_up_to();
                InvalidText {
                    offset,
                    byte: bytes[offset],
                }
            }),
            // ASCII is the same bytes in every such encoding; anything else is read one
            // character per byte (Latin-1), so distinct byte strings stay distinct and every
            // ASCII byte keeps its meaning.
            ClientEncoding::AsciiSafe => match std::str::from_utf8(bytes) {
                Ok(s) if s.is_ascii() => Ok(Cow::Borrowed(s)),
                _ => Ok(Cow::Owned(bytes.iter().map(|&b| b as char).collect())),
            },
        }
    }
}

/// A statement that would switch the session to an encoding the gateway refuses
/// (`SET client_encoding = 'SJIS'`, `SET NAMES 'big5'`, `set_config('client_encoding', 'GBK', …)`):
/// the refusal, so the statement is stopped before the server switches. A value the text does
/// not spell out is caught when the server reports it (the relay then ends the session).
pub fn statement_refused(sql: &str) -> Option<EncodingRefused> {
    use crate::sql::lexer::{Lexer, TokenKind};
    // Cheap: almost no statement mentions either word.
    let text = sql.as_bytes();
    let mentions = |w: &[u8]| crate::sql::mentions(text, w);
    if !mentions(b"encoding") && !mentions(b"names") {
        return None;
    }
    Lexer::new(sql)
        .filter(|t| {
            matches!(
                t.kind,
                TokenKind::String | TokenKind::Word | TokenKind::QuotedIdent
            )
        })
        .find_map(|t| {
            let text = t.text(sql);
            // The inside of '…', E'…', N'…', "…": encoding names need no escapes.
            let inner = text
                .trim_start_matches(|c: char| c.is_ascii_alphabetic() || c == '&')
                .trim_matches(|c| c == '\'' || c == '"');
            let inner = if inner.is_empty() { text } else { inner };
            match ClientEncoding::from_name(inner) {
                Err(e @ EncodingRefused::QuoteUnsafe(_)) => Some(e),
                _ => None,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_like_postgres_reads_them() {
        assert_eq!(ClientEncoding::from_name("UTF8"), Ok(ClientEncoding::Utf8));
        assert_eq!(ClientEncoding::from_name("utf-8"), Ok(ClientEncoding::Utf8));
        assert_eq!(
            ClientEncoding::from_name("Unicode"),
            Ok(ClientEncoding::Utf8)
        );
        for safe in [
            "LATIN1",
            "iso_8859_5",
            "WIN1252",
            "EUC_JP",
            "SQL_ASCII",
            "KOI8-R",
        ] {
            assert_eq!(
                ClientEncoding::from_name(safe),
                Ok(ClientEncoding::AsciiSafe),
                "{safe}"
            );
        }
        for unsafe_ in [
            "SJIS",
            "shift_jis_2004",
            "Big5",
            "GBK",
            "gb18030",
            "UHC",
            "johab",
            "WIN932",
        ] {
            assert!(
                matches!(
                    ClientEncoding::from_name(unsafe_),
                    Err(EncodingRefused::QuoteUnsafe(_))
                ),
                "{unsafe_}"
            );
        }
        assert!(ClientEncoding::check_setting("sjis").is_err());
        assert!(ClientEncoding::check_setting("nonsense").is_err());
        assert!(ClientEncoding::check_setting("DEFAULT").is_ok());
        assert!(ClientEncoding::check_setting("latin1").is_ok());
    }

    #[test]
    fn statements_switching_to_a_refused_encoding_are_found() {
        for sql in [
            "SET client_encoding = 'SJIS'",
            "set client_encoding to sjis",
            "SET NAMES 'big5'",
            "SET SESSION client_encoding TO \"GBK\"",
            "SELECT set_config('client_encoding', 'gb18030', false)",
            "SELECT 1; SET client_encoding = E'UHC'",
        ] {
            assert!(statement_refused(sql).is_some(), "{sql}");
        }
        for sql in [
            "SET client_encoding = 'LATIN1'",
            "SELECT names FROM sjis_table",
            "SELECT 1",
            "SET NAMES 'UTF8'",
        ] {
            assert!(statement_refused(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn the_gateways_messages_reach_sessions_in_other_encodings() {
        assert_eq!(ClientEncoding::Utf8.receivable("a — b…"), "a — b…");
        assert_eq!(
            ClientEncoding::AsciiSafe.receivable("rule r: DROP TABLE — on café…"),
            "rule r: DROP TABLE - on caf?..."
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_never_empty() {
        let e = ClientEncoding::Utf8
            .decode(b"DROP TABLE t; SELECT 1 /* \xe9 */")
            .unwrap_err();
        assert_eq!(e.byte, 0xe9);
        assert_eq!(e.offset, 26);
    }

    #[test]
    fn other_encodings_keep_every_byte_and_the_structure() {
        let text = ClientEncoding::AsciiSafe
            .decode(b"DROP TABLE t; SELECT 1 /* \xe9 */")
            .unwrap();
        assert_eq!(text, "DROP TABLE t; SELECT 1 /* \u{e9} */");
        // Distinct names stay distinct.
        let a = ClientEncoding::AsciiSafe
            .decode(b"s\xff")
            .unwrap()
            .into_owned();
        let b = ClientEncoding::AsciiSafe
            .decode(b"s\xfe")
            .unwrap()
            .into_owned();
        let c = ClientEncoding::AsciiSafe
            .decode("s\u{ff}".as_bytes())
            .unwrap()
            .into_owned();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(ClientEncoding::Utf8.decode("é".as_bytes()).unwrap(), "é");
    }
}
