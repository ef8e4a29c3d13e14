//! A statement's life on the wire, as named phases over plain values: what the relay does with
//! each client message that may run something, in order.
//!
//! 1. **decode** ([`query`], [`bind`], [`execute`], [`function_call`]): the message's text in
//!    the session's encoding, its names resolved to what the server accepted; what cannot be
//!    read becomes an early refusal, never an empty statement.
//! 2. **read** ([`reading`]): what the session has shown that changes how the text reads.
//! 3. **classify → decide → approve**: `gate::admit` (the policy, approvals, the audit's health).
//! 4. **forward** ([`replacement`]): a refused statement becomes one that makes the upstream
//!    raise the refusal; anything else goes as its own bytes.
//! 5. **track** ([`track`]): the tracker expects the statement's responses, which drive the
//!    result and masking phases (`tracker::on_backend`, `masking::rewrite`) and the record
//!    (`relay::record_finished` → audit).
//!
//! Each phase is a function of the tracker and the message, testable without sockets; the
//! relay owns only the I/O and the order.

use std::sync::Arc;

use bytes::BytesMut;

use super::encoding::{ClientEncoding, EncodingRefused};
use super::error::{PgError, SqlState};
use super::function_call::CallRefused;
use super::gate::{Reading, Refusal};
use super::refusal_board::Refused;
use super::tracker::{refusal, BindTarget, Exec, ExecTarget, Gate, StmtInfo, Tracker, Unreadable};

/// Where a client message is decided.
pub enum Point {
    /// A simple Query, or a FunctionCall: decided and answered as one.
    Query,
    /// A Bind: decided here, before the server plans the statement.
    Bind(BindTarget),
    /// An Execute: runs with its portal's decision.
    Execute(ExecTarget),
}

impl Point {
    /// Answered through the extended protocol (its refusal must be too).
    pub fn extended(&self) -> bool {
        !matches!(self, Point::Query)
    }
}

/// A refusal made before the policy is asked, and the rule name the audit gives it.
pub type EarlyRefusal = (Refusal, &'static str);

/// A client message that may run something, decoded.
pub struct Decoded {
    pub info: Arc<StmtInfo>,
    pub point: Point,
    pub early: Option<EarlyRefusal>,
}

/// The refusal of an execution the gateway cannot read.
pub fn unreadable_refusal(u: &Unreadable) -> EarlyRefusal {
    let (code, message, hint) = u.refusal();
    (PgError::refusal(code, message, hint), "protocol:unreadable")
}

/// The refusal of a statement that would switch to a client encoding the gateway cannot read.
pub fn encoding_refusal(info: &StmtInfo) -> Option<EarlyRefusal> {
    use crate::sql::Word;
    // The words `statement_refused` itself looks for first, found when the text arrived.
    if !info.mentions(Word::Encoding) && !info.mentions(Word::Names) {
        return None;
    }
    super::encoding::statement_refused(&info.sql).map(|e| {
        (
            PgError::refusal(
                SqlState::FeatureNotSupported,
                e.to_string(),
                EncodingRefused::HINT,
            ),
            "protocol:client-encoding",
        )
    })
}

/// [`encoding_refusal`], once per kept statement: it depends on the text alone.
fn encoding_refusal_kept(t: &mut Tracker, info: &Arc<StmtInfo>) -> Option<EarlyRefusal> {
    if t.verdicts.encoding_clean(info) {
        return None;
    }
    let refused = encoding_refusal(info);
    if refused.is_none() {
        t.verdicts.keep_encoding_clean(info);
    }
    refused
}

/// Decode: a simple Query.
pub fn query(t: &mut Tracker, frame: &[u8]) -> Decoded {
    match t.query_info(frame) {
        Ok(info) => Decoded {
            early: encoding_refusal_kept(t, &info),
            info,
            point: Point::Query,
        },
        Err(e) => Decoded {
            info: StmtInfo::new("<unreadable query>"),
            point: Point::Query,
            early: Some(unreadable_refusal(&e)),
        },
    }
}

/// Decode: a Bind, which plans the statement (folding immutable calls), so it is decided here
/// and its Executes carry the decision.
pub fn bind(t: &mut Tracker, frame: &[u8]) -> Decoded {
    let target = t.bind_target(frame);
    let early = match &target.unreadable {
        Some(u) => Some(unreadable_refusal(u)),
        None => encoding_refusal_kept(t, &target.info),
    };
    Decoded {
        info: target.info.clone(),
        point: Point::Bind(target),
        early,
    }
}

/// Decode: an Execute. Its statement was decided at the Bind; only an unreadable name or an
/// audit trail that cannot take the record stops it here.
pub fn execute(
    t: &Tracker,
    frame: &[u8],
    audit_down: impl FnOnce(&StmtInfo) -> Option<Refusal>,
) -> Decoded {
    let target = t.execute_target(frame);
    let early = match &target.unreadable {
        Some(u) => Some(unreadable_refusal(u)),
        None => audit_down(&target.info).map(|r| (r, "audit-unavailable")),
    };
    Decoded {
        info: target.info.clone(),
        point: Point::Execute(target),
        early,
    }
}

/// Decode: a FunctionCall, decided as the SELECT it stands for and answered like a simple query
/// (a FunctionCallResponse or an error, then ReadyForQuery).
pub fn function_call(frame: &[u8]) -> Decoded {
    match super::function_call::statement(frame) {
        Ok(sql) => Decoded {
            info: StmtInfo::new(&sql),
            point: Point::Query,
            early: None,
        },
        Err(e) => Decoded {
            info: StmtInfo::new("<function call>"),
            point: Point::Query,
            early: Some((
                PgError::refusal(e.sqlstate(), e.to_string(), CallRefused::HINT),
                "protocol:function-call",
            )),
        },
    }
}

/// Read: what the session has shown that changes how `point`'s text reads. The server reads a
/// prepared statement's text at its Parse, under whatever setting was in force then; only a
/// simple Query is read now, so only it gets the known string reading.
pub fn reading(t: &Tracker, point: &Point) -> Reading {
    Reading {
        strings: match point {
            Point::Query => t.reading(),
            _ => None,
        },
        search_path_changed: t.search_path_changed,
    }
}

/// Forward: the frames sent upstream in place of a refused statement, which make the server
/// raise the refusal itself, in words the session's encoding can carry.
pub fn replacement(r: &Refusal, encoding: ClientEncoding, extended: bool) -> BytesMut {
    let message = encoding.receivable(&r.message);
    let hint = encoding.receivable(r.hint.as_deref().unwrap_or_default());
    if extended {
        refusal::execute(r.code.code(), &message, &hint)
    } else {
        refusal::query(r.code.code(), &message, &hint)
    }
}

/// The refusal as data for an in-process caller: only one that sends its own raising
/// statement (a portal's Execute after a refused Bind raises nothing more).
pub fn refused_as_data(gate: &Gate, refusal: Option<&Refusal>) -> Option<Refused> {
    refusal.map(|_| Refused {
        decision: gate.decision,
        rule: gate.rule.clone(),
        approval_id: gate.approval_id.clone(),
    })
}

/// Track: the tracker expects what the server will answer to `point`, decided as `gate`.
pub fn track(t: &mut Tracker, point: Point, info: Arc<StmtInfo>, gate: Gate) {
    let run = |gate| {
        let mut exec = Exec::new(info);
        exec.gate = gate;
        exec
    };
    match point {
        // A refused Bind or Execute: the gateway's own statement raises the refusal in its
        // place.
        _ if gate.refused && point.extended() => t.expect_refusal_execute(run(gate)),
        Point::Query => t.expect_query(run(gate)),
        // A Bind runs nothing: its portal carries the decision to the Executes that do (no
        // execution, so no clock read, on the path every prepared statement takes).
        Point::Bind(target) => t.on_bind(target, gate),
        Point::Execute(target) => {
            let mut exec = run(gate);
            exec.portal = target.portal;
            exec.portal_name = Some(target.name);
            t.expect_execute(exec);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::codec::frame;
    use crate::policy::Strings;

    #[test]
    fn unreadable_text_is_refused_never_read_as_empty() {
        let mut t = Tracker::default();
        let d = query(&mut t, &frame(b'Q', b"DROP TABLE t; SELECT 1 /* \xff */\0"));
        let (r, rule) = d.early.expect("refused");
        assert_eq!(r.code, SqlState::CharacterNotInRepertoire);
        assert_eq!(rule, "protocol:unreadable");
    }

    #[test]
    fn a_switch_to_an_encoding_that_hides_quotes_is_refused() {
        let mut t = Tracker::default();
        let d = query(&mut t, &frame(b'Q', b"SET client_encoding = 'SJIS'\0"));
        let (r, rule) = d.early.expect("refused");
        assert_eq!(r.code, SqlState::FeatureNotSupported);
        assert_eq!(rule, "protocol:client-encoding");
        let d = query(&mut t, &frame(b'Q', b"SELECT 1\0"));
        assert!(d.early.is_none());
        assert_eq!(&*d.info.sql, "SELECT 1");
    }

    #[test]
    fn only_a_simple_query_gets_the_known_string_reading() {
        let mut t = Tracker::default();
        t.strings = Some(Strings::Backslash);
        assert_eq!(reading(&t, &Point::Query).strings, Some(Strings::Backslash));
        let b = bind(&mut t, &frame(b'B', b"\0\0\0\0\0\0\0\0"));
        assert_eq!(reading(&t, &b.point).strings, None);
        // A statement still running may change the setting: both readings until it is done.
        track(
            &mut t,
            Point::Query,
            StmtInfo::new("SET standard_conforming_strings = off"),
            Gate::default(),
        );
        assert_eq!(reading(&t, &Point::Query).strings, None);
    }

    #[test]
    fn a_refusal_is_raised_by_statements_of_ascii_only() {
        let r = PgError::refusal(SqlState::InsufficientPrivilege, "refusé: «x»", "…");
        for extended in [false, true] {
            let out = replacement(&r, ClientEncoding::AsciiSafe, extended);
            assert_eq!(out[0], if extended { b'C' } else { b'Q' });
            let start = out
                .windows(3)
                .position(|w| w == b"DO ")
                .expect("a DO block");
            let sql = &out[start..start + out[start..].iter().position(|&b| b == 0).unwrap()];
            assert!(sql.is_ascii(), "{}", String::from_utf8_lossy(sql));
            assert!(
                sql.ends_with(b"END$gh$"),
                "{}",
                String::from_utf8_lossy(sql)
            );
        }
    }

    #[test]
    fn only_a_raising_refusal_is_reported_as_data() {
        let gate = Gate {
            decision: "deny",
            rule: Some("no-role-change".into()),
            approval_id: None,
            refused: true,
        };
        let r = PgError::refusal(SqlState::InsufficientPrivilege, "x", "y");
        assert_eq!(
            refused_as_data(&gate, Some(&r))
                .and_then(|r| r.rule)
                .as_deref(),
            Some("no-role-change")
        );
        assert!(refused_as_data(&gate, None).is_none());
    }

    #[test]
    fn a_function_call_outside_the_large_object_api_is_refused() {
        let mut body = 2137u32.to_be_bytes().to_vec(); // pg_terminate_backend
        body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        let d = function_call(&frame(b'F', &body));
        let (r, rule) = d.early.expect("refused");
        assert_eq!(r.code, SqlState::InsufficientPrivilege);
        assert_eq!(rule, "protocol:function-call");
    }
}
