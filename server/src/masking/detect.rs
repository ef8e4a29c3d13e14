//! Value detectors: does this text look like personal data or a secret? Each detector checks
//! structure and, where the format has one, its checksum (Luhn for cards, mod-97 for IBANs), so
//! an order number that merely has 16 digits is not a card.

use serde::Serialize;

/// The kinds of sensitive value the gateway recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Email,
    Phone,
    NationalId,
    PaymentCard,
    Iban,
    Secret,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::Phone => "phone",
            Category::NationalId => "national_id",
            Category::PaymentCard => "payment_card",
            Category::Iban => "iban",
            Category::Secret => "secret",
        }
    }
}

/// The category of `value`, if a detector recognises it. Cheap on values that cannot match.
pub fn detect(value: &str) -> Option<Category> {
    let v = value.trim();
    if v.len() < 6 || v.len() > 512 {
        return None;
    }
    if v.contains('@') {
        return is_email(v).then_some(Category::Email);
    }
    if is_secret(v) {
        return Some(Category::Secret);
    }
    if is_card(v) {
        return Some(Category::PaymentCard);
    }
    if is_us_ssn(v) {
        return Some(Category::NationalId);
    }
    if is_iban(v) {
        return Some(Category::Iban);
    }
    if is_phone(v) {
        return Some(Category::Phone);
    }
    None
}

pub fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-'".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.');
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    local_ok && domain_ok
}

fn digits_with_separators(v: &str, seps: &[u8]) -> Option<Vec<u8>> {
    let mut d = Vec::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_digit() {
            d.push(b - b'0');
        } else if !seps.contains(&b) {
            return None;
        }
    }
    Some(d)
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = x as u32;
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}

pub fn is_card(v: &str) -> bool {
    match digits_with_separators(v, b" -") {
        // Known issuer prefixes keep long numeric ids with a lucky checksum out.
        Some(d) if (13..=19).contains(&d.len()) && matches!(d[0], 2..=6) => luhn(&d),
        _ => false,
    }
}

pub fn is_us_ssn(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 11 || b[3] != b'-' || b[6] != b'-' {
        return false;
    }
    let Some(d) = digits_with_separators(v, b"-") else {
        return false;
    };
    if d.len() != 9 {
        return false;
    }
    let area = d[0] as u32 * 100 + d[1] as u32 * 10 + d[2] as u32;
    let group = d[3] * 10 + d[4];
    let serial = d[5..].iter().fold(0u32, |a, &x| a * 10 + x as u32);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

pub fn is_iban(v: &str) -> bool {
    let s: String = v.chars().filter(|c| *c != ' ').collect();
    let b = s.as_bytes();
    if !(15..=34).contains(&b.len())
        || !b[0].is_ascii_uppercase()
        || !b[1].is_ascii_uppercase()
        || !b[2].is_ascii_digit()
        || !b[3].is_ascii_digit()
        || !b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        let n = if c.is_ascii_digit() {
            (c - b'0') as u32
        } else {
            (c - b'A') as u32 + 10
        };
        rem = if n >= 10 {
            (rem * 100 + n) % 97
        } else {
            (rem * 10 + n) % 97
        };
    }
    rem == 1
}

pub fn is_phone(v: &str) -> bool {
    let Some(d) = digits_with_separators(v, b" -().+") else {
        return false;
    };
    let has_shape = v.starts_with('+')
        || v.contains('(')
        || v.bytes().filter(|b| b" -.".contains(b)).count() >= 2;
    (10..=15).contains(&d.len()) && has_shape
}

pub fn is_secret(v: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "sk_live_",
        "sk_test_",
        "rk_live_",
        "ghp_",
        "gho_",
        "github_pat_",
        "xoxb-",
        "xoxp-",
        "AKIA",
        "ASIA",
        "glpat-",
        "gha_",
        "ghs_",
    ];
    if v.contains("PRIVATE KEY-----") {
        return true;
    }
    if v.starts_with("$2a$")
        || v.starts_with("$2b$")
        || v.starts_with("$2y$")
        || v.starts_with("$argon2")
        || v.starts_with("SCRAM-SHA-256$")
    {
        return true;
    }
    if PREFIXES.iter().any(|p| v.starts_with(p)) && v.len() >= 16 && !v.contains(' ') {
        return true;
    }
    // A JSON Web Token: three base64url parts, the first two JSON objects.
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[1].starts_with("eyJ")
        && parts.iter().all(|p| p.len() >= 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_values_are_found() {
        assert_eq!(detect("ana.maria+x@example.co.uk"), Some(Category::Email));
        assert_eq!(detect("4111 1111 1111 1111"), Some(Category::PaymentCard));
        assert_eq!(detect("5500-0000-0000-0004"), Some(Category::PaymentCard));
        assert_eq!(detect("123-45-6789"), Some(Category::NationalId));
        assert_eq!(detect("GB82 WEST 1234 5698 7654 32"), Some(Category::Iban));
        assert_eq!(detect("DE89370400440532013000"), Some(Category::Iban));
        assert_eq!(detect("+1 (415) 555-0132"), Some(Category::Phone));
        assert_eq!(detect("415-555-0132"), Some(Category::Phone));
        assert_eq!(
            detect("sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
            Some(Category::Secret)
        );
        assert_eq!(
            detect("$2b$12$abcdefghijklmnopqrstuv"),
            Some(Category::Secret)
        );
        assert_eq!(
            detect("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_value"),
            Some(Category::Secret)
        );
    }

    #[test]
    fn near_misses_are_not() {
        assert_eq!(detect("4111 1111 1111 1112"), None, "bad Luhn");
        assert_eq!(
            detect("1234567812345678"),
            None,
            "no issuer prefix / bad Luhn"
        );
        assert_eq!(detect("000-12-3456"), None, "area 000");
        assert_eq!(detect("666-12-3456"), None);
        assert_eq!(detect("GB82 WEST 1234 5698 7654 33"), None, "bad mod-97");
        assert_eq!(detect("not an email@"), None);
        assert_eq!(detect("a@b"), None);
        assert_eq!(detect("2024-01-15"), None);
        assert_eq!(
            detect("4155550132"),
            None,
            "bare digits are ids, not phones"
        );
        assert_eq!(detect("hello world"), None);
        assert_eq!(detect("12345"), None);
    }
}
