//! Follows the conversation statement by statement, so each execution can be audited (and, when
//! needed, refused) without parsing the traffic twice.
//!
//! Every client message that gets a response pushes an expectation; every response pops the one
//! it answers, in protocol order. That mirror is what lets the gateway replace a client's Execute
//! with a refusal of its own (whose extra ParseComplete/BindComplete/CloseComplete it then hides)
//! and still hand the client exactly the responses it expects.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, BytesMut};

use crate::audit::record::rows_from_tag;

/// A statement as the client prepared or sent it.
pub use crate::sql::Statement as StmtInfo;

/// One execution: a simple Query, an Execute of a portal, or a FunctionCall.
#[derive(Debug)]
pub struct Exec {
    pub info: Arc<StmtInfo>,
    pub started: Instant,
    pub at: SystemTime,
    pub rows: Option<i64>,
    pub error: Option<(String, String)>,
    /// What the gateway decided about it.
    pub gate: Gate,
}

/// What the gateway decided about an execution, for the audit record.
#[derive(Debug, Clone)]
pub struct Gate {
    /// `allow`, `deny`, `review` (approved) or `refused` (e.g. the audit was unavailable).
    pub decision: &'static str,
    pub rule: Option<String>,
    pub approval_id: Option<String>,
    /// The statement did not run: the gateway sent a refusal in its place.
    pub refused: bool,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            decision: "allow",
            rule: None,
            approval_id: None,
            refused: false,
        }
    }
}

impl Exec {
    pub fn new(info: Arc<StmtInfo>) -> Exec {
        Exec {
            info,
            started: Instant::now(),
            at: SystemTime::now(),
            rows: None,
            error: None,
            gate: Gate::default(),
        }
    }
}

#[derive(Debug)]
enum Expect {
    Parse {
        ours: bool,
    },
    Bind {
        ours: bool,
    },
    Close {
        ours: bool,
    },
    Describe,
    Execute(Exec),
    Query(Exec),
    /// A simple query already reported (it failed); only its ReadyForQuery is still to come.
    QueryDone,
    Sync,
}

/// A finished execution and how long it took.
#[derive(Debug)]
pub struct Completed {
    pub exec: Exec,
    pub duration: Duration,
}

/// What to do with a response frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    /// The response answers a message the gateway injected; the client must not see it.
    Hide,
    /// Send this instead (a refusal's error, cleaned of the gateway's own PL/pgSQL context).
    Replace(BytesMut),
}

#[derive(Default)]
pub struct Tracker {
    statements: HashMap<String, Arc<StmtInfo>>,
    portals: HashMap<String, Arc<StmtInfo>>,
    pending: VecDeque<Expect>,
    group_error: Option<(String, String)>,
    pub completed: Vec<Completed>,
}

/// Reads a NUL-terminated string at `*pos`, advancing past it.
fn cstr<'a>(b: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let rest = b.get(*pos..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    *pos += end + 1;
    std::str::from_utf8(&rest[..end]).ok()
}

const UNKNOWN: &str = "<unknown prepared statement>";

impl Tracker {
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    // ----- client side -----

    /// A simple Query frame; returns the statement to decide on.
    pub fn query_info(frame: &[u8]) -> Arc<StmtInfo> {
        let mut pos = 5;
        StmtInfo::new(cstr(frame, &mut pos).unwrap_or(""))
    }

    pub fn expect_query(&mut self, exec: Exec) {
        self.pending.push_back(Expect::Query(exec));
    }

    pub fn on_parse(&mut self, frame: &[u8]) {
        let mut pos = 5;
        let name = cstr(frame, &mut pos).unwrap_or("").to_string();
        let sql = cstr(frame, &mut pos).unwrap_or("");
        self.statements.insert(name, StmtInfo::new(sql));
        self.pending.push_back(Expect::Parse { ours: false });
    }

    pub fn on_bind(&mut self, frame: &[u8]) {
        let mut pos = 5;
        let portal = cstr(frame, &mut pos).unwrap_or("").to_string();
        let stmt = cstr(frame, &mut pos).unwrap_or("");
        let info = self
            .statements
            .get(stmt)
            .cloned()
            .unwrap_or_else(|| StmtInfo::new(UNKNOWN));
        self.portals.insert(portal, info);
        self.pending.push_back(Expect::Bind { ours: false });
    }

    pub fn on_describe(&mut self) {
        self.pending.push_back(Expect::Describe);
    }

    pub fn on_close(&mut self, frame: &[u8]) {
        let mut pos = 6;
        let name = cstr(frame, &mut pos).unwrap_or("");
        match frame.get(5) {
            Some(b'S') => self.statements.remove(name),
            _ => self.portals.remove(name),
        };
        self.pending.push_back(Expect::Close { ours: false });
    }

    /// The statement an Execute frame runs.
    pub fn execute_info(&self, frame: &[u8]) -> Arc<StmtInfo> {
        let mut pos = 5;
        let portal = cstr(frame, &mut pos).unwrap_or("");
        self.portals
            .get(portal)
            .cloned()
            .unwrap_or_else(|| StmtInfo::new(UNKNOWN))
    }

    pub fn expect_execute(&mut self, exec: Exec) {
        self.pending.push_back(Expect::Execute(exec));
    }

    pub fn on_sync(&mut self) {
        self.pending.push_back(Expect::Sync);
    }

    /// Records that the gateway sent its own Close+Parse+Bind+Execute for a refused Execute.
    pub fn expect_refusal_execute(&mut self, exec: Exec) {
        self.pending.push_back(Expect::Close { ours: true });
        self.pending.push_back(Expect::Parse { ours: true });
        self.pending.push_back(Expect::Bind { ours: true });
        self.pending.push_back(Expect::Execute(exec));
    }

    // ----- upstream side -----

    fn finish(&mut self, mut exec: Exec) {
        if exec.error.is_none() {
            exec.error = self.group_error.clone();
        }
        let duration = exec.started.elapsed();
        self.completed.push(Completed { exec, duration });
    }

    fn front_exec(&mut self) -> Option<&mut Exec> {
        match self.pending.front_mut() {
            Some(Expect::Execute(e)) | Some(Expect::Query(e)) => Some(e),
            _ => None,
        }
    }

    /// Tags whose whole frame the tracker needs to see.
    pub fn backend_wants_whole(tag: u8) -> bool {
        matches!(tag, b'Z' | b'C' | b'E')
    }

    /// Handles one upstream frame (`frame` is given for the tags in [`Self::backend_wants_whole`]).
    pub fn on_backend(&mut self, tag: u8, frame: Option<&[u8]>) -> Verdict {
        match tag {
            b'1' => self.pop_simple(|e| matches!(e, Expect::Parse { .. })),
            b'2' => self.pop_simple(|e| matches!(e, Expect::Bind { .. })),
            b'3' => self.pop_simple(|e| matches!(e, Expect::Close { .. })),
            b'T' | b'n' => {
                if matches!(self.pending.front(), Some(Expect::Describe)) {
                    self.pending.pop_front();
                }
                Verdict::Forward
            }
            b'D' => {
                if let Some(e) = self.front_exec() {
                    e.rows = Some(e.rows.unwrap_or(0) + 1);
                }
                Verdict::Forward
            }
            b'C' | b'I' | b's' => {
                let tag_rows = frame.and_then(|f| {
                    let mut pos = 5;
                    cstr(f, &mut pos).and_then(rows_from_tag)
                });
                match self.pending.front_mut() {
                    Some(Expect::Query(e)) => {
                        if let Some(n) = tag_rows {
                            e.rows = Some(n);
                        }
                    }
                    Some(Expect::Execute(_)) => {
                        if let Some(Expect::Execute(mut e)) = self.pending.pop_front() {
                            if let Some(n) = tag_rows {
                                e.rows = Some(n);
                            }
                            self.finish(e);
                        }
                    }
                    _ => {}
                }
                Verdict::Forward
            }
            b'E' => self.on_error(frame.unwrap_or(&[])),
            b'Z' => {
                while let Some(e) = self.pending.pop_front() {
                    match e {
                        Expect::Sync | Expect::QueryDone => break,
                        Expect::Query(exec) => {
                            self.finish(exec);
                            break;
                        }
                        Expect::Execute(exec) => self.finish(exec),
                        _ => {}
                    }
                }
                self.group_error = None;
                Verdict::Forward
            }
            _ => Verdict::Forward,
        }
    }

    fn pop_simple(&mut self, is: impl Fn(&Expect) -> bool) -> Verdict {
        match self.pending.front() {
            Some(e) if is(e) => {
                let ours = matches!(
                    e,
                    Expect::Parse { ours: true }
                        | Expect::Bind { ours: true }
                        | Expect::Close { ours: true }
                );
                self.pending.pop_front();
                if ours {
                    Verdict::Hide
                } else {
                    Verdict::Forward
                }
            }
            _ => Verdict::Forward,
        }
    }

    fn on_error(&mut self, frame: &[u8]) -> Verdict {
        let fields = error_fields(frame);
        let code = fields
            .iter()
            .find(|(k, _)| *k == b'C')
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let message = fields
            .iter()
            .find(|(k, _)| *k == b'M')
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let mut refused = false;
        match self.pending.front_mut() {
            // A simple query's error; its ReadyForQuery completes it.
            // A simple query stops at its first error: report it now, before the client (which
            // may send its next statement on seeing the error) can get ahead of the record.
            Some(Expect::Query(e)) => {
                refused = e.gate.refused;
                e.error.get_or_insert((code, message));
                if let Some(Expect::Query(exec)) = self
                    .pending
                    .front_mut()
                    .map(|f| std::mem::replace(f, Expect::QueryDone))
                {
                    self.finish(exec);
                }
            }
            Some(Expect::Sync) | Some(Expect::QueryDone) | None => {}
            // Extended protocol: the upstream now skips everything up to Sync.
            Some(_) => {
                self.group_error = Some((code.clone(), message.clone()));
                let mut first = true;
                while let Some(front) = self.pending.front() {
                    if matches!(front, Expect::Sync | Expect::Query(_) | Expect::QueryDone) {
                        break;
                    }
                    if let Some(Expect::Execute(mut e)) = self.pending.pop_front() {
                        refused |= first && e.gate.refused;
                        if first {
                            e.error = Some((code.clone(), message.clone()));
                        }
                        first = false;
                        self.finish(e);
                    }
                }
            }
        }
        if refused {
            // The refusal ran as the gateway's own DO block; its PL/pgSQL context is noise.
            let mut out = BytesMut::with_capacity(frame.len());
            out.put_u8(b'E');
            out.put_u32(0);
            for (k, v) in fields
                .iter()
                .filter(|(k, _)| !matches!(k, b'W' | b'F' | b'L' | b'R'))
            {
                out.put_u8(*k);
                out.put_slice(v.as_bytes());
                out.put_u8(0);
            }
            out.put_u8(0);
            let len = (out.len() - 1) as u32;
            out[1..5].copy_from_slice(&len.to_be_bytes());
            return Verdict::Replace(out);
        }
        Verdict::Forward
    }
}

/// The (code, value) fields of an ErrorResponse/NoticeResponse frame.
pub fn error_fields(frame: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut pos = 5;
    while let Some(&k) = frame.get(pos) {
        if k == 0 {
            break;
        }
        pos += 1;
        match cstr(frame, &mut pos) {
            Some(v) => out.push((k, v.to_string())),
            None => break,
        }
    }
    out
}

/// The frames that make the upstream raise `code`/`message` as an error of its own, so the
/// client gets a real ErrorResponse and the transaction state stays in step with the upstream.
pub mod refusal {
    use bytes::{BufMut, BytesMut};

    pub const NAME: &str = "gatehouse_refusal";

    fn sql(code: &str, message: &str, hint: &str) -> String {
        let q = |s: &str| s.replace('\'', "''").replace("$gh$", "$ gh $");
        format!(
            "DO $gh$BEGIN RAISE EXCEPTION USING ERRCODE = '{}', MESSAGE = '{}', HINT = '{}'; END$gh$",
            q(code),
            q(message),
            q(hint)
        )
    }

    fn msg(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
        let start = out.len();
        out.put_u8(tag);
        out.put_u32(0);
        body(out);
        let len = (out.len() - start - 1) as u32;
        out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    }

    fn cstring(out: &mut BytesMut, s: &str) {
        out.put_slice(s.as_bytes());
        out.put_u8(0);
    }

    /// A simple Query that fails with the refusal.
    pub fn query(code: &str, message: &str, hint: &str) -> BytesMut {
        let mut out = BytesMut::new();
        msg(&mut out, b'Q', |o| cstring(o, &sql(code, message, hint)));
        out
    }

    /// Close + Parse + Bind + Execute of a statement that fails with the refusal; the named
    /// statement keeps the client's unnamed one intact.
    pub fn execute(code: &str, message: &str, hint: &str) -> BytesMut {
        let mut out = BytesMut::new();
        msg(&mut out, b'C', |o| {
            o.put_u8(b'S');
            cstring(o, NAME);
        });
        msg(&mut out, b'P', |o| {
            cstring(o, NAME);
            cstring(o, &sql(code, message, hint));
            o.put_u16(0);
        });
        msg(&mut out, b'B', |o| {
            cstring(o, NAME);
            cstring(o, NAME);
            o.put_u16(0);
            o.put_u16(0);
            o.put_u16(0);
        });
        msg(&mut out, b'E', |o| {
            cstring(o, NAME);
            o.put_u32(0);
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn complete(t: &mut Tracker, tag: &str) {
        let mut b = tag.as_bytes().to_vec();
        b.push(0);
        let f = frame(b'C', &b);
        assert_eq!(t.on_backend(b'C', Some(&f)), Verdict::Forward);
    }

    #[test]
    fn extended_pipeline_with_an_error_skips_to_sync() {
        let mut t = Tracker::default();
        t.on_parse(&frame(b'P', b"s1\0INSERT INTO t VALUES ($1)\0\0\0"));
        t.on_bind(&frame(b'B', b"\0s1\0\0\0\0\0\0\0"));
        let info = t.execute_info(&frame(b'E', b"\0\0\0\0\0"));
        assert!(info.may_write && info.sql.starts_with("INSERT"));
        t.expect_execute(Exec::new(info));
        t.on_sync();
        t.on_bind(&frame(b'B', b"\0s1\0\0\0\0\0\0\0"));
        let info = t.execute_info(&frame(b'E', b"\0\0\0\0\0"));
        t.expect_execute(Exec::new(info));
        t.on_sync();

        assert_eq!(t.on_backend(b'1', None), Verdict::Forward);
        assert_eq!(t.on_backend(b'2', None), Verdict::Forward);
        complete(&mut t, "INSERT 0 1");
        assert_eq!(
            t.on_backend(b'Z', Some(&frame(b'Z', b"I"))),
            Verdict::Forward
        );
        assert_eq!(t.completed.len(), 1);
        assert_eq!(t.completed[0].exec.rows, Some(1));
        // Second round: Bind fails; the Execute never runs and is reported with the error.
        let err = frame(b'E', b"SERROR\0C23505\0Mduplicate key\0\0");
        assert_eq!(t.on_backend(b'E', Some(&err)), Verdict::Forward);
        t.on_backend(b'Z', Some(&frame(b'Z', b"I")));
        assert_eq!(t.completed.len(), 2);
        assert_eq!(
            t.completed[1].exec.error.as_ref().map(|e| e.0.as_str()),
            Some("23505")
        );
        assert!(!t.has_pending());
    }

    #[test]
    fn refusal_responses_are_hidden_and_its_error_cleaned() {
        let mut t = Tracker::default();
        t.on_parse(&frame(b'P', b"\0DROP TABLE t\0\0\0"));
        t.on_bind(&frame(b'B', b"\0\0\0\0\0\0\0\0"));
        let mut exec = Exec::new(t.execute_info(&frame(b'E', b"\0\0\0\0\0")));
        exec.gate = Gate {
            refused: true,
            decision: "deny",
            ..Gate::default()
        };
        t.expect_refusal_execute(exec);
        t.on_sync();
        assert_eq!(
            t.on_backend(b'1', None),
            Verdict::Forward,
            "the client's own Parse"
        );
        assert_eq!(
            t.on_backend(b'2', None),
            Verdict::Forward,
            "the client's own Bind"
        );
        assert_eq!(t.on_backend(b'3', None), Verdict::Hide);
        assert_eq!(t.on_backend(b'1', None), Verdict::Hide);
        assert_eq!(t.on_backend(b'2', None), Verdict::Hide);
        let err = frame(
            b'E',
            b"SERROR\0C42501\0Mdenied\0WPL/pgSQL function inline_code_block\0\0",
        );
        match t.on_backend(b'E', Some(&err)) {
            Verdict::Replace(f) => {
                let fields = error_fields(&f);
                assert_eq!(
                    fields,
                    vec![
                        (b'S', "ERROR".into()),
                        (b'C', "42501".into()),
                        (b'M', "denied".into())
                    ]
                );
            }
            v => panic!("{v:?}"),
        }
        t.on_backend(b'Z', Some(&frame(b'Z', b"I")));
        assert!(t.completed[0].exec.gate.refused);
        assert!(!t.has_pending());
    }

    #[test]
    fn simple_query_rows_and_errors() {
        let mut t = Tracker::default();
        let info = Tracker::query_info(&frame(b'Q', b"SELECT 1; SELECT 2\0"));
        assert!(!info.may_write);
        t.expect_query(Exec::new(info));
        t.on_backend(b'T', None);
        t.on_backend(b'D', None);
        complete(&mut t, "SELECT 1");
        t.on_backend(b'Z', Some(&frame(b'Z', b"I")));
        assert_eq!(t.completed[0].exec.rows, Some(1));
        assert!(refusal::query("42501", "it's denied", "ask").len() > 20);
    }
}
