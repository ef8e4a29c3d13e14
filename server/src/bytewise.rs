//! Equality of slices that may be empty, for the statement path.
//!
//! An empty `Vec` or `String` points at a dangling address (its alignment, e.g. 1), and
//! Rust's `==` on slices of bytes or integers calls `bcmp` even for no bytes. glibc's AVX-512
//! `bcmp` (the one it picks on Xeons since Skylake) reads the first 32 bytes under a mask, and a
//! masked load from an unmapped page costs a microcode assist: about 70 ns a call on the Xeons
//! we measured, 40 times the comparison itself. The unnamed statement and portal, and a
//! result's empty format list, are compared at nearly every extended-protocol message; before
//! this, that was a tenth of a session worker's time. Comparing lengths first and skipping
//! empty slices never calls it.

/// `a == b`, without calling `bcmp` when both are empty.
#[inline]
pub fn eq<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn equal_as_slices_are() {
        let empty: Vec<i16> = Vec::new();
        assert!(super::eq(&empty, &[]));
        assert!(super::eq(b"ab", b"ab"));
        assert!(!super::eq(b"ab", b"ac"));
        assert!(!super::eq(b"ab", b"a"));
        assert!(!super::eq(&[], b"a"));
    }
}
