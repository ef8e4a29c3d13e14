//! Personal-data masking: personal data never leaves the gateway unmasked for an identity
//! without an exemption, and nobody has to write a masking rule first.
//!
//! - `detect.rs` — value detectors with checksums, and spans inside free text.
//! - `names.rs` — column-name heuristics.
//! - `catalog.rs` — an environment's tables and columns with their sensitivity tags.
//! - `lineage.rs` — which source columns each result column derives from (sqlparser).
//! - `plan.rs` — per result set: pass, mask, detect or NULL, column by column.
//! - `mask.rs` — format-preserving masks and the keyed-hash mode.
//! - `rewrite.rs` — DataRow, COPY rows and error fields rewritten on the wire.
//! - `exemptions.rs` — who may see which category where, and until when.
//!
//! [`Masking`] (this file) is the state shared by sessions: the current catalog of each
//! environment/database, the lineage cache (one parse per statement shape) and the exemptions.
//!
//! Architecture invariant: pure code; no I/O, no knowledge of the wire protocol beyond the
//! message layouts `rewrite.rs` edits. The catalog is read from the upstream by `pg::catalog`.

pub mod catalog;
pub mod code;
pub mod detect;
pub mod exemptions;
pub mod lineage;
pub mod mask;
pub mod messages;
pub mod names;
pub mod plan;
pub mod rewrite;

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lru::LruCache;

pub use catalog::Catalog;
pub use detect::Category;
pub use exemptions::{ColumnExemption, Exemption};
pub use lineage::{Lineage, Touch};
pub use mask::{Masker, Mode};

/// How long a catalog is trusted before a session triggers a re-read in the background.
pub const CATALOG_MAX_AGE: Duration = Duration::from_secs(600);
/// After a failed read, how long before the next attempt.
const CATALOG_RETRY: Duration = Duration::from_secs(30);
const LINEAGE_CACHE: usize = 4096;
const MAX_CACHED_KEY: usize = 16 * 1024;

/// A relation the catalog does not know starts a read, unless a read in this long already
/// looked for it: a temporary table is never in the catalog, and a session reading one in a
/// loop must not read the whole catalog each time.
pub const UNKNOWN_RELATION_RETRY: Duration = Duration::from_secs(60);
/// And never more than one such read this often, whatever relations are named.
pub const UNKNOWN_RELATION_READ_INTERVAL: Duration = Duration::from_secs(1);
const MAX_TRIED: usize = 4096;

#[derive(Default)]
struct Slot {
    catalog: Option<Arc<Catalog>>,
    loaded: Option<Instant>,
    loading: bool,
    failed: Option<Instant>,
    /// When the read in progress (or the last one) started.
    read_started: Option<Instant>,
    /// Schema changes seen through the gateway, and when: a read that started before one may
    /// hold the relation's old identity, so the change is applied to its result again.
    invalidated: Vec<(Instant, Touch)>,
    /// A schema change arrived during a read: read once more when it ends.
    again: bool,
    /// When a result naming an unknown relation last started a read.
    unknown_read: Option<Instant>,
    /// Unknown relations (`oid:…`, `name:…`) reads were started for, and when.
    tried: HashMap<String, Instant>,
}

/// Why a session asks for the catalog to be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadReason<'a> {
    /// A schema change went through the gateway (and its transaction ended).
    SchemaChange,
    /// A result named these relations (or columns of them) the catalog does not know.
    UnknownRelation(&'a BTreeSet<String>),
}

/// The masking state shared by every session.
pub struct Masking {
    pub masker: Masker,
    catalogs: Mutex<HashMap<(String, String), Slot>>,
    lineage: Mutex<LruCache<String, Arc<Lineage>>>,
    exemptions: RwLock<Arc<Vec<Exemption>>>,
    /// Bumped whenever the exemptions change, so sessions can keep what they were exempt from.
    exemptions_generation: AtomicU64,
    overrides: RwLock<Arc<Vec<catalog::Override>>>,
    empty: Arc<Catalog>,
    /// Bumped whenever a catalog changes, so sessions can keep theirs until then.
    generation: AtomicU64,
    /// Columns filled through the gateway from tagged columns, by (environment, database).
    filled: Mutex<HashMap<(String, String), Vec<FilledColumn>>>,
    /// The upstream backends of the gateway's own sessions, by process id, and whether one
    /// of them ran a statement that may send a notification and read personal data.
    senders: Mutex<HashMap<i32, bool>>,
    /// Databases (environment, database) where a statement that read personal data wrote a
    /// large object through the gateway.
    tainted_large_objects: Mutex<BTreeSet<(String, String)>>,
}

/// A column a statement through the gateway filled from tagged columns (`CREATE TABLE … AS`,
/// `INSERT INTO … SELECT`): its values are what those columns held, whatever it is called,
/// so every catalog read from then on gives it their category. Kept with the catalog in the
/// store, so a restarted gateway remembers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilledColumn {
    pub table: String,
    /// By name, or (`None`) by position among the relation's columns.
    pub column: Option<String>,
    pub position: usize,
    pub category: Category,
    /// Filled from something of unknown origin (a temporary table): tagged `free_text`, and
    /// only if its type is text-like (its ids and amounts are no one's name).
    pub text_only: bool,
}

const MAX_FILLED: usize = 10_000;

/// What an identity is exempt from, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exempt {
    pub categories: BTreeSet<Category>,
    pub columns: BTreeSet<ColumnExemption>,
}

/// What a session should do about its catalog.
pub enum CatalogNeed {
    /// Use this one.
    Ready(Arc<Catalog>),
    /// Use this one, and re-read it in the background (the caller now owns the reload).
    Refresh(Arc<Catalog>),
    /// None yet: the caller reads it now (and owns the load).
    Load,
    /// None, and someone else is reading it or it failed recently: go on without.
    Wait,
}

impl Masking {
    pub fn new(masker: Masker) -> Masking {
        Masking {
            masker,
            catalogs: Mutex::new(HashMap::new()),
            lineage: Mutex::new(LruCache::new(
                NonZeroUsize::new(LINEAGE_CACHE).unwrap_or(NonZeroUsize::MIN),
            )),
            exemptions: RwLock::new(Arc::new(Vec::new())),
            exemptions_generation: AtomicU64::new(1),
            overrides: RwLock::new(Arc::new(Vec::new())),
            empty: Arc::new(Catalog::empty()),
            generation: AtomicU64::new(1),
            filled: Mutex::new(HashMap::new()),
            senders: Mutex::new(HashMap::new()),
            tainted_large_objects: Mutex::new(BTreeSet::new()),
        }
    }

    /// Changes whenever any catalog (or override) changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The catalog of `env`/`db`, or an empty one (plans then fall back to names and values).
    pub fn catalog_or_empty(&self, env: &str, db: &str) -> Arc<Catalog> {
        self.catalog(env, db).unwrap_or_else(|| self.empty.clone())
    }

    fn key(env: &str, db: &str) -> (String, String) {
        (env.to_string(), db.to_string())
    }

    /// The catalog of `env`/`db` if one has been read.
    pub fn catalog(&self, env: &str, db: &str) -> Option<Arc<Catalog>> {
        let map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&Self::key(env, db)).and_then(|s| s.catalog.clone())
    }

    /// Every catalog read so far, by (environment, database).
    pub fn catalogs_of(&self, env: &str) -> Vec<(String, Arc<Catalog>)> {
        let map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|((e, _), _)| e == env)
            .filter_map(|((_, d), s)| s.catalog.clone().map(|c| (d.clone(), c)))
            .collect()
    }

    /// Whether the caller should read the catalog (and marks it as being read if so).
    pub fn need(&self, env: &str, db: &str, force: bool) -> CatalogNeed {
        let mut map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry(Self::key(env, db)).or_default();
        let stale = slot.loaded.is_none_or(|t| t.elapsed() > CATALOG_MAX_AGE) || force;
        let may_try = !slot.loading
            && slot
                .failed
                .is_none_or(|t| t.elapsed() > CATALOG_RETRY || force);
        match (&slot.catalog, stale && may_try) {
            (Some(c), false) => CatalogNeed::Ready(c.clone()),
            (Some(c), true) => {
                slot.loading = true;
                slot.read_started = Some(Instant::now());
                CatalogNeed::Refresh(c.clone())
            }
            (None, true) => {
                slot.loading = true;
                slot.read_started = Some(Instant::now());
                CatalogNeed::Load
            }
            (None, false) => CatalogNeed::Wait,
        }
    }

    /// Stores a freshly read catalog (overrides applied), or records the failure.
    pub fn loaded(&self, env: &str, db: &str, result: Option<Catalog>) -> Option<Arc<Catalog>> {
        let mut map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry(Self::key(env, db)).or_default();
        slot.loading = false;
        match result {
            Some(mut c) => {
                // The read applied the overrides of when it finished reading; one an admin set
                // since then went only to the catalog this replaces. Applied again under the
                // lock `set_overrides` takes after changing them, so neither misses the other.
                c.apply_overrides(&self.overrides_for(env));
                // Schema changes seen since this read started: the read may predate them (or
                // their transaction's commit), so what they touched stays unknown until the
                // next read, which starts at once.
                let started = slot.read_started;
                slot.invalidated
                    .retain(|(at, _)| started.is_none_or(|s| *at >= s));
                for (_, touch) in &slot.invalidated {
                    c = c.without(touch);
                }
                if !slot.invalidated.is_empty() {
                    slot.again = true;
                }
                let filled = self
                    .filled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&Self::key(env, db))
                    .cloned()
                    .unwrap_or_default();
                c.tag_filled(&filled);
                let c = Arc::new(c);
                slot.catalog = Some(c.clone());
                slot.loaded = Some(Instant::now());
                slot.failed = None;
                self.generation.fetch_add(1, Ordering::AcqRel);
                Some(c)
            }
            None => {
                slot.failed = Some(Instant::now());
                slot.catalog.clone()
            }
        }
    }

    /// A schema change touched these relations: they leave the catalog at once (results from
    /// them are masked as unknown) until a read that started after the change brings them back.
    pub fn invalidate(&self, env: &str, db: &str, touch: &Touch) {
        let mut map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry(Self::key(env, db)).or_default();
        if let Some(c) = &slot.catalog {
            slot.catalog = Some(Arc::new(c.without(touch)));
        }
        slot.invalidated.push((Instant::now(), touch.clone()));
        // Stale until read again: if the session that made the change goes away before its
        // transaction ends (so never asks for the read), the next session or the periodic
        // refresh does.
        slot.loaded = None;
        // Bounded: a long migration through one connection cannot grow this without limit.
        if slot.invalidated.len() > 256 {
            slot.invalidated.drain(..128);
            slot.invalidated.push((Instant::now(), Touch::Everything));
        }
        if slot.loading {
            slot.again = true;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the caller should read the catalog now (and marks it as being read if so).
    /// A schema change always gets a read (after the one in progress, if any); an unknown
    /// relation at most every [`UNKNOWN_RELATION_READ_INTERVAL`].
    pub fn want_read(&self, env: &str, db: &str, why: ReadReason) -> bool {
        let mut map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry(Self::key(env, db)).or_default();
        if slot.loading {
            if why == ReadReason::SchemaChange {
                slot.again = true;
            }
            return false;
        }
        if let ReadReason::UnknownRelation(unknown) = why {
            slot.tried
                .retain(|_, at| at.elapsed() < UNKNOWN_RELATION_RETRY);
            let new = unknown.iter().any(|u| !slot.tried.contains_key(u));
            if !new
                || slot
                    .unknown_read
                    .is_some_and(|t| t.elapsed() < UNKNOWN_RELATION_READ_INTERVAL)
            {
                return false;
            }
            if slot.tried.len() + unknown.len() > MAX_TRIED {
                slot.tried.clear();
            }
            let now = Instant::now();
            slot.tried.extend(unknown.iter().map(|u| (u.clone(), now)));
            slot.unknown_read = Some(now);
        }
        slot.loading = true;
        slot.again = false;
        slot.read_started = Some(Instant::now());
        true
    }

    /// Columns filled from tagged ones through the gateway: remembered (bounded) and applied
    /// to every catalog read from now on, the one that will first see the relation included.
    pub fn note_filled(&self, env: &str, db: &str, columns: Vec<FilledColumn>) {
        if columns.is_empty() {
            return;
        }
        let mut map = self.filled.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(Self::key(env, db)).or_default();
        for c in columns {
            if !list.contains(&c) {
                list.push(c);
            }
        }
        if list.len() > MAX_FILLED {
            let excess = list.len() - MAX_FILLED;
            list.drain(..excess);
        }
        let list = list.clone();
        drop(map);
        // An existing relation filled again (INSERT … SELECT) is masked by it at once.
        let mut catalogs = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = catalogs.get_mut(&Self::key(env, db)) {
            if let Some(c) = &slot.catalog {
                let mut c = (**c).clone();
                c.tag_filled(&list);
                slot.catalog = Some(Arc::new(c));
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// A session of the gateway's own reaches the upstream backend `pid`.
    pub fn sender_opened(&self, pid: i32) {
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, false);
    }

    pub fn sender_closed(&self, pid: i32) {
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid);
    }

    /// The backend `pid` ran a statement that may send a notification and read personal data:
    /// what it sends is masked whole from now on.
    pub fn sender_tainted(&self, pid: i32) {
        if let Some(t) = self
            .senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&pid)
        {
            *t = true;
        }
    }

    /// Whether a notification from backend `pid` comes from a session of the gateway's own
    /// whose statements that may send one read nothing personal. Any other sender (a
    /// connection that does not go through the gateway, a session gone) is unknown.
    pub fn sender_clean(&self, pid: i32) -> bool {
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
            .is_some_and(|tainted| !tainted)
    }

    /// A statement that read personal data wrote a large object in `env`/`db`: any large
    /// object read there through the fast path may hold it.
    pub fn large_objects_tainted(&self, env: &str, db: &str) {
        self.tainted_large_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Self::key(env, db));
    }

    pub fn large_objects_are_tainted(&self, env: &str, db: &str) -> bool {
        self.tainted_large_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&Self::key(env, db))
    }

    /// The relations seen filled from tagged columns in `env`/`db`.
    pub fn filled_tables(&self, env: &str, db: &str) -> BTreeSet<String> {
        self.filled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&Self::key(env, db))
            .map(|cols| cols.iter().map(|c| c.table.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether a read of this catalog is under way.
    pub fn loading(&self, env: &str, db: &str) -> bool {
        let map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&Self::key(env, db)).is_some_and(|s| s.loading)
    }

    /// After a read: whether another one is due at once (a schema change arrived during it);
    /// if so the caller now owns that read.
    pub fn read_again(&self, env: &str, db: &str) -> bool {
        let mut map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry(Self::key(env, db)).or_default();
        if !slot.again || slot.loading {
            return false;
        }
        slot.again = false;
        slot.loading = true;
        slot.read_started = Some(Instant::now());
        true
    }

    /// Installs a catalog the store kept, at startup. It counts as stale, so the first session
    /// to reach the database reads it again in the background while masking by this one.
    pub fn restore(&self, env: &str, db: &str, catalog: Catalog) {
        self.note_filled(env, db, catalog.filled.clone());
        let mut map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry(Self::key(env, db)).or_default();
        slot.catalog = Some(Arc::new(catalog));
        slot.loaded = None;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The (environment, database) pairs whose catalog is older than [`CATALOG_MAX_AGE`] (or
    /// restored from the store) and not being read: what the periodic refresh reads again.
    pub fn stale_catalogs(&self) -> Vec<(String, String)> {
        let map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, s)| {
                s.catalog.is_some()
                    && !s.loading
                    && s.loaded.is_none_or(|t| t.elapsed() > CATALOG_MAX_AGE)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Re-applies the admin overrides to every catalog in memory (after one changed).
    pub fn set_overrides(&self, overrides: Vec<catalog::Override>) {
        let overrides = Arc::new(overrides);
        *self.overrides.write().unwrap_or_else(|p| p.into_inner()) = overrides.clone();
        let mut map = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        for ((env, _), slot) in map.iter_mut() {
            if let Some(c) = &slot.catalog {
                slot.catalog = Some(Arc::new(c.with_overrides(&self.overrides_for(env))));
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The admin overrides of one environment.
    pub fn overrides_for(&self, env: &str) -> Vec<catalog::Override> {
        self.overrides
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|o| o.environment == env)
            .cloned()
            .collect()
    }

    pub fn set_exemptions(&self, list: Vec<Exemption>) {
        *self.exemptions.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(list);
        self.exemptions_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Changes whenever the exemptions do: what [`Masking::exempt_until`] answered holds until
    /// then, or until the time it gave.
    pub fn exemptions_generation(&self) -> u64 {
        self.exemptions_generation.load(Ordering::Acquire)
    }

    /// What `groups` are exempt from in `env` right now. Sessions ask at each result, so an
    /// exemption that expired or was deleted stops at once on open connections too.
    pub fn exempt(&self, env: &str, groups: &[String]) -> Exempt {
        self.exempt_until(env, groups).0
    }

    /// [`Masking::exempt`], and the first moment the answer may change without the exemptions
    /// changing: the earliest expiry among those that apply (`None`: none expires).
    pub fn exempt_until(
        &self,
        env: &str,
        groups: &[String],
    ) -> (Exempt, Option<chrono::DateTime<chrono::Utc>>) {
        let list = self
            .exemptions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let now = chrono::Utc::now();
        let mut out = Exempt::default();
        let mut until = None;
        for e in list.iter().filter(|e| e.applies(env, groups, now)) {
            if let Some(c) = e.category {
                out.categories.insert(c);
            }
            if let Some(c) = e.column.as_deref().and_then(ColumnExemption::parse) {
                out.columns.insert(c);
            }
            if let Some(t) = e.expires_at {
                until = Some(until.map_or(t, |u: chrono::DateTime<chrono::Utc>| u.min(t)));
            }
        }
        (out, until)
    }

    /// Whether every statement with `stmt`'s shape key has its lineage: otherwise the literals
    /// matter and it is analysed by its exact text. Split differently under
    /// standard_conforming_strings = off: by the text. COPY's options are literals
    /// (`DELIMITER ';'`) the shape key leaves out, yet they decide how its rows are read: a
    /// plan made for one delimiter must never serve another. So is the name
    /// `current_setting` reads (a custom setting or one of PostgreSQL's own).
    pub fn lineage_by_shape(stmt: &crate::sql::Statement) -> bool {
        !stmt.backslash_string
            && !stmt.kinds.iter().any(|k| k == "COPY")
            && !stmt.mentions(crate::sql::Word::CurrentSetting)
    }

    /// The lineage of a statement, parsed once per statement shape (looked up by the shape key
    /// made when the statement arrived).
    pub fn lineage_of(&self, stmt: &crate::sql::Statement) -> Arc<Lineage> {
        let sql: &str = &stmt.sql;
        let key: std::borrow::Cow<'_, str> = if Self::lineage_by_shape(stmt) {
            stmt.shape_key.as_str().into()
        } else {
            format!("\u{0}text\u{0}{sql}").into()
        };
        if key.len() <= MAX_CACHED_KEY {
            let mut c = self.lineage.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = c.get(key.as_ref()) {
                return l.clone();
            }
        }
        let l = Arc::new(lineage::analyse(sql));
        if key.len() <= MAX_CACHED_KEY {
            let mut c = self.lineage.lock().unwrap_or_else(|p| p.into_inner());
            c.put(key.into_owned(), l.clone());
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::masking::catalog::RawColumn;

    fn catalog(tables: &[(u32, &str)]) -> Catalog {
        let raw = tables
            .iter()
            .map(|(oid, name)| RawColumn {
                table_oid: *oid,
                schema: "public".into(),
                table: name.to_string(),
                relkind: "r".into(),
                attnum: 1,
                name: "display".into(),
                type_oid: 25,
                type_name: "text".into(),
                comment: None,
            })
            .collect();
        Catalog::build(raw, &HashMap::new(), &[])
    }

    fn masking() -> Masking {
        Masking::new(Masker::new(Mode::Partial, [7; 32]))
    }

    #[test]
    fn a_schema_change_removes_its_tables_at_once_and_survives_an_older_read() {
        let m = masking();
        m.loaded(
            "app",
            "db",
            Some(catalog(&[(1, "customers"), (2, "orders")])),
        );
        let touch = Touch::Tables(["customers".to_string()].into());
        // A read starts, then the change: the read's result may predate it.
        let unknown: BTreeSet<String> = ["name:x".to_string()].into();
        assert!(m.want_read("app", "db", ReadReason::UnknownRelation(&unknown)));
        m.invalidate("app", "db", &touch);
        let c = m.catalog("app", "db").expect("catalog");
        assert!(!c.knows_name("customers") && c.knows_name("orders"));
        let c = m
            .loaded(
                "app",
                "db",
                Some(catalog(&[(1, "customers"), (2, "orders")])),
            )
            .expect("catalog");
        assert!(
            !c.knows_name("customers"),
            "the older read cannot bring it back"
        );
        // … and another read is due at once, whose result counts.
        assert!(m.read_again("app", "db"));
        let c = m
            .loaded(
                "app",
                "db",
                Some(catalog(&[(3, "customers"), (2, "orders")])),
            )
            .expect("catalog");
        assert!(c.knows_oid(3));
        assert!(!m.read_again("app", "db"));
    }

    /// Sessions keep what they are exempt from until the exemptions change or the earliest
    /// of those that apply expires: both must be told.
    #[test]
    fn an_exemption_answer_says_when_it_stops_holding() {
        let m = masking();
        let now = chrono::Utc::now();
        let exemption = |group: &str, category, expires_at| Exemption {
            id: format!("{group}-{category:?}"),
            group: group.into(),
            environment: "app".into(),
            category: Some(category),
            column: None,
            expires_at,
            reason: None,
            created_by: "admin".into(),
            created_at: now,
        };
        let hour = chrono::Duration::hours(1);
        let groups = ["support".to_string()];
        let before = m.exemptions_generation();
        m.set_exemptions(vec![
            exemption("support", Category::Email, Some(now + hour * 2)),
            exemption("support", Category::PersonName, Some(now + hour)),
            exemption("support", Category::Phone, None),
            // Expired, or another group's: neither counts, nor does its expiry.
            exemption("support", Category::Iban, Some(now - hour)),
            exemption(
                "sales",
                Category::NationalId,
                Some(now + chrono::Duration::minutes(1)),
            ),
        ]);
        assert_ne!(m.exemptions_generation(), before);
        let (exempt, until) = m.exempt_until("app", &groups);
        assert_eq!(
            exempt.categories,
            [Category::Email, Category::PersonName, Category::Phone].into()
        );
        assert_eq!(until, Some(now + hour));
        m.set_exemptions(vec![exemption("support", Category::Phone, None)]);
        assert_eq!(m.exempt_until("app", &groups).1, None);
    }

    /// A read builds its catalog with the overrides of its start; an admin's tag set while it
    /// was being built must not be lost when the read is installed.
    #[test]
    fn an_override_set_during_a_read_holds_in_what_the_read_installs() {
        let m = masking();
        m.loaded("app", "db", Some(catalog(&[(1, "customers")])));
        assert!(m.want_read("app", "db", ReadReason::SchemaChange));
        // The read took the overrides (none), then the admin tagged the column...
        let built_before = catalog(&[(1, "customers")]);
        m.set_overrides(vec![catalog::Override {
            environment: "app".into(),
            schema: "public".into(),
            table: "customers".into(),
            column: "display".into(),
            category: Some(Category::PersonName),
            set_by: "admin".into(),
            set_at: chrono::Utc::now(),
        }]);
        // ...and then the read finished.
        let c = m.loaded("app", "db", Some(built_before)).expect("catalog");
        let tag = c.column(1, 1).and_then(|c| c.category);
        assert_eq!(tag, Some(Category::PersonName));
        assert_eq!(
            c.column(1, 1).map(|c| c.source),
            Some(catalog::TagSource::Override)
        );
    }

    #[test]
    fn filled_columns_keep_their_tags_in_every_read() {
        let m = masking();
        m.loaded("app", "db", Some(catalog(&[(1, "archive")])));
        let filled = |text_only| FilledColumn {
            table: "archive".into(),
            column: None,
            position: 0,
            category: Category::PersonName,
            text_only,
        };
        m.note_filled("app", "db", vec![filled(false)]);
        let tag = |c: &Catalog| c.column(1, 1).and_then(|c| c.category);
        let now = m.catalog("app", "db").expect("catalog");
        assert_eq!(tag(&now), Some(Category::PersonName), "at once");
        let later = m
            .loaded("app", "db", Some(catalog(&[(1, "archive")])))
            .expect("catalog");
        assert_eq!(tag(&later), Some(Category::PersonName), "and after a read");
        // A restarted gateway restores the catalog the store kept, and with it what was filled.
        let restarted = masking();
        let stored = Catalog::from_stored_json(&later.to_stored_json(), &[]).expect("stored");
        restarted.restore("app", "db", stored);
        let reread = restarted
            .loaded("app", "db", Some(catalog(&[(1, "archive")])))
            .expect("catalog");
        assert_eq!(
            tag(&reread),
            Some(Category::PersonName),
            "and after a restart and a read"
        );
    }

    #[test]
    fn unknown_relations_do_not_read_the_catalog_in_a_loop() {
        let m = masking();
        m.loaded("app", "db", Some(catalog(&[(1, "customers")])));
        let temp: BTreeSet<String> = ["oid:900000".to_string()].into();
        let fresh: BTreeSet<String> = ["oid:900001".to_string()].into();
        assert!(m.want_read("app", "db", ReadReason::UnknownRelation(&temp)));
        assert!(
            !m.want_read("app", "db", ReadReason::UnknownRelation(&fresh)),
            "one at a time"
        );
        m.loaded("app", "db", Some(catalog(&[(1, "customers")])));
        assert!(
            !m.want_read("app", "db", ReadReason::UnknownRelation(&temp)),
            "a temporary table is never in the catalog: not looked for again so soon"
        );
        std::thread::sleep(UNKNOWN_RELATION_READ_INTERVAL);
        assert!(
            m.want_read("app", "db", ReadReason::UnknownRelation(&fresh)),
            "a relation no read has looked for yet is"
        );
        m.loaded("app", "db", Some(catalog(&[(1, "customers")])));
        assert!(m.want_read("app", "db", ReadReason::SchemaChange));
    }
}
