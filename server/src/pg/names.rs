//! Which prepared statement (or portal) a name means on the server, given what is still in
//! flight.
//!
//! A Parse, Bind or Close changes the server's names only if the server accepts it: a Parse of a
//! name already in use fails, and after any error in an extended-protocol group the server skips
//! every message up to Sync. So the gateway records a definition only when the server confirms it
//! (ParseComplete, BindComplete, CloseComplete), and while messages are in flight it asks: which
//! definitions could the name have when this message is processed?
//!
//! - An operation in the same Sync group as the message that uses the name has certainly taken
//!   effect by then: had it failed, the server would skip the user too.
//! - An operation in an earlier, still unanswered group may or may not have taken effect.
//!
//! When the possible definitions disagree, the name is ambiguous, and a statement that uses it
//! is refused rather than decided on a guess.
//!
//! Architecture invariant: pure; no I/O.

use std::borrow::Borrow;
use std::sync::Arc;

/// A statement or portal name as the tracker keeps it.
///
/// Its text is never at a dangling address, not even empty: map lookups compare it with
/// `str`'s own `==`, which calls `bcmp`, slow on such an address (see [`crate::bytewise`]). An
/// `Arc<str>` always points into its allocation, and clones of one unnamed `Name` compare by
/// address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Name(Arc<str>);

impl Name {
    pub fn new(name: &str) -> Name {
        Name(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        crate::bytewise::eq(self.0.as_bytes(), other.as_bytes())
    }
}

/// What a name means for a message about to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved<T> {
    Known(T),
    /// No definition: the server will answer with an error.
    Unknown,
    /// Different definitions are possible.
    Ambiguous,
}

/// One unconfirmed operation on the name, oldest first: whether it is in an earlier Sync group
/// than the message being resolved, and the definition it leaves (`None` for a Close).
pub struct Op<T> {
    pub earlier_group: bool,
    pub leaves: Option<T>,
}

/// The definition a name has, from its confirmed one and the operations still in flight.
/// `same` tells two definitions apart (e.g. by their text).
pub fn resolve<T: Clone>(
    confirmed: Option<T>,
    ops: impl IntoIterator<Item = Op<T>>,
    same: impl Fn(&T, &T) -> bool,
) -> Resolved<T> {
    // The last operation of the message's own group (or the confirmed definition), then
    // every operation of an earlier group after it. Held apart so that the usual case, no
    // earlier group in flight, allocates nothing: it runs for every Bind, Describe and Execute.
    let mut certain: Option<T> = confirmed;
    let mut maybe: Vec<Option<T>> = Vec::new();
    for op in ops {
        if op.earlier_group {
            maybe.push(op.leaves);
        } else {
            certain = op.leaves;
            maybe.clear();
        }
    }
    // A state with no definition makes the server refuse the message itself: no risk there.
    let mut defs = certain.into_iter().chain(maybe.into_iter().flatten());
    let Some(first) = defs.next() else {
        return Resolved::Unknown;
    };
    if defs.all(|d| same(&first, &d)) {
        Resolved::Known(first)
    } else {
        Resolved::Ambiguous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(earlier_group: bool, leaves: Option<&'static str>) -> Op<&'static str> {
        Op {
            earlier_group,
            leaves,
        }
    }

    #[test]
    fn a_name_is_never_at_a_dangling_address() {
        // `String::new()` is at address 1; a kept name never is (see `Name`).
        for n in [Name::default(), Name::new(""), Name::new("s1")] {
            assert!(n.as_str().as_ptr() as usize > 4096, "{n:?}");
        }
        let unnamed = Name::default();
        assert!(unnamed == *"" && unnamed == *String::new().as_str());
        assert!(Name::new("s1") == *"s1" && Name::new("s1") != *"s2" && !(unnamed == *"s1"));
    }

    fn r(confirmed: Option<&'static str>, ops: Vec<Op<&'static str>>) -> Resolved<&'static str> {
        resolve(confirmed, ops, |a, b| a == b)
    }

    #[test]
    fn confirmed_definitions_stand_alone() {
        assert_eq!(r(Some("SELECT 1"), vec![]), Resolved::Known("SELECT 1"));
        assert_eq!(r(None, vec![]), Resolved::Unknown);
    }

    #[test]
    fn the_same_group_has_certainly_taken_effect() {
        // Parse then Bind in one group: had the Parse failed, the Bind would be skipped.
        assert_eq!(
            r(Some("DROP TABLE t"), vec![op(false, Some("SELECT 1"))]),
            Resolved::Known("SELECT 1")
        );
        assert_eq!(r(Some("x"), vec![op(false, None)]), Resolved::Unknown);
    }

    #[test]
    fn an_unanswered_earlier_group_makes_a_redefinition_ambiguous() {
        // Parse s1 (rejected: s1 exists) ; Sync ; Bind s1 — the server binds the old s1.
        assert_eq!(
            r(Some("DROP TABLE t"), vec![op(true, Some("SELECT 1"))]),
            Resolved::Ambiguous
        );
        // A Close skipped after an error leaves the old definition in place.
        assert_eq!(
            r(
                Some("DROP TABLE t"),
                vec![op(true, None), op(true, Some("SELECT 1"))]
            ),
            Resolved::Ambiguous
        );
        // Nothing to confuse it with: the server either has it or refuses the Bind.
        assert_eq!(
            r(None, vec![op(true, Some("SELECT 1"))]),
            Resolved::Known("SELECT 1")
        );
        assert_eq!(
            r(Some("SELECT 1"), vec![op(true, Some("SELECT 1"))]),
            Resolved::Known("SELECT 1")
        );
    }
}
