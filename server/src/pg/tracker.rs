//! Follows the conversation statement by statement, so each execution can be audited (and, when
//! needed, refused) without parsing the traffic twice.
//!
//! Every client message that gets a response pushes an expectation; every response pops the one
//! it answers, in protocol order. That mirror is what lets the gateway replace a client's Execute
//! with a refusal of its own (whose extra ParseComplete/BindComplete/CloseComplete it then hides)
//! and still hand the client exactly the responses it expects.
//!
//! The same mirror carries masking: a Describe's RowDescription is kept with its statement or
//! portal, a Bind's result formats with its portal, and each result set (a simple query's
//! RowDescription, an Execute's first row, a CopyOutResponse) gets a plan from
//! `masking::plan`. Rows of a result whose plan touches nothing are not even looked at.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, BytesMut};

use super::encoding::{ClientEncoding, InvalidText};
use super::error::SqlState;
use super::names::{self, Name, Resolved};
use super::verdicts::PlanInputs;
pub use super::wire::error_fields;
use super::wire::{bind_result_formats, cstr_at, row_description};
use crate::audit::record::rows_from_tag;
use crate::gateway::Gateway;
use crate::masking::lineage::{CopyFormat, CopyOut, StatementLineage};
use crate::masking::plan::{type_kind, Field, Planner, ResultPlan, TypeKind};
use crate::masking::{messages, rewrite, Category};
use crate::policy::Strings;

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
    /// The portal an Execute runs (its result description and formats).
    pub portal: Option<Arc<Portal>>,
    /// The name of the portal an Execute runs: a suspended portal's next Execute continues it.
    pub portal_name: Option<Name>,
    /// The first rows as the client saw them, for session replay (`replay_rows`).
    pub sample: Option<ResultSample>,
    /// What value detection masked, by column name (no tag said the column was personal).
    pub detected: BTreeMap<String, BTreeSet<Category>>,
}

/// The first rows of a result as the client received them (after masking), kept with the
/// statement's audit record when the environment asks (`replay_rows`).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ResultSample {
    /// The first result's column names.
    pub columns: Vec<String>,
    /// Text values, each cut at [`SAMPLE_CELL_CHARS`]; a value that is not text (binary
    /// format) as `\x` and its first bytes in hex.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Longest value a replay sample keeps, in characters.
pub const SAMPLE_CELL_CHARS: usize = 200;

impl ResultSample {
    fn cell(v: &[u8], binary: bool) -> String {
        if binary {
            return format!("\\x{}", hex::encode(&v[..v.len().min(32)]));
        }
        match std::str::from_utf8(v) {
            Ok(s) if s.chars().count() > SAMPLE_CELL_CHARS => {
                let mut cut: String = s.chars().take(SAMPLE_CELL_CHARS).collect();
                cut.push('…');
                cut
            }
            Ok(s) => s.to_string(),
            Err(_) => format!("\\x{}", hex::encode(&v[..v.len().min(32)])),
        }
    }
}

/// A RowDescription, filled when the upstream answers a Describe.
pub type FieldsSlot = Arc<OnceLock<Arc<Vec<Field>>>>;

#[derive(Debug)]
struct Prepared {
    info: Arc<StmtInfo>,
    fields: FieldsSlot,
    /// Why its text cannot be read as the server will read it.
    unreadable: Option<Unreadable>,
}

/// Why the gateway cannot say what an Execute would run; such an execution is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Text not valid in the session's encoding.
    Text(InvalidText),
    /// A statement or portal name that means different things depending on how messages
    /// still unanswered end (see [`names`]).
    Ambiguous { portal: bool, name: String },
    /// A statement or portal name the gateway has no definition for (made with SQL `PREPARE`
    /// or `DECLARE`, or never made).
    Unknown { portal: bool, name: String },
    /// A message whose text does not end where the protocol says (no terminating NUL).
    Malformed,
    /// Text beyond ASCII sent while a statement that may change `client_encoding` is still
    /// unanswered: the server may read it in another encoding than the gateway would.
    EncodingInFlux,
}

impl Unreadable {
    /// The SQLSTATE, message and hint of the refusal.
    pub fn refusal(&self) -> (SqlState, String, &'static str) {
        let what = |portal: bool| {
            if portal {
                "portal"
            } else {
                "prepared statement"
            }
        };
        match self {
            Unreadable::Text(e) => (
                InvalidText::SQLSTATE,
                format!("{e}"),
                "Send text that is valid in the session's client_encoding.",
            ),
            Unreadable::Ambiguous { portal, name } => (
                SqlState::ProtocolViolation,
                format!(
                    "the {} \"{name}\" was redefined by messages the database has not answered yet, so the gateway cannot tell which one would run",
                    what(*portal)
                ),
                "Wait for the answer to a Parse or Bind (ParseComplete/BindComplete) before using its name in a later Sync group.",
            ),
            Unreadable::EncodingInFlux => (
                SqlState::FeatureNotSupported,
                "non-ASCII text (a statement, or a statement or portal name) was sent before the statement ahead of it was answered: that one may change client_encoding, so the gateway cannot be sure how the database will read it".into(),
                "Wait for the earlier statement's result before sending text with non-ASCII characters, or pass such values as parameters.",
            ),
            Unreadable::Malformed => (
                SqlState::ProtocolViolation,
                "malformed message: its text has no terminating NUL byte".into(),
                "This is a bug in the client or its driver.",
            ),
            Unreadable::Unknown { portal, name } => (
                if *portal {
                    SqlState::InvalidCursorName
                } else {
                    SqlState::InvalidSqlStatementName
                },
                format!(
                    "the gateway does not know the {} \"{name}\"",
                    what(*portal)
                ),
                "Prepare statements with the protocol's Parse message (or run them with EXECUTE/FETCH in SQL), so the gateway can check what they run.",
            ),
        }
    }
}

/// A bound portal: its statement, the statement's description, its own description (when the
/// client described the portal) and the result formats its Bind asked for.
#[derive(Debug)]
pub struct Portal {
    pub info: Arc<StmtInfo>,
    stmt_fields: FieldsSlot,
    fields: FieldsSlot,
    formats: Vec<i16>,
    /// Set when the gateway cannot say what the portal runs.
    pub unreadable: Option<Unreadable>,
    /// The decision made at its Bind, which every Execute of it carries: planning happens at
    /// Bind (and folds immutable calls), so that is where a statement is decided.
    pub gate: Gate,
}

/// What a Bind frame binds, as far as the gateway can tell; [`Tracker::on_bind`] records it
/// once decided.
pub struct BindTarget {
    pub portal: Name,
    pub info: Arc<StmtInfo>,
    stmt_fields: FieldsSlot,
    formats: Vec<i16>,
    pub unreadable: Option<Unreadable>,
}

/// What an Execute frame runs, as far as the gateway can tell.
pub struct ExecTarget {
    /// The portal's name as the tracker keys it.
    pub name: Name,
    pub info: Arc<StmtInfo>,
    pub portal: Option<Arc<Portal>>,
    pub unreadable: Option<Unreadable>,
}

/// Masking for one session: who is exempt from what, and where the catalog comes from.
pub struct SessionMasking {
    pub gw: Arc<Gateway>,
    pub env: String,
    pub database: String,
    /// The identity's groups: its exemptions are looked up at each result (see
    /// [`SessionMasking::exempt`]).
    pub groups: Vec<String>,
    /// The catalog last used, the generation it was current at, and whether code of this
    /// session's open transaction was left out of it: one atomic load per plan
    /// instead of a map lookup.
    pub cached: std::sync::Mutex<(u64, Option<Arc<crate::masking::Catalog>>, bool)>,
    /// Schema changes of the transaction in progress (see `pg::catalog`'s `SessionMasking`
    /// methods): applied again to the catalog, and read, once the transaction ends.
    pub schema_changes: SchemaChanges,
    /// The upstream backend's process id: notifications it sends are judged by what this
    /// session ran (see `MaskingState::sender_clean`).
    pub upstream_pid: i32,
    /// A statement of this session that may send a notification read personal data.
    pub notifies_tainted: std::sync::atomic::AtomicBool,
    /// What the identity was last found exempt from (see [`SessionMasking::exempt`]).
    exempt_kept: std::sync::Mutex<Option<KeptExempt>>,
}

/// The schema changes of a session's open transaction, with flags that answer "any?" and
/// "any code?" without the lock: both are asked at every statement and almost always false.
#[derive(Default)]
pub struct SchemaChanges {
    list: std::sync::Mutex<Vec<crate::masking::Touch>>,
    any: std::sync::atomic::AtomicBool,
    code: std::sync::atomic::AtomicBool,
}

impl SchemaChanges {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<crate::masking::Touch>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, touch: crate::masking::Touch) {
        use std::sync::atomic::Ordering::Release;
        let code = touch == crate::masking::Touch::Code;
        self.list().push(touch);
        self.any.store(true, Release);
        if code {
            self.code.store(true, Release);
        }
    }

    /// Everything recorded so far, leaving none.
    pub fn take(&self) -> Vec<crate::masking::Touch> {
        use std::sync::atomic::Ordering::{Acquire, Release};
        if !self.any.load(Acquire) {
            return Vec::new();
        }
        let mut list = self.list();
        self.any.store(false, Release);
        self.code.store(false, Release);
        std::mem::take(&mut *list)
    }

    pub fn any(&self) -> bool {
        self.any.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The transaction defined code (`CREATE FUNCTION`, `DO`).
    pub fn code(&self) -> bool {
        self.code.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// An answer of `Masking::exempt_until`, and what it holds under.
struct KeptExempt {
    generation: u64,
    until: Option<SystemTime>,
    exempt: crate::masking::Exempt,
}

impl SessionMasking {
    pub fn new(
        gw: Arc<Gateway>,
        env: String,
        database: String,
        groups: Vec<String>,
        upstream_pid: i32,
    ) -> Self {
        gw.masking.sender_opened(upstream_pid);
        SessionMasking {
            gw,
            env,
            database,
            groups,
            cached: std::sync::Mutex::new((0, None, false)),
            schema_changes: SchemaChanges::default(),
            upstream_pid,
            notifies_tainted: std::sync::atomic::AtomicBool::new(false),
            exempt_kept: std::sync::Mutex::new(None),
        }
    }

    /// What the identity is exempt from now: an exemption that expired or was deleted stops
    /// at the next result, on open connections too. Asked at every result, so the answer is
    /// kept until the exemptions change or the earliest of them expires.
    pub fn exempt(&self) -> crate::masking::Exempt {
        let masking = &self.gw.masking;
        // Read before the exemptions: a change after this makes the next call ask again.
        let generation = masking.exemptions_generation();
        let mut kept = self.exempt_kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = kept.as_ref().filter(|k| k.generation == generation) {
            if k.until.is_none_or(|t| SystemTime::now() < t) {
                return k.exempt.clone();
            }
        }
        let (exempt, until) = masking.exempt_until(&self.env, &self.groups);
        *kept = Some(KeptExempt {
            generation,
            until: until.map(SystemTime::from),
            exempt: exempt.clone(),
        });
        exempt
    }

    /// The environment's current catalog (empty if none could be read).
    /// Code this session defined in its open transaction (`CREATE FUNCTION`, `DO`) is
    /// invisible to a catalog read until it commits, so until then the session trusts no
    /// function or operator of the database (see `masking::code`).
    pub fn catalog(&self) -> Arc<crate::masking::Catalog> {
        let generation = self.gw.masking.generation();
        let code_pending = self.schema_changes.code();
        let mut c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        match &c.1 {
            Some(cat) if c.0 == generation && c.2 == code_pending => cat.clone(),
            _ => {
                let mut cat = self.gw.masking.catalog_or_empty(&self.env, &self.database);
                if code_pending && cat.code.is_some() {
                    cat = Arc::new(cat.without(&crate::masking::Touch::Code));
                }
                *c = (generation, Some(cat.clone()), code_pending);
                cat
            }
        }
    }
}

/// The plan of the result set being relayed.
struct Active {
    plan: Arc<ResultPlan>,
    /// What value detection masked so far, by column index.
    found: rewrite::Findings,
    copy: Option<CopyOut>,
    header_pending: bool,
}

/// An exemption that let a result through unmasked, for the audit.
#[derive(Debug)]
pub struct ExemptionUse {
    pub info: Arc<StmtInfo>,
    pub categories: BTreeSet<Category>,
    /// `table.column` of columns exempt by name.
    pub columns: BTreeSet<String>,
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
            portal: None,
            portal_name: None,
            sample: None,
            detected: BTreeMap::new(),
        }
    }
}

/// What a Close names: a prepared statement (`S`) or a portal.
#[derive(Debug)]
struct CloseTarget {
    statement: bool,
    name: Name,
}

#[derive(Debug)]
enum Expect {
    /// A Parse; the client's carries the definition it makes once the server accepts it.
    Parse {
        ours: bool,
        def: Option<(Name, Arc<Prepared>)>,
    },
    Bind {
        ours: bool,
        def: Option<(Name, Arc<Portal>)>,
    },
    Close {
        ours: bool,
        target: Option<CloseTarget>,
    },
    Describe(Option<FieldsSlot>),
    // Boxed: an execution is large, and the queue moves its entries on every push and pop.
    Execute(Box<Exec>),
    Query(Box<Exec>),
    /// A simple query already reported (it failed); only its ReadyForQuery is still to come.
    QueryDone,
    Sync,
}

/// A finished execution and how long it took.
#[derive(Debug)]
pub struct Completed {
    pub exec: Box<Exec>,
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

/// The name maps' hasher: a name is looked up at every Bind and Execute, where SipHash cost
/// more than the lookup. Seeded per map; a client colliding names on purpose slows only its
/// own session, whose maps the server bounds anyway.
type NameHasher = foldhash::fast::RandomState;

#[derive(Default)]
pub struct Tracker {
    /// Prepared statements and portals as the server has confirmed them.
    statements: HashMap<Name, Arc<Prepared>, NameHasher>,
    portals: HashMap<Name, Arc<Portal>, NameHasher>,
    /// The empty name, kept once (see [`Tracker::kept_name`]).
    unnamed: Name,
    pending: VecDeque<Expect>,
    group_error: Option<(String, String)>,
    pub completed: VecDeque<Completed>,
    /// `None`: masking is off for this session and rows are never looked at.
    pub masking: Option<Arc<SessionMasking>>,
    active: Option<Active>,
    /// Statements of the current simple Query already completed (which one a result is from).
    query_index: usize,
    /// Cursors declared in this session, for the lineage of their FETCHes.
    cursors: HashMap<String, Arc<StatementLineage>, NameHasher>,
    /// Results let through by an exemption, drained by the relay into the audit.
    pub exemption_uses: Vec<ExemptionUse>,
    /// Executions whose portal is suspended (its row limit reached), by portal name: the
    /// Executes that read the rest continue them, so a result fetched in pieces (JDBC's fetch
    /// size) is one audit record with all its rows, not one per piece.
    suspended: HashMap<Name, Box<Exec>, NameHasher>,
    /// The session's `client_encoding`, from the server's ParameterStatus.
    pub encoding: ClientEncoding,
    /// Set when the server reports a `client_encoding` the gateway cannot read: the relay ends
    /// the session with this message.
    pub refused_encoding: Option<String>,
    /// How the server reads backslashes in plain strings, from its ParameterStatus of
    /// `standard_conforming_strings`; `None` until it has said.
    pub strings: Option<Strings>,
    /// How many rows of each result to keep as the client saw them, for session replay (the
    /// environment's `replay_rows`; 0: none).
    pub replay_rows: usize,
    /// The session may have moved its `search_path` (see [`Subject::search_path_changed`]):
    /// set when a statement that sets it is decided, never cleared.
    ///
    /// [`Subject::search_path_changed`]: crate::policy::Subject::search_path_changed
    pub search_path_changed: bool,
    /// What the statement path derived from the statements this session has seen.
    pub verdicts: super::verdicts::Verdicts,
    /// The last RowDescription read, as it came and as fields.
    last_description: Option<(Box<[u8]>, Description)>,
}

/// A RowDescription's fields, shared by the statement or portal it describes.
type Description = Arc<Vec<Field>>;

/// Longest RowDescription kept as the last one (a few dozen columns).
const MAX_KEPT_DESCRIPTION: usize = 4096;

/// `standard_conforming_strings` as the server reports it (`on`/`off`); anything else is
/// unknown, and both readings are then checked.
pub fn strings_reading(value: &[u8]) -> Option<Strings> {
    match value {
        b"on" => Some(Strings::Standard),
        b"off" => Some(Strings::Backslash),
        _ => None,
    }
}

/// Reads a NUL-terminated UTF-8 string at `*pos`, advancing past it.
fn cstr<'a>(b: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    std::str::from_utf8(cstr_at(b, pos)?).ok()
}

const UNKNOWN: &str = "<unknown prepared statement>";

impl Tracker {
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The statement whose responses are arriving, and its place in its Query string (an
    /// Execute runs one statement).
    fn current_statement(&self) -> Option<(Arc<StmtInfo>, usize)> {
        match self.pending.front() {
            Some(Expect::Query(e)) => Some((e.info.clone(), self.query_index)),
            Some(Expect::Execute(e)) => Some((e.info.clone(), 0)),
            _ => None,
        }
    }

    /// The execution whose responses are arriving.
    fn current_exec_mut(&mut self) -> Option<&mut Exec> {
        match self.pending.front_mut() {
            Some(Expect::Query(e)) | Some(Expect::Execute(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether the result arriving still wants rows for its replay sample (the relay then
    /// hands its DataRows whole to [`Tracker::sample`]).
    pub fn samples_rows(&self) -> bool {
        self.replay_rows > 0
            && match self.pending.front() {
                Some(Expect::Query(e)) | Some(Expect::Execute(e)) => {
                    e.sample.as_ref().map_or(0, |s| s.rows.len()) < self.replay_rows
                }
                _ => false,
            }
    }

    /// Keeps a RowDescription's names or a DataRow's values in the current execution's
    /// sample; `frame` is what the client receives (masked where masking rewrote it).
    pub fn sample(&mut self, frame: &[u8]) {
        let limit = self.replay_rows;
        let Some(e) = self.current_exec_mut() else {
            return;
        };
        // An Execute's result was described before it ran (Describe, then Bind's formats).
        let (formats, described): (&[i16], Option<&Arc<Vec<Field>>>) = match &e.portal {
            Some(p) => (&p.formats, p.fields.get().or_else(|| p.stmt_fields.get())),
            None => (&[], None),
        };
        let s = e.sample.get_or_insert_with(ResultSample::default);
        let names = |f: &[Field]| f.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        match frame.first() {
            Some(b'T') if s.columns.is_empty() => {
                s.columns = row_description(frame)
                    .map(|f| names(&f))
                    .unwrap_or_default();
            }
            Some(b'D') if s.rows.len() < limit => {
                if s.columns.is_empty() {
                    s.columns = described.map(|f| names(f)).unwrap_or_default();
                }
                if let Some(values) = super::wire::data_row(frame) {
                    s.rows.push(
                        values
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| {
                                let binary = match formats {
                                    [] => false,
                                    [one] => *one == 1,
                                    many => many.get(i) == Some(&1),
                                };
                                // Text types' binary form is their text.
                                let text_type = described
                                    .and_then(|f| f.get(i))
                                    .is_some_and(|f| matches!(f.type_oid, 19 | 25 | 1042 | 1043));
                                v.map(|v| ResultSample::cell(v, binary && !text_type))
                            })
                            .collect(),
                    );
                }
            }
            _ => {}
        }
    }

    /// The reading of backslashes the next statement gets, when the gateway knows it: the
    /// server's last report, provided nothing that runs is still in flight (a statement sent
    /// before this one may change it, and its ParameterStatus has not arrived yet).
    pub fn reading(&self) -> Option<Strings> {
        if self.settings_in_flux() {
            None
        } else {
            self.strings
        }
    }

    /// Whether statement or portal names beyond ASCII are read now, when the server may read
    /// them in another encoding (see [`Tracker::statement_text`]): a Bind could then name one
    /// statement to the gateway and another to the server.
    fn names_in_flux(&self, names: &[&str]) -> bool {
        !names.iter().all(|n| n.is_ascii()) && self.settings_in_flux()
    }

    /// Whether a statement sent earlier and not answered yet may change how the server reads
    /// what follows (`client_encoding`, `standard_conforming_strings`): one that runs (a
    /// Query or an Execute), unless all it does is start a transaction, set a savepoint or
    /// show a setting, which change no setting and run no code of the database's users.
    fn settings_in_flux(&self) -> bool {
        const SETTLED: &[&str] = &["BEGIN", "START", "SAVEPOINT", "RELEASE", "SHOW"];
        self.pending.iter().any(|e| match e {
            Expect::Query(x) | Expect::Execute(x) => {
                !x.info.kinds.iter().all(|k| SETTLED.contains(&k.as_str()))
            }
            _ => false,
        })
    }

    // ----- client side -----

    /// A simple Query frame; returns the statement to decide on, read in the session's
    /// encoding (text that is not valid there is refused, never read as something else).
    pub fn query_info(&mut self, frame: &[u8]) -> Result<Arc<StmtInfo>, Unreadable> {
        let mut pos = 5;
        let text = cstr_at(frame, &mut pos).ok_or(Unreadable::Malformed)?;
        let text = self.statement_text(text)?;
        Ok(self.verdicts.statement(&text, false))
    }

    /// Statement text as the server will read it: in the session's encoding, and beyond ASCII
    /// only while nothing unanswered may change that encoding. ASCII reads alike in every
    /// encoding the server could switch to; other text could hide a quote or a backslash in a
    /// character of an encoding the gateway refuses, before the server's report of the switch
    /// arrives to end the session.
    fn statement_text<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, str>, Unreadable> {
        let text = self.encoding.decode(bytes).map_err(Unreadable::Text)?;
        if !text.is_ascii() && self.settings_in_flux() {
            return Err(Unreadable::EncodingInFlux);
        }
        Ok(text)
    }

    /// A statement or portal name as the maps key it: the session encoding's reading, or for
    /// bytes invalid there (the server refuses the message) a key no valid name can have.
    fn name<'a>(&self, frame: &'a [u8], pos: &mut usize) -> Cow<'a, str> {
        let bytes = cstr_at(frame, pos).unwrap_or_default();
        match self.encoding.decode(bytes) {
            Ok(s) => s,
            Err(_) => Cow::Owned(
                std::iter::once('\0')
                    .chain(bytes.iter().map(|&b| b as char))
                    .collect(),
            ),
        }
    }

    /// A name to keep past its frame. The unnamed statement and portal, named by most
    /// extended-protocol messages, share one allocation.
    fn kept_name(&self, name: Cow<'_, str>) -> Name {
        if name.is_empty() {
            self.unnamed.clone()
        } else {
            Name::new(&name)
        }
    }

    /// What a name means for a message sent now: `on_name` says what an unanswered operation
    /// on it leaves (`Some(None)`: a Close), `confirmed` what the server accepted, `same` whether
    /// two definitions run the same thing (see [`names`]). The latest operation in the
    /// message's own Sync group decides alone, with no lookup: had it failed, the server would
    /// skip the message too, and every unanswered earlier group comes before it.
    fn resolve_name<T: Clone>(
        &self,
        on_name: impl Fn(&Expect) -> Option<Option<T>>,
        confirmed: impl FnOnce() -> Option<T>,
        same: impl Fn(&T, &T) -> bool,
    ) -> Resolved<T> {
        for e in self.pending.iter().rev() {
            if matches!(e, Expect::Sync) {
                break;
            }
            if let Some(leaves) = on_name(e) {
                return match leaves {
                    Some(def) => Resolved::Known(def),
                    None => Resolved::Unknown,
                };
            }
        }
        let last_sync = self.pending.iter().rposition(|e| matches!(e, Expect::Sync));
        let ops = self.pending.iter().enumerate().filter_map(|(i, e)| {
            let leaves = on_name(e)?;
            Some(names::Op {
                earlier_group: last_sync.is_some_and(|s| i < s),
                leaves,
            })
        });
        names::resolve(confirmed(), ops, same)
    }

    /// The prepared statement `name` means for a message sent now.
    fn resolve_statement(&self, name: &str) -> Resolved<Arc<Prepared>> {
        self.resolve_name(
            |e| match e {
                Expect::Parse {
                    def: Some((n, p)), ..
                } if *n == *name => Some(Some(p.clone())),
                Expect::Close {
                    target: Some(t), ..
                } if t.statement && t.name == *name => Some(None),
                _ => None,
            },
            || self.statements.get(name).cloned(),
            // The same text is usually the same kept `Statement`: compared by address first.
            |a, b| {
                (Arc::ptr_eq(&a.info, &b.info) || a.info.sql == b.info.sql)
                    && a.unreadable == b.unreadable
            },
        )
    }

    /// The portal `name` means for a message sent now.
    fn resolve_portal(&self, name: &str) -> Resolved<Arc<Portal>> {
        self.resolve_name(
            |e| match e {
                Expect::Bind {
                    def: Some((n, p)), ..
                } if *n == *name => Some(Some(p.clone())),
                Expect::Close {
                    target: Some(t), ..
                } if !t.statement && t.name == *name => Some(None),
                _ => None,
            },
            || self.portals.get(name).cloned(),
            |a, b| {
                Arc::ptr_eq(a, b)
                    || ((Arc::ptr_eq(&a.info, &b.info) || a.info.sql == b.info.sql)
                        && a.unreadable == b.unreadable)
            },
        )
    }

    pub fn expect_query(&mut self, exec: Exec) {
        self.pending.push_back(Expect::Query(Box::new(exec)));
    }

    /// A Parse: its definition takes effect when the server accepts it (ParseComplete).
    /// Returns the statement as read (empty when it cannot be read; it is refused at Bind).
    pub fn on_parse(&mut self, frame: &[u8]) -> Arc<StmtInfo> {
        let mut pos = 5;
        let name = self.kept_name(self.name(frame, &mut pos));
        let text = cstr_at(frame, &mut pos).unwrap_or_default();
        let (info, unreadable) = match self.statement_text(text) {
            Ok(_) if self.names_in_flux(&[&name]) => {
                (StmtInfo::new(""), Some(Unreadable::EncodingInFlux))
            }
            Ok(sql) => (self.verdicts.statement(&sql, true), None),
            Err(u) => (StmtInfo::new(""), Some(u)),
        };
        let def = Arc::new(Prepared {
            info: info.clone(),
            fields: FieldsSlot::default(),
            unreadable,
        });
        self.pending.push_back(Expect::Parse {
            ours: false,
            def: Some((name, def)),
        });
        info
    }

    /// What a Bind frame binds (the statement its name means now).
    pub fn bind_target(&self, frame: &[u8]) -> BindTarget {
        let mut pos = 5;
        let portal = self.kept_name(self.name(frame, &mut pos));
        let stmt = self.name(frame, &mut pos);
        let in_flux = self.names_in_flux(&[&portal, &stmt]);
        let (info, stmt_fields, unreadable) = match self.resolve_statement(&stmt) {
            Resolved::Known(p) => (p.info.clone(), p.fields.clone(), p.unreadable.clone()),
            Resolved::Unknown => (
                StmtInfo::new(UNKNOWN),
                FieldsSlot::default(),
                Some(Unreadable::Unknown {
                    portal: false,
                    name: stmt.into_owned(),
                }),
            ),
            Resolved::Ambiguous => (
                StmtInfo::new(UNKNOWN),
                FieldsSlot::default(),
                Some(Unreadable::Ambiguous {
                    portal: false,
                    name: stmt.into_owned(),
                }),
            ),
        };
        BindTarget {
            portal,
            info,
            stmt_fields,
            formats: bind_result_formats(frame, pos).unwrap_or_default(),
            unreadable: if in_flux {
                Some(Unreadable::EncodingInFlux)
            } else {
                unreadable
            },
        }
    }

    /// A Bind the gate let through: the portal takes effect when the server accepts it
    /// (BindComplete), carrying the decision.
    pub fn on_bind(&mut self, target: BindTarget, gate: Gate) {
        if let Some(old) = self.suspended.remove(&target.portal) {
            self.finish(old);
        }
        let def = Arc::new(Portal {
            info: target.info,
            stmt_fields: target.stmt_fields,
            fields: FieldsSlot::default(),
            formats: target.formats,
            unreadable: target.unreadable,
            gate,
        });
        self.pending.push_back(Expect::Bind {
            ours: false,
            def: Some((target.portal, def)),
        });
    }

    /// A Describe of a statement (`S`) or portal (`P`): its RowDescription fills their slot.
    pub fn on_describe(&mut self, frame: &[u8]) {
        let mut pos = 6;
        let name = self.name(frame, &mut pos);
        let slot = match frame.get(5) {
            Some(b'S') => match self.resolve_statement(&name) {
                Resolved::Known(p) => Some(p.fields.clone()),
                _ => None,
            },
            _ => match self.resolve_portal(&name) {
                Resolved::Known(p) => Some(p.fields.clone()),
                _ => None,
            },
        };
        self.pending.push_back(Expect::Describe(slot));
    }

    /// A Close: the name is forgotten when the server confirms it (CloseComplete).
    pub fn on_close(&mut self, frame: &[u8]) {
        let mut pos = 6;
        let name = self.name(frame, &mut pos);
        let statement = frame.get(5) == Some(&b'S');
        if !statement {
            // Closed before its last row was read: recorded with the rows read so far.
            if let Some(run) = self.suspended.remove(&*name) {
                self.finish(run);
            }
        }
        let name = self.kept_name(name);
        self.pending.push_back(Expect::Close {
            ours: false,
            target: Some(CloseTarget { statement, name }),
        });
    }

    /// What an Execute frame runs.
    pub fn execute_target(&self, frame: &[u8]) -> ExecTarget {
        let mut pos = 5;
        let name = self.name(frame, &mut pos);
        let in_flux = self.names_in_flux(&[&name]);
        let (portal, unreadable) = match self.resolve_portal(&name) {
            Resolved::Known(p) => {
                let u = p.unreadable.clone();
                (Some(p), u)
            }
            Resolved::Unknown => (
                None,
                Some(Unreadable::Unknown {
                    portal: true,
                    name: name.to_string(),
                }),
            ),
            Resolved::Ambiguous => (
                None,
                Some(Unreadable::Ambiguous {
                    portal: true,
                    name: name.to_string(),
                }),
            ),
        };
        ExecTarget {
            name: self.kept_name(name),
            info: portal
                .as_ref()
                .map_or_else(|| StmtInfo::new(UNKNOWN), |p| p.info.clone()),
            portal,
            unreadable: if in_flux {
                Some(Unreadable::EncodingInFlux)
            } else {
                unreadable
            },
        }
    }

    pub fn expect_execute(&mut self, exec: Exec) {
        let mut exec = Box::new(exec);
        // The next piece of a suspended portal continues its execution.
        let resumed = match &exec.portal_name {
            Some(name) if !self.suspended.is_empty() => self.suspended.remove(name.as_str()),
            _ => None,
        };
        if let Some(run) = resumed {
            exec.started = run.started;
            exec.at = run.at;
            exec.rows = run.rows;
            exec.sample = run.sample;
            exec.detected = run.detected;
        }
        self.pending.push_back(Expect::Execute(exec));
    }

    /// Ends the executions of suspended portals (the transaction or the connection ended);
    /// each is recorded with the rows read.
    pub fn finish_suspended(&mut self) {
        let runs: Vec<Box<Exec>> = self.suspended.drain().map(|(_, e)| e).collect();
        for run in runs {
            self.finish(run);
        }
    }

    pub fn on_sync(&mut self) {
        self.pending.push_back(Expect::Sync);
    }

    /// Records that the gateway sent its own Close+Parse+Bind+Execute for a refused Execute.
    pub fn expect_refusal_execute(&mut self, exec: Exec) {
        self.pending.push_back(Expect::Close {
            ours: true,
            target: None,
        });
        self.pending.push_back(Expect::Parse {
            ours: true,
            def: None,
        });
        self.pending.push_back(Expect::Bind {
            ours: true,
            def: None,
        });
        self.pending.push_back(Expect::Execute(Box::new(exec)));
    }

    // ----- upstream side -----

    fn finish(&mut self, mut exec: Box<Exec>) {
        if exec.error.is_none() {
            exec.error = self.group_error.clone();
        }
        let duration = exec.started.elapsed();
        self.completed.push_back(Completed { exec, duration });
    }

    fn front_exec(&mut self) -> Option<&mut Exec> {
        match self.pending.front_mut() {
            Some(Expect::Execute(e)) | Some(Expect::Query(e)) => Some(e),
            _ => None,
        }
    }

    /// Tags whose whole frame the tracker needs to see.
    pub fn backend_wants_whole(tag: u8) -> bool {
        matches!(tag, b'Z' | b'C' | b'E' | b'S')
    }

    /// Tags whose whole frame masking needs to see, besides [`Self::backend_wants_whole`]:
    /// descriptions and notices always (they are small), rows only while a plan touches them.
    pub fn masking_wants_whole(&self, tag: u8) -> bool {
        if self.masking.is_none() {
            return false;
        }
        match tag {
            b'T' | b'N' | b'H' | b'V' | b'A' => true,
            b'D' => match &self.active {
                Some(a) => a.copy.is_none() && !a.plan.is_noop(),
                // An Execute's first row: its plan is made when it arrives.
                None => matches!(self.pending.front(), Some(Expect::Execute(_))),
            },
            b'd' => self
                .active
                .as_ref()
                .is_some_and(|a| a.copy.is_some() && !a.plan.is_noop()),
            _ => false,
        }
    }

    /// Handles one upstream frame (`frame` is given for the tags in [`Self::backend_wants_whole`]
    /// and [`Self::masking_wants_whole`]).
    pub fn on_backend(&mut self, tag: u8, frame: Option<&[u8]>) -> Verdict {
        // The statement an error or notice belongs to, taken before an error completes it.
        let speaking = match tag {
            b'E' | b'N' if self.masking.is_some() => self.current_statement(),
            _ => None,
        };
        let verdict = self.on_backend_inner(tag, frame);
        let Some(m) = self.masking.clone() else {
            return verdict;
        };
        // Errors and notices can quote row values (`Key (email)=(…)`).
        match (tag, verdict, frame) {
            (b'V' | b'A' | b'S', Verdict::Forward, Some(f)) => {
                let masker = &m.gw.masking.masker;
                let skip = m.exempt().categories;
                let masked = match tag {
                    b'V' => {
                        // A large object read through the fast path (PgJDBC's API), after one
                        // was written from personal data: masked whole.
                        let lo_read = self.current_statement().is_some_and(|(info, _)| {
                            info.sql.starts_with("SELECT pg_catalog.loread(")
                        });
                        if lo_read && m.gw.masking.large_objects_are_tainted(&m.env, &m.database) {
                            messages::function_result_redacted(masker, f)
                        } else {
                            rewrite::function_result_frame(masker, f, &skip)
                        }
                    }
                    b'A' => {
                        let sender = f
                            .get(5..9)
                            .map(|p| i32::from_be_bytes([p[0], p[1], p[2], p[3]]));
                        let clean = sender.is_some_and(|pid| m.gw.masking.sender_clean(pid));
                        messages::notification_frame(masker, f, &skip, clean)
                    }
                    _ if self.sets_parameter_from_data(&m) => {
                        rewrite::parameter_status_redacted(masker, f)
                    }
                    _ => rewrite::parameter_status_frame(masker, f, &skip),
                };
                match masked {
                    Some(b) => Verdict::Replace(b),
                    None => Verdict::Forward,
                }
            }
            (b'E' | b'N', Verdict::Forward, Some(f)) => match message_masked(&m, f, speaking) {
                Some(b) => Verdict::Replace(b),
                None => Verdict::Forward,
            },
            // The gateway's own refusal: only what the detectors find.
            (b'E' | b'N', Verdict::Replace(b), _) => match messages::error_frame(
                &m.gw.masking.masker,
                &b,
                &m.exempt().categories,
                &messages::Taint::NONE,
            ) {
                Some(masked) => Verdict::Replace(masked),
                None => Verdict::Replace(b),
            },
            (_, v, _) => v,
        }
    }

    fn on_backend_inner(&mut self, tag: u8, frame: Option<&[u8]>) -> Verdict {
        match tag {
            b'1' => self.pop_simple(|e| matches!(e, Expect::Parse { .. })),
            b'2' => self.pop_simple(|e| matches!(e, Expect::Bind { .. })),
            b'3' => self.pop_simple(|e| matches!(e, Expect::Close { .. })),
            b'S' => {
                match frame.and_then(super::wire::parameter_status) {
                    Some((b"client_encoding", value)) => {
                        let value = String::from_utf8_lossy(value);
                        match ClientEncoding::from_name(&value) {
                            Ok(e) => self.encoding = e,
                            Err(e) => self.refused_encoding = Some(e.to_string()),
                        }
                    }
                    Some((b"standard_conforming_strings", value)) => {
                        self.strings = strings_reading(value);
                    }
                    _ => {}
                }
                Verdict::Forward
            }
            b'T' | b'n' => {
                let fields = match (tag, frame) {
                    (b'T', Some(f)) => self.description(f),
                    _ => Some(Arc::default()),
                };
                if matches!(self.pending.front(), Some(Expect::Describe(_))) {
                    if let Some(Expect::Describe(Some(slot))) = self.pending.pop_front() {
                        if let Some(f) = fields {
                            let _ = slot.set(f);
                        }
                    }
                } else if tag == b'T' {
                    if let (Some(Expect::Query(e)), Some(_)) = (self.pending.front(), &self.masking)
                    {
                        let info = e.info.clone();
                        let plan = self.plan_result(
                            &info,
                            self.query_index,
                            fields.as_deref().map(Vec::as_slice),
                            &[],
                            None,
                        );
                        self.active = Some(Active {
                            plan,
                            found: rewrite::Findings::new(),
                            copy: None,
                            header_pending: false,
                        });
                    }
                }
                Verdict::Forward
            }
            b'D' => {
                if self.active.is_none() && self.masking.is_some() {
                    if let Some(Expect::Execute(e)) = self.pending.front() {
                        let (info, portal) = (e.info.clone(), e.portal.clone());
                        let plan = self.plan_execute(&info, portal.as_deref(), frame);
                        self.active = Some(Active {
                            plan,
                            found: rewrite::Findings::new(),
                            copy: None,
                            header_pending: false,
                        });
                    }
                }
                if let Some(e) = self.front_exec() {
                    e.rows = Some(e.rows.unwrap_or(0) + 1);
                }
                match (&mut self.active, frame, &self.masking) {
                    (Some(a), Some(f), Some(m)) if a.copy.is_none() && !a.plan.is_noop() => {
                        match rewrite::data_row(&a.plan, &m.gw.masking.masker, f, &mut a.found) {
                            Some(b) => Verdict::Replace(b),
                            None => Verdict::Forward,
                        }
                    }
                    _ => Verdict::Forward,
                }
            }
            b'H' => {
                if let (Some(m), Some(f)) = (self.masking.clone(), frame) {
                    let ncols = super::wire::copy_out_width(f).unwrap_or(0);
                    if let Some((info, index)) = self.current_statement() {
                        let lineage = m.gw.masking.lineage_of(&info);
                        let st = lineage.statements.get(index);
                        let copy = CopyOut::for_response(
                            st.and_then(|s| s.copy.as_ref()),
                            f.get(5).copied(),
                        );
                        let catalog = m.catalog();
                        let ex = m.exempt();
                        let planner = Planner {
                            catalog: &catalog,
                            lineage: st,
                            exempt: &ex.categories,
                            exempt_columns: &ex.columns,
                        };
                        let plan = Arc::new(planner.plan_copy_as(ncols, copy.format));
                        m.after_plan(&plan);
                        self.note_exemptions(&info, &plan);
                        self.active = Some(Active {
                            header_pending: copy.header,
                            found: rewrite::Findings::new(),
                            plan,
                            copy: Some(copy),
                        });
                    }
                }
                Verdict::Forward
            }
            b'd' => match (&mut self.active, frame, &self.masking) {
                (Some(a), Some(f), Some(m)) if a.copy.is_some() && !a.plan.is_noop() => {
                    if a.header_pending {
                        a.header_pending = false;
                        return Verdict::Forward;
                    }
                    let copy = a.copy.as_ref().expect("checked above");
                    if copy.format == CopyFormat::Binary {
                        return match rewrite::copy_binary_data(
                            &a.plan,
                            &m.gw.masking.masker,
                            f,
                            &mut a.found,
                        ) {
                            rewrite::BinaryCopyData::Unchanged => Verdict::Forward,
                            rewrite::BinaryCopyData::Replace(b) => Verdict::Replace(b),
                            // Rows the gateway cannot read do not leave it.
                            rewrite::BinaryCopyData::Unreadable => Verdict::Hide,
                        };
                    }
                    match rewrite::copy_row(&a.plan, &m.gw.masking.masker, copy, f, &mut a.found) {
                        Some(b) => Verdict::Replace(b),
                        None => Verdict::Forward,
                    }
                }
                _ => Verdict::Forward,
            },
            b'C' | b'I' | b's' => {
                self.end_result();
                let tag_rows = frame.and_then(|f| {
                    let mut pos = 5;
                    cstr(f, &mut pos).and_then(rows_from_tag)
                });
                if tag == b'C' && self.masking.is_some() {
                    self.remember_cursor(frame);
                    self.note_schema_change(frame);
                    self.note_side_channels();
                }
                match self.pending.front_mut() {
                    Some(Expect::Query(e)) => {
                        if let Some(n) = tag_rows {
                            e.rows = Some(n);
                        }
                        if tag != b's' {
                            self.query_index += 1;
                        }
                    }
                    Some(Expect::Execute(_)) => {
                        if let Some(Expect::Execute(mut e)) = self.pending.pop_front() {
                            // The rows counted so far include earlier pieces of a suspended
                            // portal, which the tag (PostgreSQL counts the last piece) does not.
                            if let Some(n) = tag_rows {
                                e.rows = Some(e.rows.map_or(n, |counted| counted.max(n)));
                            }
                            match (tag, e.portal_name.take()) {
                                (b's', Some(name)) => {
                                    if let Some(old) = self.suspended.insert(name, e) {
                                        self.finish(old);
                                    }
                                }
                                _ => self.finish(e),
                            }
                        }
                    }
                    _ => {}
                }
                Verdict::Forward
            }
            b'E' => {
                self.end_result();
                self.on_error(frame.unwrap_or(&[]))
            }
            b'Z' => {
                self.active = None;
                self.query_index = 0;
                if let (Some(m), Some(status)) = (&self.masking, frame.and_then(|f| f.get(5))) {
                    m.on_ready(*status);
                }
                // Idle: the transaction is over, and every portal with it.
                if !self.suspended.is_empty() && frame.and_then(|f| f.get(5)) == Some(&b'I') {
                    self.finish_suspended();
                }
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

    /// A RowDescription's fields: those of the last one when its bytes are the same (a
    /// prepared statement's portal is described again at every execution).
    fn description(&mut self, frame: &[u8]) -> Option<Description> {
        if let Some((bytes, fields)) = &self.last_description {
            if bytes[..] == *frame {
                return Some(fields.clone());
            }
        }
        let fields = Arc::new(row_description(frame)?);
        if frame.len() <= MAX_KEPT_DESCRIPTION {
            self.last_description = Some((frame.into(), fields.clone()));
        }
        Some(fields)
    }

    /// A DECLARE that completed: its query's lineage serves the cursor's FETCHes.
    fn remember_cursor(&mut self, frame: Option<&[u8]>) {
        let Some(f) = frame else { return };
        // A PREPARE's query serves its EXECUTEs the same way.
        if !f.get(5..).is_some_and(|t| {
            matches!(t.first(), Some(b'D' | b'P'))
                && (t.starts_with(b"DECLARE CURSOR") || t.starts_with(b"PREPARE"))
        }) {
            return;
        }
        let Some((info, index)) = self.current_statement() else {
            return;
        };
        let Some(m) = &self.masking else { return };
        let lineage = m.gw.masking.lineage_of(&info);
        if let Some(st) = lineage.statements.get(index) {
            if let Some(name) = &st.declares {
                self.cursors.insert(name.clone(), Arc::new(st.clone()));
            }
        }
    }

    /// Whether the statement in progress calls `set_config` with a value from row data (an
    /// output with sources): the ParameterStatus it causes is masked whole.
    fn sets_parameter_from_data(&self, m: &SessionMasking) -> bool {
        let info = match self.pending.front() {
            Some(Expect::Query(e)) | Some(Expect::Execute(e)) => &e.info,
            _ => return false,
        };
        let calls = info.mentions(crate::sql::Word::SetConfig);
        calls
            && m.gw.masking.lineage_of(info).statements.iter().any(|st| {
                st.outputs.as_ref().is_none_or(|o| {
                    o.iter().any(|o| {
                        matches!(o, crate::masking::lineage::Output::Expr { sources, .. } if !sources.is_empty())
                    })
                })
            })
    }

    /// A completed schema change (CREATE, ALTER, DROP, COMMENT…): the relations it touched
    /// leave the masking catalog at once (see `SessionMasking::schema_changed`). A relation
    /// filled from a query keeps the tags of what filled it (`SessionMasking::filled`).
    fn note_schema_change(&mut self, frame: Option<&[u8]>) {
        let Some(tag) = frame.and_then(|f| f.get(5..)) else {
            return;
        };
        let Some((info, index)) = self.current_statement() else {
            return;
        };
        let Some(m) = &self.masking else { return };
        // A relation filled from a query (CREATE TABLE … AS, SELECT … INTO, INSERT … SELECT).
        if info.may_write && (tag.starts_with(b"SELECT") || tag.starts_with(b"INSERT")) {
            let lineage = m.gw.masking.lineage_of(&info);
            if let Some(fill) = lineage.statements.get(index).and_then(|s| s.fills.as_ref()) {
                m.filled(fill);
            }
            return;
        }
        if !crate::masking::lineage::may_change_schema(tag) {
            return;
        }
        let lineage = m.gw.masking.lineage_of(&info);
        m.schema_changed(crate::masking::lineage::touched(
            lineage.statements.get(index),
            tag,
        ));
    }

    fn note_exemptions(&mut self, info: &Arc<StmtInfo>, plan: &ResultPlan) {
        if !plan.exempted.is_empty() || !plan.exempted_columns.is_empty() {
            self.exemption_uses.push(ExemptionUse {
                info: info.clone(),
                categories: plan.exempted.clone(),
                columns: plan.exempted_columns.clone(),
            });
        }
    }

    /// A statement completed that may carry data out of band: send a notification (NOTIFY,
    /// `pg_notify`, a write that may fire a trigger, code), or write a large object. If it read
    /// personal data, what this session's backend notifies from now on is masked whole for
    /// every listener, and large objects of the database read through the fast path are masked
    /// whole (see `masking::messages`).
    fn note_side_channels(&self) {
        use std::sync::atomic::Ordering;
        let Some(m) = &self.masking else { return };
        let Some((info, _)) = self.current_statement() else {
            return;
        };
        const WRITES: &[&str] = &[
            "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "TRUNCATE", "DO", "CALL",
        ];
        // Only a call, code or a write can send anything: most statements stop here.
        if !info.sql.contains('(') && !info.kinds.iter().any(|k| WRITES.contains(&k.as_str())) {
            return;
        }
        let catalog = m.catalog();
        let lineage = m.gw.masking.lineage_of(&info);
        let code = info.kinds.iter().any(|k| k == "DO" || k == "CALL");
        let notifies = !m.notifies_tainted.load(Ordering::Relaxed)
            && messages::may_notify(&catalog, &lineage, &info.kinds);
        let writes_lo = messages::writes_large_object(&lineage)
            || (code && messages::names_large_object_writer(&info.sql));
        if !notifies && !writes_lo {
            return;
        }
        let filled = m.gw.masking.filled_tables(&m.env, &m.database);
        let tainted = messages::Taint::of(&catalog, &lineage, &info.sql, &filled).values
            || messages::writes_triggered(&catalog, &lineage, &info.kinds);
        if !tainted {
            return;
        }
        if notifies {
            m.notifies_tainted.store(true, Ordering::Relaxed);
            m.gw.masking.sender_tainted(m.upstream_pid);
        }
        if writes_lo {
            m.gw.masking.large_objects_tainted(&m.env, &m.database);
        }
    }

    /// The result being relayed ended: what value detection masked in it joins its
    /// execution's audit record.
    fn end_result(&mut self) {
        let Some(a) = self.active.take() else { return };
        if a.found.is_empty() {
            return;
        }
        let Some(e) = self.front_exec() else { return };
        for (i, cats) in a.found {
            let name = match a.plan.names.get(i) {
                Some(n) if !n.is_empty() => n.clone(),
                _ => format!("#{}", i + 1),
            };
            e.detected.entry(name).or_default().extend(cats);
        }
    }

    /// The plan of an Execute's rows: from the portal's description, else the statement's
    /// with the Bind's formats, else (no Describe at all) from the lineage alone.
    fn plan_execute(
        &mut self,
        info: &Arc<StmtInfo>,
        portal: Option<&Portal>,
        row: Option<&[u8]>,
    ) -> Arc<ResultPlan> {
        let (fields, formats): (Option<&[Field]>, &[i16]) = match portal {
            Some(p) => match (p.fields.get(), p.stmt_fields.get()) {
                (Some(f), _) => (Some(f), &[]),
                (None, Some(f)) => (Some(f), &p.formats),
                (None, None) => (None, &p.formats),
            },
            None => (None, &[]),
        };
        let ncols = row.and_then(super::wire::data_row_width).unwrap_or(0);
        self.plan_result(info, 0, fields, formats, Some(ncols))
    }

    /// The plan of one result set. `formats` (a Bind's) override the fields' own when given;
    /// without fields, `blind` columns of unknown type are planned from the lineage.
    fn plan_result(
        &mut self,
        info: &Arc<StmtInfo>,
        index: usize,
        fields: Option<&[Field]>,
        formats: &[i16],
        blind: Option<usize>,
    ) -> Arc<ResultPlan> {
        let Some(m) = self.masking.clone() else {
            return Arc::new(ResultPlan::default());
        };
        let given = fields;
        let catalog = m.catalog();
        let ex = m.exempt();
        let inputs = PlanInputs {
            index,
            fields: given,
            formats,
            blind,
            catalog: &catalog,
            exempt: &ex,
        };
        // Columns straight from tables need the catalog only; expressions need the lineage.
        let needs_lineage = match given {
            Some(f) => f.iter().any(|f| {
                (f.table_oid == 0 || f.attnum <= 0) && type_kind(f.type_oid) != TypeKind::Bool
            }),
            // Columns of unknown type and origin.
            None => blind.unwrap_or(0) > 0,
        };
        let kept = match needs_lineage {
            true => self.verdicts.plan(info, &inputs),
            false => self.verdicts.column_plan(&inputs),
        };
        if let Some(plan) = kept {
            // Each result an exemption lets through is audited, kept plan or not.
            self.note_exemptions(info, &plan);
            return plan;
        }
        let mut owned: Vec<Field>;
        let fields: &[Field] = match fields {
            Some(f) => {
                owned = f.to_vec();
                for (i, fl) in owned.iter_mut().enumerate() {
                    if let Some(fmt) = match formats.len() {
                        0 => None,
                        1 => Some(formats[0]),
                        _ => formats.get(i).copied(),
                    } {
                        fl.format = fmt;
                    }
                }
                &owned
            }
            None => {
                let n = blind.unwrap_or(0);
                owned = (0..n)
                    .map(|i| Field {
                        name: String::new(),
                        table_oid: 0,
                        attnum: 0,
                        // Unknown type: masked values become NULL, detection still runs.
                        type_oid: u32::MAX,
                        format: match formats.len() {
                            0 => 0,
                            1 => formats[0],
                            _ => formats.get(i).copied().unwrap_or(0),
                        },
                    })
                    .collect();
                &owned
            }
        };
        let lineage = needs_lineage.then(|| m.gw.masking.lineage_of(info));
        let mut st: Option<Arc<StatementLineage>> = lineage
            .as_ref()
            .and_then(|l| l.statements.get(index))
            .map(|s| Arc::new(s.clone()));
        // A FETCH is planned by its cursor's query, which is this session's state, not the
        // text's: such a plan is not kept.
        let mut keep = true;
        if let Some(cursor) = st.as_ref().and_then(|s| s.fetches.clone()) {
            st = self.cursors.get(&cursor).cloned();
            keep = false;
        }
        let planner = Planner {
            catalog: &catalog,
            lineage: st.as_deref(),
            exempt: &ex.categories,
            exempt_columns: &ex.columns,
        };
        let plan = Arc::new(planner.plan(fields));
        m.after_plan(&plan);
        self.note_exemptions(info, &plan);
        // A plan that found something unknown asked for a catalog read: the next result is
        // planned again, under the catalog that read brings.
        if keep && !plan.stale {
            match needs_lineage {
                true => self.verdicts.keep_plan(info, &inputs, plan.clone()),
                false => self.verdicts.keep_column_plan(&inputs, plan.clone()),
            }
        }
        plan
    }

    /// A ParseComplete, BindComplete or CloseComplete: what its message defined or closed now
    /// holds on the server.
    fn pop_simple(&mut self, is: impl Fn(&Expect) -> bool) -> Verdict {
        if !self.pending.front().is_some_and(is) {
            return Verdict::Forward;
        }
        let ours = match self.pending.pop_front() {
            Some(Expect::Parse { ours, def }) => {
                if let Some((name, p)) = def {
                    self.statements.insert(name, p);
                }
                ours
            }
            Some(Expect::Bind { ours, def }) => {
                if let Some((name, p)) = def {
                    self.portals.insert(name, p);
                }
                ours
            }
            Some(Expect::Close { ours, target }) => {
                match target {
                    Some(t) if t.statement => {
                        self.statements.remove(&t.name);
                    }
                    Some(t) => {
                        self.portals.remove(&t.name);
                    }
                    None => {}
                }
                ours
            }
            _ => false,
        };
        if ours {
            Verdict::Hide
        } else {
            Verdict::Forward
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
            super::codec::put_message(&mut out, b'E', |o| {
                for (k, v) in fields
                    .iter()
                    .filter(|(k, _)| !matches!(k, b'W' | b'F' | b'L' | b'R'))
                {
                    o.put_u8(*k);
                    o.put_slice(v.as_bytes());
                    o.put_u8(0);
                }
                o.put_u8(0);
            });
            return Verdict::Replace(out);
        }
        Verdict::Forward
    }
}

/// The frames that make the upstream raise `code`/`message` as an error of its own, so the
/// client gets a real ErrorResponse and the transaction state stays in step with the upstream.
pub mod refusal {
    use bytes::{BufMut, BytesMut};

    use crate::pg::codec::put_message;

    pub const NAME: &str = "gatehouse_refusal";

    /// `text` as an `E'…'` literal of ASCII only: it reads the same whatever the session's
    /// `standard_conforming_strings` (a plain `'…'` does not: with it off, a backslash in a
    /// quoted table name the reason mentions would end the literal early) and whatever its
    /// `client_encoding`. It holds no `$`, so nothing in it can end the dollar-quoted DO body.
    pub(crate) fn literal(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 3);
        out.push_str("E'");
        for c in text.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                // Not `\'`: the server refuses that in a client-only encoding
                // (`backslash_quote = safe_encoding`), which a refused switch may have left
                // in force for the statement this refusal replaces.
                '\'' => out.push_str("\\x27"),
                '$' => out.push_str("\\u0024"),
                ' '..='~' => out.push(c),
                c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push_str(&format!("\\U{:08x}", c as u32)),
            }
        }
        out.push('\'');
        out
    }

    fn sql(code: &str, message: &str, hint: &str) -> String {
        format!(
            "DO $gh$BEGIN RAISE EXCEPTION USING ERRCODE = {}, MESSAGE = {}, HINT = {}; END$gh$",
            literal(code),
            literal(message),
            literal(hint)
        )
    }

    fn cstring(out: &mut BytesMut, s: &str) {
        out.put_slice(s.as_bytes());
        out.put_u8(0);
    }

    /// A simple Query that fails with the refusal.
    pub fn query(code: &str, message: &str, hint: &str) -> BytesMut {
        let mut out = BytesMut::new();
        put_message(&mut out, b'Q', |o| cstring(o, &sql(code, message, hint)));
        out
    }

    /// Close + Parse + Bind + Execute of a statement that fails with the refusal; the named
    /// statement keeps the client's unnamed one intact.
    pub fn execute(code: &str, message: &str, hint: &str) -> BytesMut {
        let mut out = BytesMut::new();
        put_message(&mut out, b'C', |o| {
            o.put_u8(b'S');
            cstring(o, NAME);
        });
        put_message(&mut out, b'P', |o| {
            cstring(o, NAME);
            cstring(o, &sql(code, message, hint));
            o.put_u16(0);
        });
        put_message(&mut out, b'B', |o| {
            cstring(o, NAME);
            cstring(o, NAME);
            o.put_u16(0);
            o.put_u16(0);
            o.put_u16(0);
        });
        put_message(&mut out, b'E', |o| {
            cstring(o, NAME);
            o.put_u32(0);
        });
        out
    }
}

/// An ErrorResponse or NoticeResponse masked by what the statement it belongs to may
/// have read (see `masking::messages`); one outside any statement is judged as one that
/// may have read anything.
fn message_masked(
    m: &SessionMasking,
    frame: &[u8],
    statement: Option<(Arc<StmtInfo>, usize)>,
) -> Option<BytesMut> {
    let catalog = m.catalog();
    let filled = m.gw.masking.filled_tables(&m.env, &m.database);
    let lineage;
    let taint = match &statement {
        Some((info, _)) => {
            lineage = m.gw.masking.lineage_of(info);
            messages::Taint::of(&catalog, &lineage, &info.sql, &filled)
        }
        None => messages::Taint {
            values: true,
            sql: "",
            inline_code_clean: false,
        },
    };
    messages::error_frame(&m.gw.masking.masker, frame, &m.exempt().categories, &taint)
}

#[cfg(test)]
mod tests {
    #[test]
    fn refusal_literals_read_the_same_in_every_session() {
        use super::refusal::literal;
        assert_eq!(literal("it's"), r"E'it\x27s'");
        assert_eq!(literal(r"a\'b"), r"E'a\\\x27b'");
        assert_eq!(literal("…é"), r"E'\u2026\u00e9'");
        let l = literal("$$gh$gh$ 😀");
        assert!(!l.contains('$'), "{l}");
        assert!(l.ends_with(r"\U0001f600'"), "{l}");
    }

    use super::*;

    use crate::pg::codec::frame;

    fn complete(t: &mut Tracker, tag: &str) {
        let mut b = tag.as_bytes().to_vec();
        b.push(0);
        let f = frame(b'C', &b);
        assert_eq!(t.on_backend(b'C', Some(&f)), Verdict::Forward);
    }

    /// Bind portal `name` of statement `s1` (unless it is bound already), Execute it for `max`
    /// rows and Sync; the upstream sends `max` rows.
    fn execute_piece(t: &mut Tracker, name: &str, max: i32, bind: bool) {
        if bind {
            {
                let b = t.bind_target(&frame(b'B', format!("{name}\0s1\0\0\0\0\0\0\0").as_bytes()));
                t.on_bind(b, Gate::default());
            }
        }
        let mut body = format!("{name}\0").into_bytes();
        body.extend_from_slice(&max.to_be_bytes());
        let e = frame(b'E', &body);
        // As `statement::execute` does: the portal by the name the tracker keys it by.
        let target = t.execute_target(&e);
        let mut exec = Exec::new(target.info);
        exec.portal_name = Some(target.name);
        t.expect_execute(exec);
        t.on_sync();
        if bind {
            assert_eq!(t.on_backend(b'2', None), Verdict::Forward);
        }
        for _ in 0..max {
            assert_eq!(t.on_backend(b'D', None), Verdict::Forward);
        }
    }

    #[test]
    fn a_portal_read_in_pieces_is_one_execution_with_all_its_rows() {
        let mut t = Tracker::default();
        t.on_parse(&frame(b'P', b"s1\0SELECT id FROM t\0\0\0"));
        assert_eq!(t.on_backend(b'1', None), Verdict::Forward);
        // Two pieces of 50 rows (PortalSuspended), then the last 50, inside a transaction.
        execute_piece(&mut t, "C_1", 50, true);
        for _ in 0..2 {
            assert_eq!(t.on_backend(b's', None), Verdict::Forward);
            t.on_backend(b'Z', Some(&frame(b'Z', b"T")));
            assert!(t.completed.is_empty(), "a suspended portal is not finished");
            execute_piece(&mut t, "C_1", 50, false);
        }
        // The last piece's tag counts that piece only.
        complete(&mut t, "SELECT 50");
        t.on_backend(b'Z', Some(&frame(b'Z', b"T")));
        assert_eq!(t.completed.len(), 1);
        assert_eq!(t.completed[0].exec.rows, Some(150));
        assert_eq!(&*t.completed[0].exec.info.sql, "SELECT id FROM t");

        // Closed after one piece: recorded with the rows read.
        execute_piece(&mut t, "C_2", 10, true);
        t.on_backend(b's', None);
        t.on_backend(b'Z', Some(&frame(b'Z', b"T")));
        t.on_close(&frame(b'C', b"PC_2\0"));
        t.on_sync();
        assert_eq!(t.on_backend(b'3', None), Verdict::Forward);
        t.on_backend(b'Z', Some(&frame(b'Z', b"T")));
        assert_eq!(t.completed.len(), 2);
        assert_eq!(t.completed[1].exec.rows, Some(10));

        // Left suspended when the transaction ends: recorded then.
        execute_piece(&mut t, "C_3", 5, true);
        t.on_backend(b's', None);
        t.on_backend(b'Z', Some(&frame(b'Z', b"T")));
        assert_eq!(t.completed.len(), 2);
        t.on_backend(b'Z', Some(&frame(b'Z', b"I")));
        assert_eq!(t.completed.len(), 3);
        assert_eq!(t.completed[2].exec.rows, Some(5));

        // Still suspended when the connection ends: the relay asks for it.
        execute_piece(&mut t, "C_4", 3, true);
        t.on_backend(b's', None);
        t.finish_suspended();
        assert_eq!(t.completed.len(), 4);
        assert_eq!(t.completed[3].exec.rows, Some(3));
    }

    /// A name redefined in an unanswered earlier Sync group is ambiguous; one redefined (or
    /// closed) in the message's own group means that latest definition.
    #[test]
    fn a_name_means_its_latest_definition_in_its_own_group() {
        let sql_of = |t: &Tracker| t.bind_target(&frame(b'B', b"\0s1\0\0\0\0\0\0\0"));
        let mut t = Tracker::default();
        t.on_parse(&frame(b'P', b"s1\0DROP TABLE t\0\0\0"));
        assert_eq!(t.on_backend(b'1', None), Verdict::Forward);
        // Redefined in a group still unanswered (the server refuses a Parse of a name in use).
        t.on_parse(&frame(b'P', b"s1\0SELECT 1\0\0\0"));
        t.on_sync();
        let b = sql_of(&t);
        assert!(matches!(b.unreadable, Some(Unreadable::Ambiguous { .. })));
        // Closed and defined again in this group: that definition, whatever came before.
        t.on_close(&frame(b'C', b"Ss1\0"));
        let b = sql_of(&t);
        assert!(matches!(b.unreadable, Some(Unreadable::Unknown { .. })));
        t.on_parse(&frame(b'P', b"s1\0SELECT 2\0\0\0"));
        let b = sql_of(&t);
        assert!(b.unreadable.is_none());
        assert_eq!(&*b.info.sql, "SELECT 2");
        // Portals alike.
        t.on_bind(b, Gate::default());
        let e = t.execute_target(&frame(b'E', b"\0\0\0\0\0"));
        assert_eq!(&*e.info.sql, "SELECT 2");
        t.on_close(&frame(b'C', b"P\0"));
        let e = t.execute_target(&frame(b'E', b"\0\0\0\0\0"));
        assert!(matches!(
            e.unreadable,
            Some(Unreadable::Unknown { portal: true, .. })
        ));
    }

    /// A RowDescription's bytes: one text column `name` of table `table_oid`.
    fn description_frame(name: &str, table_oid: u32) -> Vec<u8> {
        let mut b = 1i16.to_be_bytes().to_vec();
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.extend_from_slice(&table_oid.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&25u32.to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        frame(b'T', &b)
    }

    /// A portal described again with the same bytes shares the fields read before; any
    /// byte that differs (here only the table) is read anew.
    #[test]
    fn a_description_is_read_again_unless_its_bytes_are_the_same() {
        let mut t = Tracker::default();
        t.on_parse(&frame(b'P', b"s1\0SELECT email FROM t\0\0\0"));
        assert_eq!(t.on_backend(b'1', None), Verdict::Forward);
        let describe = |t: &mut Tracker, f: &[u8]| {
            let b = t.bind_target(&frame(b'B', b"\0s1\0\0\0\0\0\0\0"));
            t.on_bind(b, Gate::default());
            t.on_describe(&frame(b'D', b"P\0"));
            t.on_sync();
            assert_eq!(t.on_backend(b'2', None), Verdict::Forward);
            assert_eq!(t.on_backend(b'T', Some(f)), Verdict::Forward);
            t.on_backend(b'Z', Some(&frame(b'Z', b"I")));
            t.portals[""].fields.get().cloned().expect("described")
        };
        let first = describe(&mut t, &description_frame("email", 16384));
        let same = describe(&mut t, &description_frame("email", 16384));
        assert!(Arc::ptr_eq(&first, &same));
        let other = describe(&mut t, &description_frame("email", 16390));
        assert_eq!(other[0].table_oid, 16390);
        assert_eq!(other[0].name, "email");
    }

    #[test]
    fn extended_pipeline_with_an_error_skips_to_sync() {
        let mut t = Tracker::default();
        t.on_parse(&frame(b'P', b"s1\0INSERT INTO t VALUES ($1)\0\0\0"));
        {
            let b = t.bind_target(&frame(b'B', b"\0s1\0\0\0\0\0\0\0"));
            t.on_bind(b, Gate::default());
        }
        let info = t.execute_target(&frame(b'E', b"\0\0\0\0\0")).info;
        assert!(info.may_write && info.sql.starts_with("INSERT"));
        t.expect_execute(Exec::new(info));
        t.on_sync();
        {
            let b = t.bind_target(&frame(b'B', b"\0s1\0\0\0\0\0\0\0"));
            t.on_bind(b, Gate::default());
        }
        let info = t.execute_target(&frame(b'E', b"\0\0\0\0\0")).info;
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
        {
            let b = t.bind_target(&frame(b'B', b"\0\0\0\0\0\0\0\0"));
            t.on_bind(b, Gate::default());
        }
        let mut exec = Exec::new(t.execute_target(&frame(b'E', b"\0\0\0\0\0")).info);
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

    /// Text beyond ASCII is read only while nothing unanswered may switch the encoding: behind
    /// a running statement it is refused (in a Query, and in a Parse, whose Bind then is);
    /// behind a BEGIN, or once the statement ahead is answered, it is read as usual.
    #[test]
    fn non_ascii_text_behind_a_running_statement_is_not_read() {
        let mut t = Tracker::default();
        let switch = t
            .query_info(&frame(b'Q', b"DO $$BEGIN PERFORM f(); END$$\0"))
            .unwrap();
        t.expect_query(Exec::new(switch));
        let hidden = "SELECT E'\u{c1}\\'; DROP TABLE victim; --'\0";
        assert_eq!(
            t.query_info(&frame(b'Q', hidden.as_bytes())).err(),
            Some(Unreadable::EncodingInFlux)
        );
        assert!(t.query_info(&frame(b'Q', b"SELECT 'plain'\0")).is_ok());
        let parse = [b"\0".as_slice(), hidden.as_bytes(), b"\0\0"].concat();
        t.on_parse(&frame(b'P', &parse));
        let bound = t.bind_target(&frame(b'B', b"\0\0\0\0\0\0\0\0"));
        assert_eq!(bound.unreadable, Some(Unreadable::EncodingInFlux));
        // Names too: a Bind or Execute naming a statement or portal beyond ASCII, and a Parse
        // defining one, whatever the text.
        let named = frame(b'B', "\u{c1}\\\0s\0\0\0\0\0\0\0".as_bytes());
        assert_eq!(
            t.bind_target(&named).unreadable,
            Some(Unreadable::EncodingInFlux)
        );
        let exec = frame(b'E', "\u{c1}\\\0\0\0\0\0".as_bytes());
        assert_eq!(
            t.execute_target(&exec).unreadable,
            Some(Unreadable::EncodingInFlux)
        );
        t.on_parse(&frame(b'P', "\u{c1}\0SELECT 1\0\0\0".as_bytes()));
        let uses = frame(b'B', "\0\u{c1}\0\0\0\0\0\0\0".as_bytes());
        assert_eq!(
            t.bind_target(&uses).unreadable,
            Some(Unreadable::EncodingInFlux)
        );
        assert_eq!(t.reading(), None);
        t.on_backend(b'C', Some(&frame(b'C', b"DO\0")));
        t.on_backend(b'Z', Some(&frame(b'Z', b"I")));
        t.on_backend(b'1', None);
        assert!(t.query_info(&frame(b'Q', hidden.as_bytes())).is_ok());

        let mut t = Tracker::default();
        let begin = t.query_info(&frame(b'Q', b"BEGIN\0")).unwrap();
        t.expect_query(Exec::new(begin));
        assert!(t.query_info(&frame(b'Q', hidden.as_bytes())).is_ok());
        let both = t.query_info(&frame(b'Q', b"BEGIN; SELECT f()\0")).unwrap();
        t.expect_query(Exec::new(both));
        assert!(t.query_info(&frame(b'Q', hidden.as_bytes())).is_err());
    }

    #[test]
    fn simple_query_rows_and_errors() {
        let mut t = Tracker::default();
        let info = Tracker::default()
            .query_info(&frame(b'Q', b"SELECT 1; SELECT 2\0"))
            .unwrap();
        assert!(!info.may_write);
        t.expect_query(Exec::new(info));
        t.on_backend(b'T', None);
        t.on_backend(b'D', None);
        complete(&mut t, "SELECT 1");
        t.on_backend(b'Z', Some(&frame(b'Z', b"I")));
        assert_eq!(t.completed[0].exec.rows, Some(1));
        assert!(refusal::query("42501", "it's denied", "ask").len() > 20);
    }

    proptest::proptest! {
        /// Whatever a client sends, the tracker decides on some text or an explicit refusal:
        /// never a panic, and never an empty statement standing for bytes it could not read.
        #[test]
        fn client_frames_are_read_or_refused(
            frames in proptest::collection::vec(
                (proptest::sample::select(vec![b'Q', b'P', b'B', b'E', b'D', b'C', b'S']),
                 proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b's', b'S', b'P', 0xe9, 0xff, b'x', b';', b'\'']), 0..24)),
                0..12),
            latin1 in proptest::bool::ANY,
        ) {
            let mut t = Tracker::default();
            if latin1 {
                t.encoding = crate::pg::encoding::ClientEncoding::AsciiSafe;
            }
            for (tag, body) in &frames {
                let f = frame(*tag, body);
                match tag {
                    b'Q' => {
                        let terminated = body.contains(&0);
                        let text_bytes = body.split(|&b| b == 0).next().unwrap_or_default();
                        match t.query_info(&f) {
                            Ok(info) => proptest::prop_assert!(
                                terminated && info.sql.is_empty() == text_bytes.is_empty()
                            ),
                            Err(Unreadable::Malformed) => proptest::prop_assert!(!terminated),
                            Err(_) => proptest::prop_assert!(!latin1),
                        }
                    }
                    b'P' => {
                        t.on_parse(&f);
                    }
                    b'B' => {
                        let b = t.bind_target(&f);
                        t.on_bind(b, Gate::default());
                    }
                    b'E' => {
                        let target = t.execute_target(&f);
                        proptest::prop_assert!(target.portal.is_some() || target.unreadable.is_some());
                    }
                    b'D' => t.on_describe(&f),
                    b'C' => t.on_close(&f),
                    _ => t.on_sync(),
                }
            }
            for tag in [b'1', b'2', b'3', b'E', b'Z'] {
                let _ = t.on_backend(tag, Some(&frame(tag, b"I\0")));
            }
        }
    }
}
