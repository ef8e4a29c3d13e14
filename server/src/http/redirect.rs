//! Where the gateway may send a browser: a path on the gateway itself, nothing else.
//!
//! A redirect target that comes from a request (the web console's `return_to`) is checked
//! here before it is accepted and again before it is used. Browsers are lenient where it
//! matters: they drop tabs and newlines from URLs, read `\` as `/`, and take `//host` as
//! another origin, so `/%09/evil.example` lands on `evil.example`. The check is therefore
//! strict, and applied to the text as sent and to each layer of percent-decoding of it: no
//! control characters, no backslashes, no leading `//`, nothing but printable ASCII; and the
//! path, resolved against an origin, must still be on that origin.

/// Why a redirect target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("must be a path on this gateway, starting with a single `/`")]
    NotAPath,
    #[error("must be printable ASCII (percent-encode anything else)")]
    NotPrintable,
    #[error("must not contain control characters or backslashes, even percent-encoded")]
    Forbidden,
    #[error("must not lead to another origin")]
    OtherOrigin,
    #[error("is too long")]
    TooLong,
}

/// Longest target accepted.
const MAX_LEN: usize = 2048;
/// Layers of percent-encoding looked through (`%2509` is a tab after two).
const DECODE_LAYERS: usize = 4;

/// `raw` as a same-origin path (with its query and fragment), normalised (`/a/../b` is `/b`),
/// or why it is refused.
pub fn same_origin_path(raw: &str) -> Result<String, RedirectError> {
    if raw.len() > MAX_LEN {
        return Err(RedirectError::TooLong);
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(if raw.bytes().any(|b| b.is_ascii_control()) {
            RedirectError::Forbidden
        } else {
            RedirectError::NotPrintable
        });
    }
    let mut layer = raw.as_bytes().to_vec();
    for _ in 0..=DECODE_LAYERS {
        check_layer(&layer)?;
        let next = percent_decode(&layer);
        if next == layer {
            break;
        }
        layer = next;
    }
    // What a browser makes of it, resolved against some origin, must stay on that origin.
    let base = url::Url::parse("http://gatehouse.invalid/").map_err(|_| RedirectError::NotAPath)?;
    let resolved = base.join(raw).map_err(|_| RedirectError::NotAPath)?;
    if resolved.origin() != base.origin()
        || !resolved.username().is_empty()
        || resolved.password().is_some()
    {
        return Err(RedirectError::OtherOrigin);
    }
    let mut out = resolved.path().to_string();
    if let Some(q) = resolved.query() {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = resolved.fragment() {
        out.push('#');
        out.push_str(f);
    }
    // Normalising (`/..//x` is `//x`) must not have made it protocol-relative.
    check_layer(out.as_bytes())?;
    Ok(out)
}

/// One layer of the target: a single leading `/`, no controls (C0 and DEL), no backslash.
fn check_layer(s: &[u8]) -> Result<(), RedirectError> {
    if s.first() != Some(&b'/') || s.get(1) == Some(&b'/') {
        return Err(RedirectError::NotAPath);
    }
    if s.iter().any(|b| b.is_ascii_control() || *b == b'\\') {
        return Err(RedirectError::Forbidden);
    }
    Ok(())
}

/// `%XX` sequences decoded; anything else (a `%` not followed by two hex digits) kept.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_on_the_gateway_pass_normalised() {
        for (raw, expect) in [
            ("/", "/"),
            ("/console", "/console"),
            ("/#/approvals?state=pending", "/#/approvals?state=pending"),
            ("/a/../b?x=1", "/b?x=1"),
            ("/a%2Fb", "/a%2Fb"),
            ("/caf%C3%A9", "/caf%C3%A9"),
        ] {
            assert_eq!(same_origin_path(raw).as_deref(), Ok(expect), "{raw}");
        }
    }

    #[test]
    fn anything_that_could_leave_the_gateway_is_refused() {
        for raw in [
            "",
            "console",
            "//evil.example/x",
            "/\t/evil.example/x",
            "/\n/evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/%09/evil.example/x",
            "/%5Cevil.example",
            "/%5c/evil.example",
            "%2F%2Fevil.example",
            "/%2F/evil.example",
            "/%252F%252Fevil.example",
            "/%2509/evil.example",
            "/%25255Cevil.example",
            "/..//evil.example",
            "/x/..//evil.example",
            "https://evil.example/",
            "http:/evil.example",
            "/x\r\nSet-Cookie: a=b",
            "/x%0D%0ASet-Cookie:a=b",
            "/caf\u{e9}",
            "/a b",
        ] {
            assert!(same_origin_path(raw).is_err(), "{raw:?} was accepted");
        }
        assert_eq!(
            same_origin_path(&format!("/{}", "a".repeat(3000))),
            Err(RedirectError::TooLong)
        );
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode(b"/%41%zz%4"), b"/A%zz%4");
        assert_eq!(percent_decode(b"%"), b"%");
    }
}
