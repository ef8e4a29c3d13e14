//! A small, fast PostgreSQL lexer: enough to fingerprint statements, find literals to redact,
//! and split a query string into statements — without a full parse.
//!
//! It never fails: bytes it does not understand become `Other` tokens, and an unterminated
//! string or comment runs to the end of the input (PostgreSQL would reject such text anyway).

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A keyword or unquoted identifier.
    Word,
    /// A `"quoted identifier"`.
    QuotedIdent,
    /// A string constant of any form: `'..'`, `E'..'`, `$tag$..$tag$`, `B'..'`, `X'..'`, `U&'..'`.
    String,
    Number,
    /// `$1`, `$2`, …
    Param,
    /// `;`
    Semicolon,
    /// Punctuation and operators.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.start..self.end]
    }
}

/// Iterates over the tokens of `src`, skipping whitespace and comments.
pub struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    /// Read `'…'` as PostgreSQL does with `standard_conforming_strings = off`: a backslash
    /// escapes the next character, as in `E'…'`.
    backslash_strings: bool,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer {
            src,
            b: src.as_bytes(),
            pos: 0,
            backslash_strings: false,
        }
    }

    /// A lexer that reads plain `'…'` strings as a session with
    /// `standard_conforming_strings = off` would (backslash escapes).
    pub fn non_standard_strings(src: &'a str) -> Self {
        Lexer {
            backslash_strings: true,
            ..Lexer::new(src)
        }
    }

    fn peek(&self, off: usize) -> u8 {
        self.b.get(self.pos + off).copied().unwrap_or(0)
    }

    fn skip_trivia(&mut self) {
        loop {
            let c = self.peek(0);
            if c.is_ascii_whitespace() {
                self.pos += 1;
            } else if c == b'-' && self.peek(1) == b'-' {
                // scan.l: `comment ("--"{non_newline}*)`, non_newline = [^\n\r]: a bare
                // carriage return ends the comment too.
                while self.pos < self.b.len() && !matches!(self.b[self.pos], b'\n' | b'\r') {
                    self.pos += 1;
                }
            } else if c == b'/' && self.peek(1) == b'*' {
                // Block comments nest in PostgreSQL.
                let mut depth = 0usize;
                while self.pos < self.b.len() {
                    if self.peek(0) == b'/' && self.peek(1) == b'*' {
                        depth += 1;
                        self.pos += 2;
                    } else if self.peek(0) == b'*' && self.peek(1) == b'/' {
                        depth -= 1;
                        self.pos += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        self.pos += 1;
                    }
                }
            } else {
                return;
            }
        }
    }

    /// Consumes a quoted run starting at the opening `quote`; `backslash` enables E'' escapes.
    fn quoted(&mut self, quote: u8, backslash: bool) {
        self.pos += 1;
        while self.pos < self.b.len() {
            let c = self.b[self.pos];
            if backslash && c == b'\\' {
                self.pos += 2;
            } else if c == quote {
                if self.peek(1) == quote {
                    self.pos += 2;
                } else {
                    self.pos += 1;
                    return;
                }
            } else {
                self.pos += 1;
            }
        }
        self.pos = self.b.len();
    }

    /// `$tag$ … $tag$` at the current `$`, if it is one; returns false (consuming nothing) if not.
    fn dollar_quoted(&mut self) -> bool {
        let start = self.pos;
        let mut i = start + 1;
        while i < self.b.len()
            && (self.b[i].is_ascii_alphanumeric() || self.b[i] == b'_' || self.b[i] >= 0x80)
        {
            i += 1;
        }
        if i >= self.b.len()
            || self.b[i] != b'$'
            || self.b.get(start + 1).is_some_and(u8::is_ascii_digit)
        {
            return false;
        }
        let tag = &self.b[start..=i];
        let body = i + 1;
        let end = self.b[body..]
            .windows(tag.len())
            .position(|w| w == tag)
            .map(|p| body + p + tag.len())
            .unwrap_or(self.b.len());
        self.pos = end;
        true
    }

    fn is_word_start(c: u8) -> bool {
        c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
    }

    fn is_word_char(c: u8) -> bool {
        c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        self.skip_trivia();
        let start = self.pos;
        let c = *self.b.get(self.pos)?;
        let kind = match c {
            b'\'' => {
                self.quoted(b'\'', self.backslash_strings);
                TokenKind::String
            }
            b'"' => {
                self.quoted(b'"', false);
                TokenKind::QuotedIdent
            }
            b'$' if self.peek(1).is_ascii_digit() => {
                self.pos += 1;
                while self.peek(0).is_ascii_digit() {
                    self.pos += 1;
                }
                TokenKind::Param
            }
            b'$' if self.dollar_quoted() => TokenKind::String,
            b'0'..=b'9' => {
                self.number();
                TokenKind::Number
            }
            b'.' if self.peek(1).is_ascii_digit() => {
                self.number();
                TokenKind::Number
            }
            b';' => {
                self.pos += 1;
                TokenKind::Semicolon
            }
            // String constants with a prefix: E'..', B'..', X'..', N'..', U&'..'.
            b'e' | b'E' if self.peek(1) == b'\'' => {
                self.pos += 1;
                self.quoted(b'\'', true);
                TokenKind::String
            }
            // N'..' is a plain string with a type: it follows standard_conforming_strings.
            b'n' | b'N' if self.peek(1) == b'\'' => {
                self.pos += 1;
                self.quoted(b'\'', self.backslash_strings);
                TokenKind::String
            }
            // B'..' and X'..' never take backslash escapes (scan.l's xb/xh states).
            b'b' | b'B' | b'x' | b'X' if self.peek(1) == b'\'' => {
                self.pos += 1;
                self.quoted(b'\'', false);
                TokenKind::String
            }
            b'u' | b'U'
                if self.peek(1) == b'&' && (self.peek(2) == b'\'' || self.peek(2) == b'"') =>
            {
                self.pos += 2;
                let q = self.peek(0);
                self.quoted(q, false);
                if q == b'\'' {
                    TokenKind::String
                } else {
                    TokenKind::QuotedIdent
                }
            }
            c if Self::is_word_start(c) => {
                while Self::is_word_char(self.peek(0)) {
                    self.pos += 1;
                }
                TokenKind::Word
            }
            _ => {
                // One character of punctuation, or a run of operator characters.
                const OPS: &[u8] = b"+-*/<>=~!@#%^&|`?";
                if OPS.contains(&c) {
                    self.pos += 1;
                    while OPS.contains(&self.peek(0))
                        && !(self.peek(0) == b'-' && self.peek(1) == b'-')
                        && !(self.peek(0) == b'/' && self.peek(1) == b'*')
                    {
                        self.pos += 1;
                    }
                } else {
                    // Advance over one whole UTF-8 character.
                    self.pos += self.src[self.pos..]
                        .chars()
                        .next()
                        .map_or(1, char::len_utf8);
                }
                TokenKind::Other
            }
        };
        Some(Token {
            kind,
            start,
            end: self.pos,
        })
    }
}

impl Lexer<'_> {
    fn number(&mut self) {
        if self.peek(0) == b'0' && matches!(self.peek(1), b'x' | b'X' | b'o' | b'O' | b'b' | b'B') {
            self.pos += 2;
            while self.peek(0).is_ascii_alphanumeric() || self.peek(0) == b'_' {
                self.pos += 1;
            }
            return;
        }
        while self.peek(0).is_ascii_digit() || self.peek(0) == b'_' {
            self.pos += 1;
        }
        if self.peek(0) == b'.' && self.peek(1) != b'.' {
            self.pos += 1;
            while self.peek(0).is_ascii_digit() || self.peek(0) == b'_' {
                self.pos += 1;
            }
        }
        if matches!(self.peek(0), b'e' | b'E')
            && (self.peek(1).is_ascii_digit()
                || (matches!(self.peek(1), b'+' | b'-') && self.peek(2).is_ascii_digit()))
        {
            self.pos += 2;
            while self.peek(0).is_ascii_digit() {
                self.pos += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(TokenKind, &str)> {
        Lexer::new(s).map(|t| (t.kind, t.text(s))).collect()
    }

    #[test]
    fn literals_of_every_form() {
        use TokenKind::*;
        let s = "SELECT 'a''b', E'x\\'y', $$ it's $$, $f$a$$b$f$, 1.5e3, $1, \"Col\"\"x\", X'ff', U&'d\\0061' FROM t; -- c\n/* a /* nested */ b */ x";
        assert_eq!(
            kinds(s),
            vec![
                (Word, "SELECT"),
                (String, "'a''b'"),
                (Other, ","),
                (String, "E'x\\'y'"),
                (Other, ","),
                (String, "$$ it's $$"),
                (Other, ","),
                (String, "$f$a$$b$f$"),
                (Other, ","),
                (Number, "1.5e3"),
                (Other, ","),
                (Param, "$1"),
                (Other, ","),
                (QuotedIdent, "\"Col\"\"x\""),
                (Other, ","),
                (String, "X'ff'"),
                (Other, ","),
                (String, "U&'d\\0061'"),
                (Word, "FROM"),
                (Word, "t"),
                (Semicolon, ";"),
                (Word, "x"),
            ]
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "'unterminated",
            "$$ open",
            "/* open",
            "é ∑ 💥",
            "\"",
            "E'\\",
            "0x",
            "1e",
            "$a",
            "$",
        ] {
            let _ = kinds(s);
        }
    }
}

#[cfg(test)]
mod scanner_tests {
    use super::*;

    fn words(l: Lexer<'_>, s: &str) -> Vec<String> {
        l.map(|t| t.text(s).to_string()).collect()
    }

    #[test]
    fn a_bare_carriage_return_ends_a_line_comment() {
        let s = "SELECT 1 --x\r; DROP";
        assert_eq!(words(Lexer::new(s), s), ["SELECT", "1", ";", "DROP"]);
    }

    #[test]
    fn national_strings_follow_standard_conforming_strings() {
        let s = "SELECT N'a\\'; DROP; --'";
        assert_eq!(
            words(Lexer::new(s), s),
            ["SELECT", "N'a\\'", ";", "DROP", ";"]
        );
        assert_eq!(
            words(Lexer::non_standard_strings(s), s),
            ["SELECT", "N'a\\'; DROP; --'"]
        );
        // B'' and X'' never take backslash escapes.
        let s = "SELECT X'a\\'; DROP";
        assert_eq!(
            words(Lexer::non_standard_strings(s), s),
            ["SELECT", "X'a\\'", ";", "DROP"]
        );
    }
}
