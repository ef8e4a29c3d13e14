//! Masks: what a sensitive value becomes. Masks keep the shape tools expect
//! (`a***@example.com`, `***-**-6789`, `**** **** **** 1111`), or, in keyed-hash mode, become a
//! deterministic token (`h:…`, HMAC-SHA256 under the gateway's masking key) so people can still
//! join and count distinct values without seeing them.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::detect::{find_spans, Category};

/// How values are masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Format-preserving partial masks.
    #[default]
    Partial,
    /// Deterministic keyed hashes.
    Hash,
}

/// Mode and key, shared by every session.
#[derive(Clone)]
pub struct Masker {
    pub mode: Mode,
    key: [u8; 32],
}

impl std::fmt::Debug for Masker {
    // The key never appears in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").field("mode", &self.mode).finish()
    }
}

impl Masker {
    pub fn new(mode: Mode, key: [u8; 32]) -> Masker {
        Masker { mode, key }
    }

    /// The keyed hash (HMAC-SHA256) of raw bytes: equal inputs give equal outputs.
    pub fn keyed_bytes(&self, value: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// The keyed hash token of a value: equal values give equal tokens under one key.
    pub fn token(&self, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        format!("h:{}", hex::encode(&out[..8]))
    }

    /// The mask of a value whose origin is not known: nothing of it kept (in keyed-hash mode,
    /// its token, so equal values still join).
    pub fn redact(&self, value: &str) -> String {
        match self.mode {
            Mode::Hash => self.token(value),
            Mode::Partial => "***".into(),
        }
    }

    /// The mask of a whole value known to be of `cat`.
    pub fn mask_value(&self, cat: Category, value: &str) -> String {
        if self.mode == Mode::Hash {
            return self.token(value);
        }
        match cat {
            Category::Email => mask_email(value),
            Category::PaymentCard | Category::NationalId | Category::Phone => {
                keep_last_digits(value, if cat == Category::Phone { 2 } else { 4 })
            }
            Category::Iban => mask_iban(value),
            Category::PersonName => {
                let mut out = String::with_capacity(value.len() + 8);
                for w in value.split_whitespace() {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.extend(w.chars().take(1));
                    out.push_str("***");
                }
                out
            }
            Category::IpAddress => match value.split_once('.') {
                Some((first, _)) if value.bytes().filter(|b| *b == b'.').count() == 3 => {
                    format!("{first}.*.*.*")
                }
                _ => "***".into(),
            },
            Category::BirthDate => value
                .chars()
                .map(|c| if c.is_ascii_digit() { '*' } else { c })
                .collect(),
            Category::Secret | Category::PostalAddress => "********".into(),
            Category::FreeText => {
                let spans = find_spans(value);
                if spans.is_empty() {
                    "***".into()
                } else {
                    self.mask_spans(value, &spans)
                }
            }
        }
    }

    /// `text` with each span replaced by its mask; the rest kept.
    pub fn mask_spans(&self, text: &str, spans: &[(std::ops::Range<usize>, Category)]) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (r, c) in spans {
            if r.start < at || r.end > text.len() {
                continue;
            }
            out.push_str(&text[at..r.start]);
            out.push_str(&self.mask_value(*c, &text[r.clone()]));
            at = r.end;
        }
        out.push_str(&text[at..]);
        out
    }
}

fn mask_email(v: &str) -> String {
    match v.rsplit_once('@') {
        Some((local, domain)) => {
            let mut out = String::with_capacity(domain.len() + 8);
            out.extend(local.chars().take(1));
            out.push_str("***@");
            out.push_str(domain);
            out
        }
        None => "***".into(),
    }
}

/// Digits become `*` except the last `keep`; separators stay, so the shape survives.
fn keep_last_digits(v: &str, keep: usize) -> String {
    let total = v.bytes().filter(|c| c.is_ascii_digit()).count();
    if v.is_ascii() {
        let mut seen = 0;
        let out: Vec<u8> = v
            .bytes()
            .map(|c| {
                if c.is_ascii_digit() {
                    seen += 1;
                    if seen + keep > total {
                        c
                    } else {
                        b'*'
                    }
                } else if c.is_ascii_alphabetic() {
                    b'*'
                } else {
                    c
                }
            })
            .collect();
        return String::from_utf8(out).unwrap_or_default();
    }
    let mut seen = 0;
    v.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + keep > total {
                    c
                } else {
                    '*'
                }
            } else if c.is_alphabetic() {
                '*'
            } else {
                c
            }
        })
        .collect()
}

fn mask_iban(v: &str) -> String {
    let alnum = v.chars().filter(|c| c.is_ascii_alphanumeric()).count();
    let mut seen = 0;
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                seen += 1;
                if seen <= 2 || seen + 4 > alnum {
                    c
                } else {
                    '*'
                }
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Masker {
        Masker::new(Mode::Partial, [7; 32])
    }

    #[test]
    fn masks_keep_the_shape() {
        let m = m();
        assert_eq!(
            m.mask_value(Category::Email, "ana@example.com"),
            "a***@example.com"
        );
        assert_eq!(
            m.mask_value(Category::NationalId, "123-45-6789"),
            "***-**-6789"
        );
        assert_eq!(
            m.mask_value(Category::PaymentCard, "4111 1111 1111 1111"),
            "**** **** **** 1111"
        );
        assert_eq!(
            m.mask_value(Category::Phone, "+1 (415) 555-0132"),
            "+* (***) ***-**32"
        );
        assert_eq!(
            m.mask_value(Category::Iban, "GB82 WEST 1234 5698 7654 32"),
            "GB** **** **** **** **54 32"
        );
        assert_eq!(m.mask_value(Category::PersonName, "Ana Silva"), "A*** S***");
        assert_eq!(m.mask_value(Category::IpAddress, "10.1.2.3"), "10.*.*.*");
        assert_eq!(
            m.mask_value(Category::BirthDate, "1990-04-01"),
            "****-**-**"
        );
        assert_eq!(
            m.mask_value(Category::FreeText, "mail ana@example.com now"),
            "mail a***@example.com now"
        );
    }

    #[test]
    fn hash_mode_is_deterministic_and_keyed() {
        let a = Masker::new(Mode::Hash, [1; 32]);
        let b = Masker::new(Mode::Hash, [2; 32]);
        let x = a.mask_value(Category::Email, "ana@example.com");
        assert_eq!(x, a.mask_value(Category::Email, "ana@example.com"));
        assert_ne!(x, a.mask_value(Category::Email, "bo@example.com"));
        assert_ne!(x, b.mask_value(Category::Email, "ana@example.com"));
        assert!(x.starts_with("h:") && x.len() == 18);
    }
}
