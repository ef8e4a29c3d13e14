//! Value detectors: does this text look like personal data or a secret? Each detector checks
//! structure and, where the format has one, its checksum (Luhn for cards, mod-97 for IBANs), so
//! an order number that merely has 16 digits is not a card.

use serde::Serialize;

/// The kinds of sensitive value the gateway recognises.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Email,
    Phone,
    NationalId,
    PaymentCard,
    Iban,
    Secret,
    PersonName,
    PostalAddress,
    #[serde(rename = "date_of_birth")]
    BirthDate,
    IpAddress,
    /// Free text that contained values of the other categories when sampled.
    FreeText,
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
            Category::PersonName => "person_name",
            Category::PostalAddress => "postal_address",
            Category::BirthDate => "date_of_birth",
            Category::IpAddress => "ip_address",
            Category::FreeText => "free_text",
        }
    }

    pub const ALL: [Category; 11] = [
        Category::Email,
        Category::Phone,
        Category::NationalId,
        Category::PaymentCard,
        Category::Iban,
        Category::Secret,
        Category::PersonName,
        Category::PostalAddress,
        Category::BirthDate,
        Category::IpAddress,
        Category::FreeText,
    ];

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether a detector recognises values of this category (so spans can be found in text).
    pub fn detectable(self) -> bool {
        !matches!(
            self,
            Category::PersonName
                | Category::PostalAddress
                | Category::BirthDate
                | Category::FreeText
        )
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
    // Every detector below needs digits: words cost one scan.
    if !v.bytes().any(|b| b.is_ascii_digit()) {
        return None;
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
    if is_ipv4(v) {
        return Some(Category::IpAddress);
    }
    if is_phone(v) {
        return Some(Category::Phone);
    }
    None
}

/// An IPv4 address in dotted-quad form (each part 0-255, no leading zeros).
pub fn is_ipv4(v: &str) -> bool {
    if v.len() > 15 || v.bytes().filter(|b| *b == b'.').count() != 3 {
        return false;
    }
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && !(p.len() > 1 && p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// Cheap test: can `text` contain anything [`find_spans`] would report? Plain numbers, dates,
/// words and short strings answer `false` after one pass over the bytes.
pub fn may_contain(text: &[u8]) -> bool {
    if text.len() < 6 {
        return false;
    }
    if text.contains(&b'@') {
        return true;
    }
    let mut digits = 0usize;
    let mut dots = 0usize;
    for (i, &b) in text.iter().enumerate() {
        match BYTE_CLASS[b as usize] {
            0 => {}
            1 => digits += 1,
            2 => dots += 1,
            _ => {
                if secret_marker_at(text, i) {
                    return true;
                }
            }
        }
    }
    digits >= 9 || (digits >= 4 && dots >= 3)
}

/// 1: digit, 2: dot, 3: a byte secret markers are anchored at, 0: anything else. Markers are
/// anchored at rare bytes (`$ _ - J S A`), so ordinary words and padding cost one lookup a byte.
const BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = 1;
        d += 1;
    }
    t[b'.' as usize] = 2;
    let anchors = b"$_-JSA";
    let mut i = 0;
    while i < anchors.len() {
        t[anchors[i] as usize] = 3;
        i += 1;
    }
    t
};

/// Whether a secret's marker (`$2b$`, `sk_live_`, `ghp_`, `xoxb-`, `-----BEGIN`, `eyJ`, `AKIA`,
/// `SCRAM-SHA-256$`) is anchored at `text[i]`.
fn secret_marker_at(text: &[u8], i: usize) -> bool {
    let rest = &text[i..];
    let before = |n: usize, m: &[u8]| i >= n && &text[i - n..i] == m;
    match text[i] {
        b'$' => rest.starts_with(b"$2") || rest.starts_with(b"$argon2"),
        b'_' => {
            rest.starts_with(b"_live_")
                || rest.starts_with(b"_test_")
                || rest.starts_with(b"_pat_")
                || [b"ghp", b"gho", b"gha", b"ghs"]
                    .iter()
                    .any(|m| before(3, *m))
        }
        b'-' => {
            rest.starts_with(b"-----BEGIN")
                || before(4, b"xoxb")
                || before(4, b"xoxp")
                || before(5, b"glpat")
        }
        b'J' => before(2, b"ey"),
        b'S' => rest.starts_with(b"SCRAM-SHA-256$"),
        b'A' => rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA"),
        _ => false,
    }
}

/// Every sensitive value found inside free text, as byte ranges with their category, in order
/// and not overlapping. Used for values whose column is not known to be safe (free text, JSON,
/// arrays, concatenations) and for error messages.
pub fn find_spans(text: &str) -> Vec<(std::ops::Range<usize>, Category)> {
    let mut out: Vec<(std::ops::Range<usize>, Category)> = Vec::new();
    if !may_contain(text.as_bytes()) {
        return out;
    }
    // Most text has no dash at all: one byte scan instead of a substring search.
    if let Some(start) = text
        .as_bytes()
        .contains(&b'-')
        .then(|| text.find("-----BEGIN"))
        .flatten()
    {
        if text[start..].contains("PRIVATE KEY-----") {
            out.push((start..text.len(), Category::Secret));
            return out;
        }
    }
    let b = text.as_bytes();
    // 1. Words (split on whitespace and quoting/punctuation that never occurs inside the
    //    values): emails, secrets, IBANs without spaces, IPs, SSNs, cards without spaces.
    let is_sep = |c: u8| c.is_ascii_whitespace() || b"\"',;()[]{}<>=|`".contains(&c);
    let mut i = 0;
    while i < b.len() {
        if is_sep(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_sep(b[i]) {
            i += 1;
        }
        let mut end = i;
        // Trailing sentence punctuation is not part of the value.
        while end > start && matches!(b[end - 1], b'.' | b':' | b'!' | b'?') {
            end -= 1;
        }
        let mut s = start;
        while s < end && matches!(b[s], b':' | b'.') {
            s += 1;
        }
        if end - s >= 6 && may_contain(&b[s..end]) {
            if let Some(word) = text.get(s..end) {
                let cat = if word.contains('@') {
                    is_email(word).then_some(Category::Email)
                } else {
                    detect(word)
                };
                if let Some(c) = cat {
                    out.push((s..end, c));
                }
            }
        }
    }
    // 2. Runs of digits with spaces, dashes, dots, parentheses and plus: cards and phones
    //    written with spaces ("4111 1111 1111 1111", "+1 (415) 555-0132"), IBANs in groups.
    //    Each needs at least nine digits.
    if b.iter().filter(|c| c.is_ascii_digit()).count() < 9 {
        out.sort_by_key(|(r, _)| r.start);
        return out;
    }
    let mut i = 0;
    while i < b.len() {
        let run_char = |c: u8| c.is_ascii_digit() || b" -()+.".contains(&c);
        let iban_char = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' ';
        if b[i].is_ascii_digit() || b[i] == b'+' || b[i] == b'(' {
            let start = i;
            while i < b.len() && run_char(b[i]) {
                i += 1;
            }
            let mut end = i;
            while end > start && !b[end - 1].is_ascii_digit() {
                end -= 1;
            }
            if b[start..end].iter().filter(|c| c.is_ascii_digit()).count() >= 9 {
                push_run(text, start, end, &mut out);
            }
        } else if b[i].is_ascii_uppercase()
            && b.get(i + 1).is_some_and(u8::is_ascii_uppercase)
            && b.get(i + 2).is_some_and(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        {
            let start = i;
            while i < b.len() && iban_char(b[i]) {
                i += 1;
            }
            let mut end = i;
            while end > start && b[end - 1] == b' ' {
                end -= 1;
            }
            if b[start..end].contains(&b' ') {
                if let Some(w) = text.get(start..end) {
                    if is_iban(w) {
                        add_span(&mut out, start..end, Category::Iban);
                    }
                }
            }
        } else {
            i += 1;
        }
    }
    out.sort_by_key(|(r, _)| r.start);
    out
}

/// A run of digits and separators: the whole run, or failing that its longest detected prefix
/// that ends on a digit (a card followed by a phone in one string is rare; a card followed by
/// text is common and handled by the run ending).
fn push_run(
    text: &str,
    start: usize,
    end: usize,
    out: &mut Vec<(std::ops::Range<usize>, Category)>,
) {
    if let Some(w) = text.get(start..end) {
        if let Some(c) = detect(w) {
            add_span(out, start..end, c);
            return;
        }
        // Try pieces split at double spaces or " - " separators.
        let mut s = start;
        for piece in w.split("  ") {
            let e = s + piece.len();
            if let Some(c) = text.get(s..e).and_then(detect) {
                add_span(out, s..e, c);
            }
            s = e + 2;
        }
    }
}

fn add_span(
    out: &mut Vec<(std::ops::Range<usize>, Category)>,
    r: std::ops::Range<usize>,
    c: Category,
) {
    // A wider span replaces the narrower ones it covers; one that overlaps an existing span
    // otherwise is merged into it.
    out.retain(|(o, _)| !(o.start >= r.start && o.end <= r.end));
    if out
        .iter()
        .any(|(o, _)| o.start <= r.start && o.end >= r.end)
    {
        return;
    }
    out.push((r, c));
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
    if !(13..=23).contains(&v.len()) {
        return false;
    }
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
    let h = v.as_bytes();
    if h.len() < 15
        || !h[0].is_ascii_uppercase()
        || !h[1].is_ascii_uppercase()
        || !h[2].is_ascii_digit()
        || !h[3].is_ascii_digit()
    {
        return false;
    }
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
    if v.len() > 24 {
        return false;
    }
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
    if v.as_bytes().contains(&b'-') && v.contains("PRIVATE KEY-----") {
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
    if !v.starts_with("eyJ") {
        return false;
    }
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
        assert_eq!(detect("256.1.1.1"), None, "octet out of range");
        assert_eq!(detect("1.2.3"), None);
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(detect("192.168.10.42"), Some(Category::IpAddress));
        assert!(!is_ipv4("01.2.3.4"));
    }

    fn spans(t: &str) -> Vec<(&str, Category)> {
        find_spans(t).into_iter().map(|(r, c)| (&t[r], c)).collect()
    }

    #[test]
    fn spans_in_free_text() {
        assert_eq!(
            spans("Call Ana at +1 (415) 555-0132 or mail ana@example.com."),
            vec![
                ("+1 (415) 555-0132", Category::Phone),
                ("ana@example.com", Category::Email)
            ]
        );
        assert_eq!(
            spans("card 4111 1111 1111 1111, ssn 123-45-6789"),
            vec![
                ("4111 1111 1111 1111", Category::PaymentCard),
                ("123-45-6789", Category::NationalId)
            ]
        );
        assert_eq!(
            spans(r#"{"e": "bo@x.org", "iban": "GB82 WEST 1234 5698 7654 32"}"#),
            vec![
                ("bo@x.org", Category::Email),
                ("GB82 WEST 1234 5698 7654 32", Category::Iban)
            ]
        );
        assert_eq!(spans("{ana@example.com,bo@x.org}").len(), 2);
        assert_eq!(spans("order 4111 1111 1111 1112 shipped"), vec![]);
        assert_eq!(spans("plain words and 2024-01-15 and 42"), vec![]);
        assert_eq!(
            spans("Key (email)=(ana@example.com) already exists."),
            vec![("ana@example.com", Category::Email)]
        );
        assert_eq!(
            spans("token sk_live_4eC39HqLyjWDarjtT1zdp7dc here"),
            vec![("sk_live_4eC39HqLyjWDarjtT1zdp7dc", Category::Secret)]
        );
        assert!(!may_contain(b"12345.67"));
        assert!(!may_contain(b"hello there, world"));
        assert!(!may_contain(&[b'x'; 200]));
        for secret in [
            "ghp_abcdefghijklmnop",
            "xoxb-123-abc",
            "eyJhbGciOi",
            "$2b$12$abc",
            "glpat-abcdefgh",
            "AKIAIOSFODNN7",
        ] {
            assert!(may_contain(secret.as_bytes()), "{secret}");
        }
    }
}
