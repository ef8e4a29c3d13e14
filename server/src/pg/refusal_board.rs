//! The gateway's refusals as data, for the in-process callers that open loopback sessions (the
//! MCP server).
//!
//! A refusal reaches a client as an `ErrorResponse` the upstream raises, whose words a person
//! reads. A program must not parse those words: a database error can say anything, including
//! "rule x" or an approval id. So the caller opens a slot here, names it to its session with a
//! startup parameter holding an unguessable ticket, and the session's relay posts each refusal
//! (decision, rule, approval) into the slot before the statement that raises it goes upstream.
//! An `ErrorResponse` that arrives with a posted refusal is the gateway's; one without is the
//! database's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use rand::RngCore;

/// The startup parameter that carries a slot's ticket.
pub const REFUSALS_PARAM: &str = "gatehouse.refusals";

/// One refusal, as the gate decided it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    /// `deny`, `review` (held and not approved), or `refused` (the gateway could not decide or
    /// record: unreadable text, an unavailable audit trail).
    pub decision: &'static str,
    pub rule: Option<String>,
    pub approval_id: Option<String>,
}

/// Refusals posted for one loopback session, oldest first.
#[derive(Debug, Default)]
pub struct RefusalSlot(Mutex<Vec<Refused>>);

/// At most this many unread refusals are kept per slot (a caller that never reads must not
/// grow it without bound).
const MAX_UNREAD: usize = 64;

impl RefusalSlot {
    pub fn post(&self, r: Refused) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() == MAX_UNREAD {
            v.remove(0);
        }
        v.push(r);
    }

    /// The oldest refusal not read yet: the one an `ErrorResponse` just received stands for.
    pub fn take(&self) -> Option<Refused> {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (!v.is_empty()).then(|| v.remove(0))
    }
}

/// Open slots by ticket. The opener holds the slot; the board only a weak reference, so a
/// session that never claimed its slot leaves nothing behind once the opener is done.
#[derive(Debug, Default)]
pub struct RefusalBoard {
    slots: Mutex<HashMap<String, Weak<RefusalSlot>>>,
}

impl RefusalBoard {
    /// A new slot and the ticket that names it.
    pub fn open(&self) -> (String, Arc<RefusalSlot>) {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let ticket = hex::encode(bytes);
        let slot = Arc::new(RefusalSlot::default());
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|_, s| s.strong_count() > 0);
        slots.insert(ticket.clone(), Arc::downgrade(&slot));
        (ticket, slot)
    }

    /// The slot a session names, once: a ticket cannot be claimed by a second session.
    pub fn claim(&self, ticket: &str) -> Option<Arc<RefusalSlot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(ticket)?.upgrade()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny(rule: &str) -> Refused {
        Refused {
            decision: "deny",
            rule: Some(rule.into()),
            approval_id: None,
        }
    }

    #[test]
    fn a_ticket_is_claimed_once_and_refusals_come_out_in_order() {
        let board = RefusalBoard::default();
        let (ticket, mine) = board.open();
        let theirs = board.claim(&ticket).expect("claimed");
        assert!(board.claim(&ticket).is_none(), "a second claim");
        assert!(board.claim("0123").is_none());
        theirs.post(deny("a"));
        theirs.post(deny("b"));
        assert_eq!(mine.take(), Some(deny("a")));
        assert_eq!(mine.take(), Some(deny("b")));
        assert_eq!(mine.take(), None);
    }

    #[test]
    fn slots_do_not_outlive_their_opener_and_stay_bounded() {
        let board = RefusalBoard::default();
        let (ticket, slot) = board.open();
        drop(slot);
        assert!(board.claim(&ticket).is_none());
        let (_, slot) = board.open();
        for i in 0..(MAX_UNREAD + 10) {
            slot.post(deny(&i.to_string()));
        }
        assert_eq!(slot.take(), Some(deny("10")));
    }
}
