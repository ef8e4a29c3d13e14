//! The `options` startup parameter, read exactly as the server reads it.
//!
//! PostgreSQL splits `options` at unescaped white space, a backslash escaping the next character
//! (`pg_split_opts`), then reads the words as command-line switches (`getopt`): `-c name=value`,
//! `-cname=value`, `--name=value`, but also clusters such as `-ec name=value`. Setting names are
//! case-insensitive and `-` stands for `_` (`ParseLongOption`). Checking the raw text word by
//! word misses `-\c role=x`, `-c ROLE=x` or `-c session-authorization=x`.
//!
//! So the gateway parses `options` the server's way, accepts only settings (`-c`/`--`), refuses
//! those that would change who the session is or how its text is read, and sends the upstream
//! its own re-encoding of what it checked, never the client's text.
//!
//! Architecture invariant: pure; no I/O.

use super::encoding::{ClientEncoding, EncodingRefused};

/// One `name=value` setting from `options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// As PostgreSQL will look it up: lower case, `-` read as `_`.
    pub name: String,
    pub value: String,
}

/// Why `options` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsRefused {
    #[error("the startup option \"{0}\" cannot be set through the gateway")]
    Forbidden(String),
    #[error("the startup option word \"{0}\" is not accepted by the gateway: only settings (-c name=value or --name=value) are")]
    NotASetting(String),
    #[error("the startup option \"{0}\" needs a value (-c {0}=value)")]
    NoValue(String),
    #[error("{0}")]
    Encoding(#[from] EncodingRefused),
}

/// Settings that change the upstream identity, or the name DBAs see it by.
const FORBIDDEN: &[&str] = &["role", "session_authorization", "application_name"];

/// PostgreSQL's `pg_split_opts`.
pub fn split(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = options.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| is_c_space(*c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        let mut escaped = false;
        while let Some(&c) = chars.peek() {
            if is_c_space(c) && !escaped {
                break;
            }
            chars.next();
            if !escaped && c == '\\' {
                escaped = true;
            } else {
                escaped = false;
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// `ParseLongOption`: `name=value`, the name with `-` read as `_`.
fn setting(text: &str) -> Result<Setting, OptionsRefused> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(OptionsRefused::NoValue(text.to_string()));
    };
    Ok(Setting {
        name: name.replace('-', "_").to_ascii_lowercase(),
        value: value.to_string(),
    })
}

/// Parses and checks `options`; the settings the upstream may receive.
pub fn parse(options: &str) -> Result<Vec<Setting>, OptionsRefused> {
    let words = split(options);
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let s = if w == "-c" {
            i += 1;
            match words.get(i) {
                Some(next) => setting(next)?,
                None => return Err(OptionsRefused::NoValue("-c".into())),
            }
        } else if let Some(rest) = w.strip_prefix("--").filter(|r| !r.is_empty()) {
            setting(rest)?
        } else if let Some(rest) = w.strip_prefix("-c").filter(|r| !r.is_empty()) {
            setting(rest)?
        } else {
            // Other switches (and clusters like `-ec`) are the server's command line, not
            // settings a client needs; refusing them keeps the reading simple and exact.
            return Err(OptionsRefused::NotASetting(w.clone()));
        };
        check(&s)?;
        out.push(s);
        i += 1;
    }
    Ok(out)
}

/// A setting a client may make at startup, whether through `options` or as a parameter.
pub fn check(s: &Setting) -> Result<(), OptionsRefused> {
    if FORBIDDEN.contains(&s.name.as_str()) {
        return Err(OptionsRefused::Forbidden(s.name.clone()));
    }
    if s.name == "client_encoding" {
        ClientEncoding::check_setting(&s.value)?;
    }
    Ok(())
}

/// Escapes a word so that [`split`] gives it back unchanged.
fn escape(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if c == '\\' || is_c_space(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `options` value for the upstream: each setting as `-c name=value`, escaped.
pub fn encode(settings: &[Setting]) -> String {
    settings
        .iter()
        .map(|s| format!("-c {}", escape(&format!("{}={}", s.name, s.value))))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_pg_split_opts() {
        assert_eq!(split("  -c a=b   -c\tc=d "), ["-c", "a=b", "-c", "c=d"]);
        assert_eq!(split(r"-\c role=x"), ["-c", "role=x"]);
        assert_eq!(split(r"-c search_path=a\ b"), ["-c", "search_path=a b"]);
        assert_eq!(split(r"-c x=a\\b"), ["-c", r"x=a\b"]);
        assert_eq!(split("-c\rrole=x"), ["-c", "role=x"]);
    }

    #[test]
    fn every_spelling_of_an_identity_setting_is_refused() {
        for o in [
            "-c role=postgres",
            "-crole=postgres",
            "--role=postgres",
            r"-\c role=postgres",
            r"-c r\ole=postgres",
            "-c ROLE=postgres",
            "--Role=postgres",
            "-c session-authorization=postgres",
            "-c\tsession_authorization=postgres",
            "-c search_path=x -c role=postgres",
            "-c application_name=x",
        ] {
            assert!(
                matches!(parse(o), Err(OptionsRefused::Forbidden(_))),
                "{o}: {:?}",
                parse(o)
            );
        }
    }

    #[test]
    fn only_settings_are_accepted() {
        for o in ["-ec role=x", "-F", "postgres", "-c", "-c role", "-D /tmp"] {
            assert!(parse(o).is_err(), "{o}");
        }
    }

    #[test]
    fn unsafe_client_encodings_are_refused() {
        assert!(matches!(
            parse("-c client_encoding=SJIS"),
            Err(OptionsRefused::Encoding(EncodingRefused::QuoteUnsafe(_)))
        ));
        assert!(parse("--client-encoding=big5").is_err());
        assert!(parse("-c client_encoding=LATIN1").is_ok());
    }

    #[test]
    fn what_is_sent_reads_back_as_what_was_checked() {
        let s = parse(r"-c search_path=a\ b,c -c statement_timeout=5s --DateStyle=ISO").unwrap();
        assert_eq!(
            s,
            vec![
                Setting {
                    name: "search_path".into(),
                    value: "a b,c".into()
                },
                Setting {
                    name: "statement_timeout".into(),
                    value: "5s".into()
                },
                Setting {
                    name: "datestyle".into(),
                    value: "ISO".into()
                },
            ]
        );
        assert_eq!(parse(&encode(&s)).unwrap(), s);
        let tricky = vec![Setting {
            name: "search_path".into(),
            value: r"x\ -c role=y".into(),
        }];
        assert_eq!(parse(&encode(&tricky)).unwrap(), tricky);
    }
}
