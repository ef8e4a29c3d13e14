//! Reading an environment's catalog for masking: relations, columns, types, comments, view
//! definitions, and a bounded sample of values of each text-like column, over a short-lived
//! read-only upstream connection of the gateway's own.
//!
//! Sessions call [`ensure`] when they start: the first session of an environment/database waits
//! (bounded) for the read; later ones use the stored catalog and, when it is old, trigger a
//! re-read in the background.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;

use super::codec;
use super::upstream::{self, UpstreamTarget};
use super::wire::error_fields;
use crate::gateway::Gateway;
use crate::masking::catalog::{Catalog, RawColumn};
use crate::masking::code::UserCode;
use crate::masking::plan::{type_kind, TypeKind};
use crate::masking::{CatalogNeed, ReadReason};

/// Values sampled per text-like column.
pub const SAMPLE_ROWS: usize = 50;
/// Tables sampled per read (the rest are tagged from names and comments only).
const SAMPLE_TABLES: usize = 500;
const CATALOG_SQL: &str = "SELECT c.oid, n.nspname, c.relname, c.relkind, a.attnum, a.attname, \
a.atttypid, format_type(a.atttypid, a.atttypmod), col_description(c.oid, a.attnum), \
CASE WHEN c.relkind IN ('v','m') THEN pg_get_viewdef(c.oid) END \
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_attribute a ON a.attrelid = c.oid \
WHERE c.relkind IN ('r','v','m','f','p') AND a.attnum > 0 AND NOT a.attisdropped \
AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
AND n.nspname NOT LIKE 'pg\\_temp%' \
ORDER BY c.oid, a.attnum LIMIT 50000";

/// A relation's oid, schema, name, and the text-like columns (attnum, name) to sample.
type TableToSample = (u32, String, String, Vec<(i16, String)>);

/// What a catalog read returns.
pub struct CatalogRead {
    pub columns: Vec<RawColumn>,
    /// Sampled values by (oid, attnum).
    pub samples: HashMap<(u32, i16), Vec<String>>,
    /// View definitions by oid.
    pub views: HashMap<u32, String>,
    /// The functions and operators the database defines besides PostgreSQL's own.
    pub code: UserCode,
}

/// Functions and operators outside PostgreSQL's own schemas, and whether an extension
/// installed them (see `masking::code`), temporary ones of every session included; and the
/// relations with triggers of their own.
const CODE_SQL: &str = "SELECT 'f', p.proname, EXISTS (SELECT 1 FROM pg_depend d \
WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') \
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
UNION ALL SELECT 'o', o.oprname, EXISTS (SELECT 1 FROM pg_depend d \
WHERE d.classid = 'pg_operator'::regclass AND d.objid = o.oid AND d.deptype = 'e') \
FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace \
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
UNION ALL SELECT DISTINCT 't', c.relname, false FROM pg_trigger t \
JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal LIMIT 200000";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot reach the upstream: {0}")]
    Connect(#[from] upstream::UpstreamError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the upstream refused the catalog query: {0}")]
    Query(String),
    #[error("unexpected reply: {0}")]
    Protocol(String),
    #[error("timed out")]
    Timeout,
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Sends one simple Query and collects its rows as text.
async fn query(
    stream: &mut super::stream::PgStream,
    buf: &mut BytesMut,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, CatalogError> {
    let mut out = BytesMut::new();
    codec::put_message(&mut out, b'Q', |o| {
        o.put_slice(sql.as_bytes());
        o.put_u8(0);
    });
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let frame = codec::read_frame(stream, buf, 64 << 20)
            .await
            .map_err(|e| CatalogError::Protocol(e.to_string()))?;
        match frame[0] {
            b'D' => {
                let values = super::wire::data_row(&frame)
                    .ok_or_else(|| CatalogError::Protocol("malformed DataRow".into()))?;
                rows.push(
                    values
                        .into_iter()
                        .map(|v| v.map(|v| String::from_utf8_lossy(v).into_owned()))
                        .collect(),
                );
            }
            b'E' => {
                error = error_fields(&frame)
                    .into_iter()
                    .find(|(k, _)| *k == b'M')
                    .map(|(_, v)| v);
            }
            b'Z' => break,
            _ => {}
        }
    }
    match error {
        Some(e) => Err(CatalogError::Query(e)),
        None => Ok(rows),
    }
}

/// Reads the catalog of `database` in the environment `target` points at.
pub async fn read(
    target: &UpstreamTarget,
    database: &str,
    timeout: Duration,
) -> Result<CatalogRead, CatalogError> {
    let params = vec![
        (
            "application_name".to_string(),
            "gatehouse:catalog".to_string(),
        ),
        (
            "default_transaction_read_only".to_string(),
            "on".to_string(),
        ),
        ("statement_timeout".to_string(), "5000".to_string()),
        ("database".to_string(), database.to_string()),
    ];
    let conn = upstream::connect(target, &params, timeout).await?;
    let mut stream = conn.stream;
    let mut buf = BytesMut::new();
    let work = async {
        let rows = query(&mut stream, &mut buf, CATALOG_SQL).await?;
        let mut raw = Vec::with_capacity(rows.len());
        let mut views = HashMap::new();
        for r in rows {
            let get = |i: usize| r.get(i).cloned().flatten();
            let oid: u32 = get(0).and_then(|v| v.parse().ok()).unwrap_or(0);
            if let Some(def) = get(9) {
                views.insert(oid, def);
            }
            raw.push(RawColumn {
                table_oid: oid,
                schema: get(1).unwrap_or_default(),
                table: get(2).unwrap_or_default(),
                relkind: get(3).unwrap_or_default(),
                attnum: get(4).and_then(|v| v.parse().ok()).unwrap_or(0),
                name: get(5).unwrap_or_default(),
                type_oid: get(6).and_then(|v| v.parse().ok()).unwrap_or(0),
                type_name: get(7).unwrap_or_default(),
                comment: get(8),
            });
        }
        // Sample the text-like columns of each relation with one query per relation.
        let mut by_table: Vec<TableToSample> = Vec::new();
        for r in &raw {
            if !matches!(
                type_kind(r.type_oid),
                TypeKind::Text
                    | TypeKind::Json
                    | TypeKind::Jsonb
                    | TypeKind::TextArray
                    | TypeKind::Other
            ) {
                continue;
            }
            match by_table.last_mut() {
                Some(t) if t.0 == r.table_oid => t.3.push((r.attnum, r.name.clone())),
                _ => by_table.push((
                    r.table_oid,
                    r.schema.clone(),
                    r.table.clone(),
                    vec![(r.attnum, r.name.clone())],
                )),
            }
        }
        let mut samples: HashMap<(u32, i16), Vec<String>> = HashMap::new();
        for (oid, schema, table, cols) in by_table.into_iter().take(SAMPLE_TABLES) {
            let list: Vec<String> = cols
                .iter()
                .map(|(_, c)| format!("{}::text", quote_ident(c)))
                .collect();
            let sql = format!(
                "SELECT {} FROM {}.{} LIMIT {SAMPLE_ROWS}",
                list.join(", "),
                quote_ident(&schema),
                quote_ident(&table)
            );
            // A relation the gateway's role may not read is tagged from names only.
            let Ok(rows) = query(&mut stream, &mut buf, &sql).await else {
                continue;
            };
            for row in rows {
                for ((attnum, _), v) in cols.iter().zip(row) {
                    if let Some(v) = v {
                        samples.entry((oid, *attnum)).or_default().push(v);
                    }
                }
            }
        }
        let mut code = UserCode::default();
        for r in query(&mut stream, &mut buf, CODE_SQL).await? {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            let (kind, name, extension) = (get(0), get(1), get(2) == "t");
            match (kind.as_str(), extension) {
                ("f", false) => code.functions.insert(name),
                ("f", true) => code.extension_functions.insert(name),
                ("t", _) => code.triggered.insert(name),
                (_, false) => code.operators.insert(name),
                (_, true) => false,
            };
        }
        Ok::<_, CatalogError>(CatalogRead {
            columns: raw,
            samples,
            views,
            code,
        })
    };
    let out = tokio::time::timeout(timeout * 4, work)
        .await
        .map_err(|_| CatalogError::Timeout)??;
    let _ = stream.write_all(b"X\0\0\0\x04").await;
    Ok(out)
}

async fn load(
    gw: &Gateway,
    env: &crate::gateway::Environment,
    database: &str,
) -> Option<Arc<Catalog>> {
    let timeout = Duration::from_secs(gw.config.server.upstream_connect_timeout_seconds.max(1));
    let started = std::time::Instant::now();
    let result = match read(&env.target, database, timeout).await {
        Ok(read) => {
            let overrides = gw.masking.overrides_for(&env.name);
            let c = Catalog::build_with_views(
                read.columns,
                &read.samples,
                &read.views,
                &overrides,
                Some(read.code),
            );
            tracing::info!(
                env = %env.name,
                database,
                tables = c.tables.len(),
                ms = started.elapsed().as_millis() as u64,
                "masking catalog read"
            );
            Some(c)
        }
        Err(e) => {
            tracing::warn!(env = %env.name, database, error = %e, "masking catalog could not be read");
            None
        }
    };
    let fresh = result.is_some();
    let catalog = gw.masking.loaded(&env.name, database, result);
    if let (true, Some(c)) = (fresh, &catalog) {
        // Kept so a restarted gateway masks by it at once; losing the copy only costs a re-read.
        let record = crate::store::StoredCatalogRecord {
            environment: env.name.clone(),
            database: database.to_string(),
            json: c.to_stored_json(),
        };
        if let Err(e) = gw
            .store
            .save_masking_catalog(record, c.loaded_at.timestamp())
            .await
        {
            tracing::warn!(env = %env.name, database, error = %e, "cannot keep the masking catalog in the store");
        }
    }
    catalog
}

/// Starts a read of the catalog in the background when the masking state agrees one is due
/// (`why`): after a schema change seen through the gateway, or a result from a relation the
/// catalog does not know. Reads once more while schema changes keep arriving during a read.
/// Needs a tokio runtime; called from the session's (synchronous) result path.
pub fn read_soon(gw: &Arc<Gateway>, env_name: &str, database: &str, why: ReadReason) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Some(env) = gw
        .environments
        .get(env_name)
        .filter(|e| e.reaches(database))
        .cloned()
    else {
        return;
    };
    if !gw.masking.want_read(env_name, database, why) {
        return;
    }
    let (gw, db) = (gw.clone(), database.to_string());
    rt.spawn(async move {
        load(&gw, &env, &db).await;
        settle(&gw, &env, &db).await;
    });
}

/// Reads once more while schema changes arrived during the read just made. Bounded: a long
/// migration costs a few reads more at most; the periodic refresh covers what it leaves.
async fn settle(gw: &Arc<Gateway>, env: &Arc<crate::gateway::Environment>, database: &str) {
    for _ in 0..4 {
        if !gw.masking.read_again(&env.name, database) {
            break;
        }
        load(gw, env, database).await;
    }
}

impl super::tracker::SessionMasking {
    /// After each result's plan: a relation the catalog does not know gets the catalog read
    /// (its rows are masked whole until then).
    pub fn after_plan(&self, plan: &crate::masking::plan::ResultPlan) {
        if plan.stale {
            read_soon(
                &self.gw,
                &self.env,
                &self.database,
                ReadReason::UnknownRelation(&plan.unknown),
            );
        }
    }

    /// A schema change completed in this session: what it touched leaves the catalog at once,
    /// for every session. It is applied again when the transaction ends, and only then is the
    /// catalog read: a read before the commit would still see the old relations.
    pub fn schema_changed(&self, touch: Option<crate::masking::Touch>) {
        let Some(touch) = touch else { return };
        self.gw
            .masking
            .invalidate(&self.env, &self.database, &touch);
        self.schema_changes.push(touch);
    }

    /// A statement filled a relation from a query (`CREATE TABLE … AS`, `INSERT INTO …
    /// SELECT`): the columns it filled from tagged ones keep those tags in every catalog read
    /// from now on, whatever they are called.
    pub fn filled(&self, fill: &crate::masking::lineage::Fill) {
        let catalog = self.catalog();
        let source = &fill.source;
        let planner = crate::masking::plan::Planner {
            catalog: &catalog,
            lineage: Some(source),
            exempt: &Default::default(),
            exempt_columns: &Default::default(),
        };
        let Some(n) = planner.expanded_len() else {
            return;
        };
        // From a relation the catalog does not know (a temporary table): nothing says what its
        // columns held, so the text-like ones are free text.
        let unknown = planner.names_unknown_relation();
        let columns = planner
            .source_categories(n)
            .into_iter()
            .enumerate()
            .filter_map(|(i, cat)| {
                let (category, text_only) = match (cat, unknown) {
                    (Some(c), _) => (c, false),
                    (None, true) => (crate::masking::Category::FreeText, true),
                    (None, false) => return None,
                };
                Some(crate::masking::FilledColumn {
                    table: fill.table.clone(),
                    column: fill.columns.get(i).cloned(),
                    position: i,
                    category,
                    text_only,
                })
            })
            .collect();
        self.gw
            .masking
            .note_filled(&self.env, &self.database, columns);
    }

    /// A ReadyForQuery with this transaction status: once idle (committed or rolled back), the
    /// transaction's schema changes are applied again and the catalog read.
    pub fn on_ready(&self, status: u8) {
        if status != b'I' {
            return;
        }
        let changes = self.schema_changes.take();
        if changes.is_empty() {
            return;
        }
        for touch in &changes {
            self.gw.masking.invalidate(&self.env, &self.database, touch);
        }
        read_soon(
            &self.gw,
            &self.env,
            &self.database,
            ReadReason::SchemaChange,
        );
    }
}

/// A session that ends inside a transaction with schema changes never sees its ReadyForQuery:
/// the catalog is read now (what it touched stays out of the catalog until then).
impl Drop for super::tracker::SessionMasking {
    fn drop(&mut self) {
        // What this backend still sends (queued for a listener in a long transaction) now
        // comes from an unknown sender: masked whole.
        self.gw.masking.sender_closed(self.upstream_pid);
        let pending = self.schema_changes.any();
        if pending {
            read_soon(
                &self.gw,
                &self.env,
                &self.database,
                ReadReason::SchemaChange,
            );
        }
    }
}

/// Whether a COPY … TO STDOUT in `info` reads a relation the catalog does not know.
pub fn copy_reads_unknown_relation(
    m: &super::tracker::SessionMasking,
    info: &crate::sql::Statement,
) -> bool {
    info.kinds.iter().any(|k| k == "COPY")
        && !unknown_relations(m, info, &m.catalog(), |st| st.copy.is_some()).is_empty()
}

/// The relations (`name:…`) that the statements of `info` which `which` picks read and the
/// catalog does not know.
fn unknown_relations(
    m: &super::tracker::SessionMasking,
    info: &crate::sql::Statement,
    catalog: &Catalog,
    which: impl Fn(&crate::masking::lineage::StatementLineage) -> bool,
) -> std::collections::BTreeSet<String> {
    let lineage = m.gw.masking.lineage_of(info);
    lineage
        .statements
        .iter()
        .filter(|st| which(st))
        .flat_map(|st| {
            crate::masking::plan::Planner {
                catalog,
                lineage: Some(st),
                exempt: &Default::default(),
                exempt_columns: &Default::default(),
            }
            .unknown_relations()
        })
        .collect()
}

/// Before a statement that reads a relation the catalog does not know (a table just created,
/// through the gateway or not): the catalog is read first, or a read under way awaited
/// (bounded), so its rows are masked by what the table really holds rather than masked whole
/// as unknown — which would break the first query after every `CREATE TABLE`. What is still
/// unknown afterwards (a temporary table) stays masked whole; a COPY of it is refused by the
/// caller, since COPY rows carry no types to mask by.
///
/// Returns the catalog every relation the statement reads was found in, if it was (the
/// session may keep that answer while its catalog is this very one); `None` when something
/// was unknown.
pub async fn before_reading(
    m: &super::tracker::SessionMasking,
    info: &crate::sql::Statement,
) -> Option<Arc<Catalog>> {
    let catalog = m.catalog();
    let unknown = unknown_relations(m, info, &catalog, |_| true);
    if unknown.is_empty() {
        return Some(catalog);
    }
    // No environment to read from: something stays unknown, so nothing may be kept.
    let env =
        m.gw.environments
            .get(&m.env)
            .filter(|e| e.reaches(&m.database))
            .cloned()?;
    if m.gw
        .masking
        .want_read(&m.env, &m.database, ReadReason::UnknownRelation(&unknown))
    {
        load(&m.gw, &env, &m.database).await;
        return None;
    }
    // Another read is under way: wait for it (bounded), not for a new one.
    let before = m.gw.masking.generation();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while m.gw.masking.loading(&m.env, &m.database)
        && m.gw.masking.generation() == before
        && std::time::Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Reads again, every minute, each catalog older than [`crate::masking::CATALOG_MAX_AGE`] (or
/// restored from the store at startup), so tags follow schema changes even in databases no new
/// session reaches. Runs until the gateway stops.
pub async fn refresh_periodically(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (env_name, database) in gw.masking.stale_catalogs() {
            let Some(env) = gw
                .environments
                .get(&env_name)
                .filter(|e| e.reaches(&database))
                .cloned()
            else {
                continue;
            };
            ensure(&gw, &env, &database, false).await;
        }
    }
}

/// The catalog a session should use, reading it first if none has been read yet (bounded by
/// the connect timeout); `None` when it cannot be had now (the plan then fails closed on names
/// and value detection).
pub async fn ensure(
    gw: &Arc<Gateway>,
    env: &Arc<crate::gateway::Environment>,
    database: &str,
    force: bool,
) -> Option<Arc<Catalog>> {
    match gw.masking.need(&env.name, database, force) {
        CatalogNeed::Ready(c) => Some(c),
        CatalogNeed::Refresh(c) => {
            let (gw, env, db) = (gw.clone(), env.clone(), database.to_string());
            tokio::spawn(async move {
                load(&gw, &env, &db).await;
                settle(&gw, &env, &db).await;
            });
            Some(c)
        }
        CatalogNeed::Load => {
            let c = load(gw, env, database).await;
            let (gw, env, db) = (gw.clone(), env.clone(), database.to_string());
            tokio::spawn(async move { settle(&gw, &env, &db).await });
            c
        }
        CatalogNeed::Wait => gw.masking.catalog(&env.name, database),
    }
}

/// Reads the catalog again now (on demand from the API) and returns it.
pub async fn refresh(
    gw: &Arc<Gateway>,
    env: &Arc<crate::gateway::Environment>,
    database: &str,
) -> Option<Arc<Catalog>> {
    load(gw, env, database).await
}
