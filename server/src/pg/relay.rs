//! The steady state of a session: bytes flow both ways between client and upstream, read
//! concurrently, forwarded as the same bytes they arrived in. Frames are inspected only where a
//! statement starts or ends (Query, Parse, Bind, Execute, Close; CommandComplete, ErrorResponse,
//! ReadyForQuery); rows and COPY data stream through without being buffered whole.
//!
//! Masking rewrites what comes back: the tracker plans each result set, and only rows of a
//! result whose plan touches a column are read whole and re-encoded; others stream as bytes.
//!
//! Before a statement is forwarded the audit must be able to record it (fail closed), and a
//! statement that may change data waits until its record is durable. A refused statement is
//! replaced by one that makes the upstream raise the refusal, so transaction state stays true.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::codec::{FrameError, FrameScanner};
use super::connections::Termination;
use super::error::{PgError, SqlState};
use super::gate::{self, Observer};
use super::notices::Notices;
use super::statement::{self, Point};
use super::stop::Stop;
use super::stream::{PgStream, WriteSide};
use super::tracker::{SessionMasking, StmtInfo, Tracker, Verdict};
use crate::audit::{Pending, StatementEvent};
use crate::sql::Word;

const READ_CHUNK: usize = 32 * 1024;
/// PostgreSQL's own ceiling for a single backend message.
const UPSTREAM_MESSAGE_LIMIT: usize = 1 << 30;

/// Relay settings from the config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_client_message: usize,
    pub idle_timeout: Option<Duration>,
}

/// Why the relay stopped.
#[derive(Debug)]
pub enum RelayEnd {
    /// The client sent Terminate or closed its socket.
    ClientClosed,
    /// The upstream closed; `reported` when it sent an ErrorResponse just before (e.g. FATAL on
    /// admin shutdown), so the client already knows why.
    UpstreamClosed {
        reported: bool,
    },
    ClientProtocol(FrameError),
    Idle(Duration),
    ClientIo(std::io::Error),
    UpstreamIo(std::io::Error),
    /// Ended from outside: an administrator, or the session behind the token was revoked.
    Terminated(Termination),
    /// Ended by the gateway: the session came to a state it cannot check statements in
    /// (e.g. a client encoding it cannot read).
    Refused(PgError),
}

impl RelayEnd {
    /// A short reason for logs and the audit.
    pub fn summary(&self) -> String {
        match self {
            RelayEnd::ClientClosed => "client closed".into(),
            RelayEnd::UpstreamClosed { .. } => "upstream closed".into(),
            RelayEnd::ClientProtocol(e) => format!("client protocol error: {e}"),
            RelayEnd::Idle(d) => format!("idle for {}s", d.as_secs()),
            RelayEnd::ClientIo(e) => format!("client i/o error: {e}"),
            RelayEnd::UpstreamIo(e) => format!("upstream i/o error: {e}"),
            RelayEnd::Terminated(t) => format!("terminated: {}", t.message),
            RelayEnd::Refused(e) => format!("refused: {}", e.message),
        }
    }

    /// The error to send the client, if it is still there to read one.
    pub fn client_error(&self, env: &str) -> Option<PgError> {
        match self {
            RelayEnd::ClientClosed
            | RelayEnd::ClientIo(_)
            | RelayEnd::UpstreamClosed { reported: true } => None,
            RelayEnd::UpstreamClosed { reported: false } | RelayEnd::UpstreamIo(_) => Some(
                PgError::fatal(
                    SqlState::ConnectionFailure,
                    format!("lost the connection to the database of environment \"{env}\""),
                )
                .with_hint("The upstream closed or failed; reconnect to open a new session."),
            ),
            RelayEnd::ClientProtocol(FrameError::TooLarge { size, limit, .. }) => Some(
                PgError::fatal(
                    SqlState::ProgramLimitExceeded,
                    format!("message of {size} bytes exceeds the gateway's limit of {limit} bytes"),
                )
                .with_hint(
                    "Send smaller statements or parameters, or raise server.max_message_bytes.",
                ),
            ),
            RelayEnd::ClientProtocol(e) => Some(PgError::fatal(
                SqlState::ProtocolViolation,
                format!("invalid frontend message: {e}"),
            )),
            RelayEnd::Terminated(t) => Some(PgError::fatal(t.code, t.message.clone())),
            RelayEnd::Refused(e) => Some(e.clone()),
            RelayEnd::Idle(d) => Some(PgError::fatal(
                SqlState::IdleSessionTimeout,
                format!("terminating connection after {} seconds idle", d.as_secs()),
            )),
        }
    }
}

/// What both directions share: enough to tell idleness and the transaction state.
struct Activity {
    /// The client sent something since the idle watch last looked. A flag, not a time: reading
    /// the clock at every read from the client cost more than the idle watch needs, which
    /// looks a few times per timeout anyway.
    client_seen: AtomicBool,
    /// Requests (Query, Sync, FunctionCall) sent upstream whose ReadyForQuery has not come back.
    in_flight: AtomicI64,
    tx_status: AtomicU8,
}

impl Activity {
    fn touch(&self) {
        self.client_seen.store(true, Ordering::Relaxed);
    }
}

/// Traffic counters, for logs and the audit.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub client_bytes: u64,
    pub upstream_bytes: u64,
    pub statements: u64,
}

/// The session as the upstream's startup left it.
pub struct Start {
    /// Transaction status from the upstream's first ReadyForQuery.
    pub status: u8,
    pub encoding: super::encoding::ClientEncoding,
    /// `standard_conforming_strings` as the upstream reported it.
    pub strings: Option<crate::policy::Strings>,
    /// The client's startup options set `search_path`.
    pub search_path_changed: bool,
    /// The upstream backend's process id (what notifications it sends carry).
    pub upstream_pid: i32,
}

/// Relays until one side ends. Returns why, the client's write half (to report a final error)
/// and whether the client stream is at a message boundary (so such an error may be sent).
pub async fn run(
    client: PgStream,
    upstream: PgStream,
    limits: Limits,
    start: Start,
    stop: Arc<Stop>,
    observer: &Observer,
) -> (RelayEnd, WriteSide, bool, Traffic) {
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let activity = Activity {
        client_seen: AtomicBool::new(false),
        in_flight: AtomicI64::new(0),
        tx_status: AtomicU8::new(start.status),
    };
    let mut t = Tracker::default();
    t.encoding = start.encoding;
    t.strings = start.strings;
    t.search_path_changed = start.search_path_changed;
    t.replay_rows = observer.env.replay_rows;
    t.masking = session_masking(observer, start.upstream_pid).await;
    let tracker = Mutex::new(t);
    let mut down_scanner = FrameScanner::default();
    let mut traffic = Traffic::default();
    let mut statements = 0u64;
    let statement_metrics = StatementMetrics::new();
    // Messages of the gateway's own for the client (a hold NOTICE), sent between frames.
    let notices = Notices::default();
    let end = {
        let up = client_to_upstream(
            &mut cr,
            &mut uw,
            &activity,
            limits.max_client_message,
            &mut traffic.client_bytes,
            &tracker,
            observer,
            &notices,
            &stop,
        );
        let down = upstream_to_client(
            &mut ur,
            &mut cw,
            &activity,
            &mut down_scanner,
            &mut traffic.upstream_bytes,
            &tracker,
            observer,
            &mut statements,
            &statement_metrics,
            &notices,
        );
        tokio::select! {
            e = up => e,
            e = down => e,
            e = idle_watch(&activity, limits.idle_timeout) => e,
            t = stop.stopped() => RelayEnd::Terminated(t),
        }
    };
    traffic.statements = statements;
    // Statements that were under way when the connection ended are recorded too, and so are
    // finished ones whose records were still waiting for room in the audit queue.
    lock(&tracker).finish_suspended();
    record_finished(observer, &statement_metrics, &tracker).await;
    // Leave the upstream cleanly when we can; it frees the backend at once.
    let _ = uw.shutdown().await;
    (end, cw, down_scanner.at_boundary(), traffic)
}

fn lock(t: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Client tags whose whole frame the statement path reads.
fn client_wants_whole(tag: u8) -> bool {
    matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'C' | b'D' | b'F')
}

/// Masking for this session (None when `[masking] enabled = false`): the catalog read or
/// reused, and the identity's exemptions in this environment.
async fn session_masking(
    observer: &Observer,
    upstream_pid: i32,
) -> Option<std::sync::Arc<SessionMasking>> {
    if !observer.gw.config.masking.enabled {
        return None;
    }
    let database = observer.meta.database.clone();
    super::catalog::ensure(&observer.gw, &observer.env, &database, false).await;
    Some(std::sync::Arc::new(SessionMasking::new(
        observer.gw.clone(),
        observer.env.name.clone(),
        database,
        observer.identity.groups.clone(),
        upstream_pid,
    )))
}

/// A COPY … TO STDOUT in binary format of columns that need masking: refused before it runs,
/// since binary COPY rows cannot be rewritten value by value.
fn binary_copy_refusal(tracker: &Mutex<Tracker>, info: &StmtInfo) -> Option<gate::Refusal> {
    if !info.kinds.iter().any(|k| k == "COPY") {
        return None;
    }
    let m = lock(tracker).masking.clone()?;
    if super::catalog::copy_reads_unknown_relation(&m, info) {
        return Some(PgError::refusal(
            SqlState::InsufficientPrivilege,
            "COPY of a relation the masking catalog does not know (a temporary table, or one changed a moment ago) is refused: its columns' types and tags are unknown",
            "Read it with SELECT (masked by its result's types), or retry the COPY in a moment.",
        ));
    }
    let lineage = m.gw.masking.lineage_of(info);
    let catalog = m.catalog();
    let ex = m.exempt();
    for st in &lineage.statements {
        let Some(copy) = &st.copy else { continue };
        if copy.format != crate::masking::lineage::CopyFormat::Binary {
            continue;
        }
        let planner = crate::masking::plan::Planner {
            catalog: &catalog,
            lineage: Some(st),
            exempt: &ex.categories,
            exempt_columns: &ex.columns,
        };
        let n = st.outputs.as_ref().map(|o| o.len()).unwrap_or(0);
        // Wildcards expand to the table's columns; columns the lineage cannot line up are of
        // unknown origin, which binary cannot mask: refused. Text columns are masked in binary.
        let plan = planner.plan_copy_as(
            planner.expanded_len().unwrap_or(n.max(1)),
            crate::masking::lineage::CopyFormat::Binary,
        );
        if plan.binary_copy_refused() {
            return Some(PgError::refusal(
                SqlState::InsufficientPrivilege,
                "COPY in binary format is refused: a column may hold personal data that the gateway cannot mask in binary (a date, a number, a value of unknown origin)",
                "Use COPY … TO STDOUT in text or CSV format; masked columns are rewritten there.",
            ));
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
async fn client_to_upstream<R, W>(
    client: &mut R,
    upstream: &mut W,
    activity: &Activity,
    limit: usize,
    bytes: &mut u64,
    tracker: &Mutex<Tracker>,
    observer: &Observer,
    notices: &Notices,
    stop: &Stop,
) -> RelayEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut scanner = FrameScanner::default();
    // (offset, length, tag, whole) of each frame header seen in the current chunk.
    let mut frames: Vec<(usize, usize, u8, bool)> = Vec::with_capacity(16);
    // The chunk as sent upstream when a frame was replaced (a refused statement, a client's
    // own `SET application_name`).
    let mut rewritten = BytesMut::new();
    let app_prefix = super::app_name::prefix(&observer.meta.identity);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match client.read_buf(&mut buf).await {
            Ok(0) => return RelayEnd::ClientClosed,
            Ok(n) => *bytes += n as u64,
            Err(e) => return RelayEnd::ClientIo(e),
        }
        activity.touch();
        // A connection ended from outside (revoked token, access taken away) forwards nothing
        // it reads after that, even when its stop and the client's bytes arrive together.
        if let Some(t) = stop.reason() {
            return RelayEnd::Terminated(t.clone());
        }
        frames.clear();
        let ready = scanner.scan(&buf, limit, client_wants_whole, |f| {
            frames.push((f.offset, f.total, f.tag, f.bytes.is_some()));
            Ok::<(), FrameError>(())
        });
        let ready = match ready {
            Ok(n) => n,
            Err(e) => return RelayEnd::ClientProtocol(e),
        };
        let mut written = 0;
        let mut terminate = false;
        for &(offset, total, tag, whole) in &frames {
            let frame = if whole {
                &buf[offset..offset + total]
            } else {
                &[][..]
            };
            // Phase 1, decode (see `statement`).
            let decision_point = match tag {
                b'Q' => {
                    activity.in_flight.fetch_add(1, Ordering::Relaxed);
                    Some(statement::query(&mut lock(tracker), frame))
                }
                b'B' => Some(statement::bind(&mut lock(tracker), frame)),
                b'E' => Some(statement::execute(&lock(tracker), frame, |info| {
                    observer
                        .gw
                        .audit
                        .refuses(info.may_write)
                        .map(|f| gate::audit_refusal(&f))
                })),
                b'P' => {
                    let parsed = lock(tracker).on_parse(frame);
                    if parsed.mentions(Word::ApplicationName) {
                        if let Some(own) = super::app_name::rewrite_frame(tag, frame, &app_prefix) {
                            written =
                                replace_frame(&mut rewritten, &buf, written, offset, total, &own);
                        }
                    }
                    None
                }
                b'D' => {
                    lock(tracker).on_describe(frame);
                    None
                }
                b'C' => {
                    lock(tracker).on_close(frame);
                    None
                }
                b'S' => {
                    activity.in_flight.fetch_add(1, Ordering::Relaxed);
                    lock(tracker).on_sync();
                    None
                }
                b'F' => {
                    activity.in_flight.fetch_add(1, Ordering::Relaxed);
                    Some(statement::function_call(frame))
                }
                b'X' => {
                    terminate = true;
                    None
                }
                // Flush, and COPY data from the client (the COPY itself was decided).
                b'H' | b'd' | b'c' | b'f' => None,
                // Nothing else may follow the startup; PostgreSQL itself ends the session
                // on any other type, so does the gateway, before forwarding it.
                other => return RelayEnd::ClientProtocol(FrameError::UnknownType(other)),
            };
            let Some(statement::Decoded { info, point, early }) = decision_point else {
                continue;
            };
            // A statement reading a relation the masking catalog does not know: read it first
            // (an Execute's statement was looked at by its Bind).
            let masking = match point {
                Point::Execute(_) => None,
                _ => lock(tracker).masking.clone(),
            };
            // Kept per statement while the session's catalog is the one it was checked in.
            if let Some(m) = masking {
                let checked = lock(tracker).verdicts.read_checked(&info, &m.catalog());
                if !checked {
                    if let Some(catalog) = super::catalog::before_reading(&m, &info).await {
                        lock(tracker).verdicts.keep_read_checked(&info, catalog);
                    }
                }
            }
            let early = early.or_else(|| match point {
                Point::Execute(_) => None,
                _ => binary_copy_refusal(tracker, &info).map(|r| (r, "masking:binary-copy")),
            });
            // Phases 2 and 3: read, then classify, decide and approve (the gate).
            let admission = match (early, &point) {
                (Some((refusal, rule)), _) => gate::Admission {
                    gate: super::tracker::Gate {
                        decision: "deny",
                        rule: Some(rule.into()),
                        approval_id: None,
                        refused: true,
                    },
                    refusal: Some(refusal),
                    sets_search_path: false,
                    decided: None,
                },
                // Decided at its Bind.
                (None, Point::Execute(target)) => gate::Admission {
                    gate: target
                        .portal
                        .as_ref()
                        .map(|p| p.gate.clone())
                        .unwrap_or_default(),
                    refusal: None,
                    sets_search_path: false,
                    decided: None,
                },
                (None, _) => {
                    // The rules' generation is read before the policy is asked, so a
                    // decision kept under it is one the rules in force then made.
                    let (reading, key, kept) = {
                        let t = lock(tracker);
                        let reading = statement::reading(&t, &point);
                        let key = observer.gw.policy.kept_decisions().map(|rules| {
                            super::verdicts::DecisionKey {
                                rules,
                                search_path_changed: reading.search_path_changed,
                                strings: reading.strings,
                            }
                        });
                        let kept = key.and_then(|k| t.verdicts.decision(&info, k));
                        (reading, key, kept)
                    };
                    // Kept already: keeping it again would cost the lookups it saved.
                    let keep = key.filter(|_| kept.is_none());
                    let admission = gate::admit(observer, &info, reading, notices, kept).await;
                    let mut t = lock(tracker);
                    if admission.sets_search_path {
                        t.search_path_changed = true;
                    }
                    if let (Some(key), Some(d)) = (keep, &admission.decided) {
                        t.verdicts.keep_decision(&info, key, d.clone());
                    }
                    admission
                }
            };
            // Phase 4, forward: a refusal's own statement, or the client's bytes (with its
            // `SET application_name` kept behind the identity).
            let out = match &admission.refusal {
                Some(r) => Some(statement::replacement(
                    r,
                    lock(tracker).encoding,
                    point.extended(),
                )),
                None if !point.extended() && info.mentions(Word::ApplicationName) => {
                    super::app_name::rewrite_frame(tag, frame, &app_prefix)
                }
                None => None,
            };
            if let (Some(slot), Some(r)) = (
                &observer.refusals,
                statement::refused_as_data(&admission.gate, admission.refusal.as_ref()),
            ) {
                slot.post(r);
            }
            // Phase 5, track: what the server answers drives result, masking and record.
            statement::track(&mut lock(tracker), point, info, admission.gate);
            if let Some(replacement) = out {
                written = replace_frame(&mut rewritten, &buf, written, offset, total, &replacement);
            }
        }
        // The whole chunk goes upstream in one write, after every statement in it was decided:
        // a write per frame group wakes the backend once per group (Bind, then Execute, then
        // Sync), which on a busy host costs more than everything else the gateway does.
        let sent = if ready == 0 {
            Ok(())
        } else if rewritten.is_empty() {
            write_flush(upstream, &buf[..ready]).await
        } else {
            rewritten.extend_from_slice(&buf[written..ready]);
            let r = write_flush(upstream, &rewritten).await;
            rewritten.clear();
            r
        };
        if let Err(e) = sent {
            return RelayEnd::UpstreamIo(e);
        }
        buf.advance(ready);
        if terminate {
            return RelayEnd::ClientClosed;
        }
    }
}

/// The metrics every statement updates, resolved once per session: a lookup in the registry
/// per statement (a hash of the name and labels, a lock) cost more than the update itself.
struct StatementMetrics {
    allow: metrics::Counter,
    deny: metrics::Counter,
    review: metrics::Counter,
    refused: metrics::Counter,
    duration: metrics::Histogram,
}

impl StatementMetrics {
    fn new() -> Self {
        StatementMetrics {
            allow: metrics::counter!("gatehouse_statements_total", "decision" => "allow"),
            deny: metrics::counter!("gatehouse_statements_total", "decision" => "deny"),
            review: metrics::counter!("gatehouse_statements_total", "decision" => "review"),
            refused: metrics::counter!("gatehouse_statements_total", "decision" => "refused"),
            duration: metrics::histogram!("gatehouse_statement_duration_seconds"),
        }
    }

    fn count(&self, decision: &'static str) {
        match decision {
            "allow" => self.allow.increment(1),
            "deny" => self.deny.increment(1),
            "review" => self.review.increment(1),
            "refused" => self.refused.increment(1),
            other => {
                metrics::counter!("gatehouse_statements_total", "decision" => other).increment(1)
            }
        }
    }
}

/// Records the executions the tracker finished, oldest first; returns how many. Each leaves
/// the tracker only once the audit queue has room for it: a relay that ends while the queue is
/// full (a slow disk, and the client closes) leaves the rest in the tracker, where `run`'s last
/// pass records them, instead of losing the one it was waiting with.
async fn record_finished(
    observer: &Observer,
    metrics: &StatementMetrics,
    tracker: &Mutex<Tracker>,
) -> u64 {
    let mut recorded = 0;
    while !lock(tracker).completed.is_empty() {
        let Some(slot) = observer.gw.audit.slot().await else {
            // The writer has stopped (logged by `slot`); nothing will take these.
            lock(tracker).completed.clear();
            break;
        };
        let Some(c) = lock(tracker).completed.pop_front() else {
            break;
        };
        slot.put(Pending::Statement(Box::new(statement_event(
            observer, metrics, c,
        ))));
        recorded += 1;
    }
    recorded
}

/// The audit record of a finished execution (and its metrics).
fn statement_event(
    observer: &Observer,
    metrics: &StatementMetrics,
    c: super::tracker::Completed,
) -> StatementEvent {
    let (sqlstate, error) = match c.exec.error {
        // Upstream messages can quote values (`invalid input syntax …: "ana@…"`); the audit
        // keeps them masked like the client saw them.
        Some((code, message)) => {
            let message = crate::masking::rewrite::error_text(
                &observer.gw.masking.masker,
                &message,
                &Default::default(),
            )
            .unwrap_or(message);
            (Some(code), Some(message))
        }
        None => (None, None),
    };
    let g = c.exec.gate;
    let (decision, rule, approval_id) = (g.decision, g.rule, g.approval_id);
    metrics.count(decision);
    metrics.duration.record(c.duration.as_secs_f64());
    StatementEvent {
        meta: observer.meta.clone(),
        stmt: c.exec.info,
        event: "statement",
        at: c.exec.at,
        duration: Some(c.duration),
        rows: c.exec.rows,
        sqlstate,
        error,
        decision,
        rule,
        approval_id,
        sample: c.exec.sample,
        detected: c.exec.detected,
    }
}

#[allow(clippy::too_many_arguments)]
async fn upstream_to_client<R, W>(
    upstream: &mut R,
    client: &mut W,
    activity: &Activity,
    scanner: &mut FrameScanner,
    bytes: &mut u64,
    tracker: &Mutex<Tracker>,
    observer: &Observer,
    statements: &mut u64,
    statement_metrics: &StatementMetrics,
    notices: &Notices,
) -> RelayEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut last_tag = 0u8;
    // Frames not forwarded as they came: (offset, length, replacement).
    let mut rewrites: Vec<(usize, usize, Option<BytesMut>)> = Vec::new();
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        // read_buf is cancel-safe: a notice that wins the race loses no upstream bytes.
        let read = tokio::select! {
            r = upstream.read_buf(&mut buf) => r,
            () = notices.queued(), if scanner.at_boundary() && buf.is_empty() => {
                for notice in notices.take() {
                    if let Err(e) = write_flush(client, &notice).await {
                        return RelayEnd::ClientIo(e);
                    }
                }
                continue;
            }
        };
        match read {
            Ok(0) => {
                return RelayEnd::UpstreamClosed {
                    reported: last_tag == b'E',
                }
            }
            Ok(n) => *bytes += n as u64,
            Err(e) => return RelayEnd::UpstreamIo(e),
        }
        rewrites.clear();
        let (ready, exempted) = {
            let mut t = lock(tracker);
            // Which tags masking wants whole changes frame by frame (a RowDescription turns
            // rows on); the scanner asks before each frame, after the previous one was handled.
            let masking_on = t.masking.is_some();
            let replay_on = t.replay_rows > 0;
            let wants_rows = std::cell::Cell::new(
                (masking_on && t.masking_wants_whole(b'D')) || (replay_on && t.samples_rows()),
            );
            let wants_copy = std::cell::Cell::new(masking_on && t.masking_wants_whole(b'd'));
            let ready = scanner.scan(
                &buf,
                UPSTREAM_MESSAGE_LIMIT,
                |tag| {
                    Tracker::backend_wants_whole(tag)
                        || (replay_on && (tag == b'T' || (tag == b'D' && wants_rows.get())))
                        || (masking_on
                            && match tag {
                                b'T' | b'N' | b'H' | b'V' | b'A' => true,
                                b'D' => wants_rows.get(),
                                b'd' => wants_copy.get(),
                                _ => false,
                            })
                },
                |f| {
                    last_tag = f.tag;
                    if let (b'Z', Some(frame)) = (f.tag, f.bytes) {
                        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
                        activity
                            .tx_status
                            .store(frame.get(5).copied().unwrap_or(b'I'), Ordering::Relaxed);
                    }
                    let sampled = replay_on
                        && matches!(f.tag, b'T' | b'D')
                        && (f.tag == b'T' || t.samples_rows());
                    match t.on_backend(f.tag, f.bytes) {
                        Verdict::Forward => {
                            if let (true, Some(frame)) = (sampled, f.bytes) {
                                t.sample(frame);
                            }
                        }
                        Verdict::Hide => rewrites.push((f.offset, f.total, None)),
                        Verdict::Replace(b) => {
                            // What the client sees, masked, is what replay keeps.
                            if sampled {
                                t.sample(&b);
                            }
                            rewrites.push((f.offset, f.total, Some(b)))
                        }
                    }
                    if masking_on || replay_on {
                        wants_rows.set(
                            (masking_on && t.masking_wants_whole(b'D'))
                                || (replay_on && t.samples_rows()),
                        );
                        wants_copy.set(masking_on && t.masking_wants_whole(b'd'));
                    }
                    Ok::<(), FrameError>(())
                },
            );
            if let Some(message) = t.refused_encoding.take() {
                // The server now reads client text in an encoding the gateway cannot: nothing
                // more may pass. What this read brought is not forwarded either.
                return RelayEnd::Refused(
                    PgError::fatal(SqlState::FeatureNotSupported, message)
                        .with_hint(super::encoding::EncodingRefused::HINT),
                );
            }
            (ready, std::mem::take(&mut t.exemption_uses))
        };
        for u in exempted {
            record_exemption_use(observer, u).await;
        }
        let ready = match ready {
            Ok(n) => n,
            Err(e) => return RelayEnd::UpstreamIo(std::io::Error::other(e)),
        };
        // Queue the records before the client sees the responses: its next statement (and that
        // statement's record) cannot then overtake them in the trail.
        *statements += record_finished(observer, statement_metrics, tracker).await;
        if rewrites.is_empty() {
            if ready > 0 {
                if let Err(e) = write_flush(client, &buf[..ready]).await {
                    return RelayEnd::ClientIo(e);
                }
            }
        } else {
            // Masked rows: the chunk is re-assembled once and written with one call, not one
            // write per frame (a masked result rewrites every row).
            out.clear();
            let mut written = 0;
            for (offset, total, replacement) in &rewrites {
                let with = replacement.as_deref().unwrap_or_default();
                written = replace_frame(&mut out, &buf, written, *offset, *total, with);
            }
            out.extend_from_slice(&buf[written..ready]);
            if let Err(e) = write_flush(client, &out).await {
                return RelayEnd::ClientIo(e);
            }
            if out.capacity() > 4 * READ_CHUNK {
                // One huge row must not pin its buffer for the rest of the session.
                out = BytesMut::with_capacity(READ_CHUNK);
            }
        }
        buf.advance(ready);
    }
}

/// Each result an exemption let through unmasked is audited.
async fn record_exemption_use(observer: &Observer, u: super::tracker::ExemptionUse) {
    metrics::counter!("gatehouse_masking_exemptions_used_total").increment(1);
    let mut r = observer.meta.record("masking.exemption_used");
    r.statement = Some(crate::sql::redact(&u.info.sql).into_owned());
    r.details = Some(serde_json::json!({
        "categories": u.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "columns": u.columns,
    }));
    observer
        .gw
        .audit
        .record(crate::audit::Pending::Record(Box::new(r)))
        .await;
}

/// Copies `buf[written..offset]` into `out`, then `with` in place of the `total` bytes of the
/// frame at `offset` (nothing: the frame is dropped); returns how far `buf` is now copied.
fn replace_frame(
    out: &mut BytesMut,
    buf: &[u8],
    written: usize,
    offset: usize,
    total: usize,
    with: &[u8],
) -> usize {
    out.extend_from_slice(&buf[written..offset]);
    out.extend_from_slice(with);
    offset + total
}

async fn write_flush<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> std::io::Result<()> {
    w.write_all(data).await?;
    w.flush().await
}

async fn idle_watch(activity: &Activity, timeout: Option<Duration>) -> RelayEnd {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    // Quiet since the last look that found the client had sent something: a session ends at
    // most two ticks (a quarter of its timeout) late, as when each look read the time of the
    // last message.
    let tick = (timeout / 8).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut quiet_since = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        if activity.client_seen.swap(false, Ordering::Relaxed) {
            quiet_since = Instant::now();
        } else if activity.in_flight.load(Ordering::Relaxed) <= 0
            && quiet_since.elapsed() >= timeout
        {
            return RelayEnd::Idle(timeout);
        }
    }
}
