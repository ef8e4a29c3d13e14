//! Durations as people type them for access requests: `2h`, `90m`, `1h30m`, `45s`, `1d`, or a
//! bare number of seconds.

use crate::error::{Error, Result};

/// Seconds in `text`: one or more `<number><unit>` parts (`d`, `h`, `m`, `s`), or a bare
/// number of seconds. Zero is refused (a request for no time is a mistake).
pub fn parse_duration(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let bad = || {
        Error::invalid(
            "duration",
            format!("{text:?}: write it like 2h, 90m, 1h30m or 45s"),
        )
    };
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<u64>() {
        return if n == 0 { Err(bad()) } else { Ok(n) };
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

/// `3600` → `1h`, `5400` → `1h30m`, `45` → `45s`: durations as [`parse_duration`] reads them
/// (and as the gateway words them in its messages).
pub fn human_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{human_duration, parse_duration};

    #[test]
    fn words_durations_as_they_are_read() {
        for (seconds, words) in [
            (3600, "1h"),
            (5400, "1h30m"),
            (45, "45s"),
            (0, "0s"),
            (3661, "1h1m1s"),
        ] {
            assert_eq!(human_duration(seconds), words);
            if seconds > 0 {
                assert_eq!(parse_duration(words).unwrap(), seconds as u64);
            }
        }
    }

    #[test]
    fn reads_what_people_type() {
        assert_eq!(parse_duration("2h").unwrap(), 7200);
        assert_eq!(parse_duration("90m").unwrap(), 5400);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration(" 45s ").unwrap(), 45);
        assert_eq!(parse_duration("1d").unwrap(), 86_400);
        assert_eq!(parse_duration("600").unwrap(), 600);
        for bad in [
            "",
            "0",
            "0h",
            "2x",
            "h",
            "2h30",
            "1.5h",
            "-1h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
