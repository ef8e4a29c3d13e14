//! Guardrails: what a statement is (classification) and what may happen to it (decision:
//! allow, deny, or review by a person or an automatic policy).
//!
//! The pg session calls [`Policy::decide`] once per execution with the statement text and who
//! runs it where; everything it needs is pure and cached, so the hot path pays a hash lookup for
//! a statement it has seen before.
//!
//! - `classify.rs`: SQL text → [`Classification`] (sqlparser, PostgreSQL dialect).
//! - `cache.rs`: classifications cached per statement shape (bounded, sharded LRU).
//! - `rules.rs`: [`Rule`]s as data, the built-in production rules, and how one matches.
//! - this file: [`Policy`], the ordered rule set (config, then API, then built-in) swapped
//!   whole on change so `decide` never waits, and the versioned, audited API changes.
//!
//! Architecture invariant: `decide` is pure code over SQL text and identities; no sockets, no
//! waiting. Only the rule-changing methods touch the store, and only from the HTTP side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod cache;
pub mod classify;
pub mod functions;
pub mod rules;

pub use cache::ClassifierCache;
pub use classify::{Classification, StatementKind, Strings};
pub use rules::{Flag, Rule, RuleInvalid};

use crate::config::{Config, Tier};
use crate::identity::Identity;
use crate::store::{SaveOutcome, Store, StoreError};

/// What to do with a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    Review,
}

impl Action {
    /// Deny over review over allow: what a string of statements gets is its strictest.
    fn strictness(self) -> u8 {
        match self {
            Action::Allow => 0,
            Action::Review => 1,
            Action::Deny => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Review => "review",
        }
    }
}

/// Whether `c` may change how the server reads backslashes in later statements.
fn changes_string_reading(c: &Classification) -> bool {
    c.role_change
        || c.each.iter().any(|p| p.role_change)
        || c.settings
            .iter()
            .chain(c.each.iter().flat_map(|p| p.settings.iter()))
            .any(|s| s == "standard_conforming_strings" || s == "backslash_quote")
}

/// Who runs a statement, and where.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub identity: &'a Identity,
    pub environment: &'a str,
    pub tier: Tier,
    pub tags: &'a [String],
    /// The session may have moved its `search_path` (a SET in an earlier message, the startup
    /// options): an unqualified table name may then be in any schema.
    pub search_path_changed: bool,
}

/// The outcome of [`Policy::decide`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub action: Action,
    /// The rule that decided (its id), or `default`.
    pub rule: String,
    /// Why, in words a person can act on.
    pub reason: String,
    /// What the statement was found to do (shared with the cache, so cheap to carry).
    #[schema(value_type = Option<Classification>)]
    pub classification: Option<Arc<Classification>>,
    /// For a string of several statements, what each got, in order (the decision above is the
    /// strictest of them). Empty for a single statement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<StatementDecision>,
}

/// What one statement of a string of several got.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatementDecision {
    /// The statement's commands, e.g. `DROP TABLE`.
    pub command: String,
    pub action: Action,
    pub rule: String,
    pub reason: String,
}

impl Decision {
    pub fn allow() -> Decision {
        Decision {
            action: Action::Allow,
            rule: "default".into(),
            reason: "no rule matched".into(),
            classification: None,
            statements: Vec::new(),
        }
    }
}

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleSource {
    /// `[[rules]]` in the config file: changed there.
    Config,
    /// Managed through `/api/v1/rules`, versioned in the store.
    Api,
    /// Built into the gateway (`[policy] builtin_rules`).
    Builtin,
}

/// The rules in force, in evaluation order.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// The API rules' version in the store (0 before the first change).
    pub version: i64,
    /// The API-managed rules alone, in order.
    pub api: Vec<Rule>,
    pub all: Vec<(Rule, RuleSource)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    Invalid(String),
    #[error("a rule with id `{0}` already exists")]
    Duplicate(String),
    #[error("no API-managed rule with id `{0}`")]
    NotFound(String),
    #[error("rule `{0}` comes from the {1}; it cannot be changed through the API")]
    ReadOnly(String, &'static str),
    #[error("the rules changed meanwhile (now version {0}); reload them and try again")]
    Stale(i64),
    #[error("the stored rules (version {version}) cannot be read: {message}")]
    Corrupt { version: i64, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A change made through the API.
#[derive(Debug, Clone)]
pub struct RuleChange {
    pub version: i64,
    pub rule: Rule,
}

/// The guardrail engine: classify (cached), then the first matching rule decides.
pub struct Policy {
    cache: ClassifierCache,
    config_rules: Vec<Rule>,
    builtin: Vec<Rule>,
    current: RwLock<Arc<RuleSet>>,
    /// Bumped after every change of `current`, so a session may keep a decision while the
    /// rules it came from are still in force (see [`Policy::kept_decisions`]). Odd while the
    /// rules in force have a time window: their decisions depend on the clock and are never
    /// kept.
    generation: AtomicU64,
    /// Serialises this process's rule changes (read, modify, save a new version).
    changes: tokio::sync::Mutex<()>,
}

impl Default for Policy {
    /// The built-in rules only, with a default-sized cache.
    fn default() -> Self {
        Policy::new(Vec::new(), true, DEFAULT_CACHE_SIZE)
    }
}

/// Shapes the classification cache holds unless `[policy] cache_size` says otherwise.
pub const DEFAULT_CACHE_SIZE: usize = 10_000;

impl Policy {
    pub fn new(config_rules: Vec<Rule>, builtin_rules: bool, cache_size: usize) -> Self {
        let builtin = if builtin_rules {
            rules::builtin()
        } else {
            Vec::new()
        };
        let p = Policy {
            cache: ClassifierCache::new(cache_size),
            config_rules,
            builtin,
            current: RwLock::new(Arc::new(RuleSet {
                version: 0,
                api: Vec::new(),
                all: Vec::new(),
            })),
            changes: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        };
        p.install(0, Vec::new());
        p
    }

    /// The config's `[[rules]]` and `[policy]` settings (already validated by the config).
    pub fn from_config(config: &Config) -> Self {
        Policy::new(
            config.rules.iter().map(|r| r.get_ref().clone()).collect(),
            config.policy.builtin_rules,
            config.policy.cache_size,
        )
    }

    /// Ids no API rule may take: config and built-in rules'.
    fn reserved(&self, id: &str) -> Option<&'static str> {
        if self.config_rules.iter().any(|r| r.id == id) {
            Some("config file")
        } else if self.builtin.iter().any(|r| r.id == id) {
            Some("gateway's built-in rules")
        } else {
            None
        }
    }

    fn install(&self, version: i64, api: Vec<Rule>) {
        let all = self
            .config_rules
            .iter()
            .map(|r| (r.clone(), RuleSource::Config))
            .chain(api.iter().map(|r| (r.clone(), RuleSource::Api)))
            .chain(
                self.builtin
                    .iter()
                    .map(|r| (r.clone(), RuleSource::Builtin)),
            )
            .collect::<Vec<(Rule, RuleSource)>>();
        let timed = all
            .iter()
            .any(|(r, _)| r.hours.is_some() || !r.weekdays.is_empty());
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if version < current.version {
            // A reload that read the store before a save installed a newer version: putting
            // it in force now would bring back rules an administrator just changed.
            return;
        }
        *current = Arc::new(RuleSet { version, api, all });
        // Still under the write lock, after the swap: a session that reads the new generation
        // reads the new rules, and one that kept a decision under the old one sees it change.
        // The generation moves by 2 or 1 so that its parity says whether the rules are timed.
        let g = self.generation.load(Ordering::Acquire);
        let next = (g + 2) & !1 | u64::from(timed);
        self.generation.store(next, Ordering::Release);
    }

    /// The generation of the rules in force, when a decision made under them may be kept and
    /// reused while it stays current; `None` when some rule has a time window (its decisions
    /// depend on the clock). A decision depends on nothing else than the rules, the
    /// statement's classification and the [`Subject`], which callers key it by.
    pub fn kept_decisions(&self) -> Option<u64> {
        let g = self.generation.load(Ordering::Acquire);
        (g & 1 == 0).then_some(g)
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn parse_stored(version: i64, json: &str) -> Result<Vec<Rule>, RuleError> {
        serde_json::from_str(json).map_err(|e| RuleError::Corrupt {
            version,
            message: e.to_string(),
        })
    }

    /// Loads the API-managed rules at startup. Unreadable stored rules stop the gateway rather
    /// than run without them (fail closed).
    pub fn load_blocking(&self, store: &Store) -> Result<(), RuleError> {
        if let Some(v) = store.latest_rules_blocking()? {
            self.install(v.version, Self::parse_stored(v.version, &v.rules_json)?);
        }
        Ok(())
    }

    /// Re-reads the API-managed rules (another replica may have changed them).
    pub async fn reload(&self, store: &Store) -> Result<(), RuleError> {
        if let Some(v) = store.latest_rules().await? {
            self.install(v.version, Self::parse_stored(v.version, &v.rules_json)?);
        }
        Ok(())
    }

    /// The classification of `sql` (cached).
    pub fn classify(&self, sql: &str) -> Arc<Classification> {
        self.cache.classify(sql)
    }

    /// What `sql` gets when `subject` runs it.
    pub fn decide(&self, subject: &Subject<'_>, sql: &str) -> Decision {
        self.decide_classified(subject, self.cache.classify(sql), Utc::now)
    }

    /// [`Policy::decide`] for a statement that arrived on a connection, whose shape key was made
    /// when it arrived.
    pub fn decide_statement(
        &self,
        subject: &Subject<'_>,
        stmt: &crate::sql::Statement,
    ) -> Decision {
        let c = self.cache.classify_keyed(&stmt.sql, &stmt.shape_key);
        self.decide_classified(subject, c, Utc::now)
    }

    /// [`Policy::decide_statement`] for a session whose `standard_conforming_strings` is known
    /// (followed from ParameterStatus): only that reading of a backslash string counts. The
    /// reading only matters for text with a backslash in a plain string, which is rare and is
    /// then classified on its own, uncached; everything else takes the cached path.
    ///
    /// A string that may itself change the setting (SET or RESET of it, `set_config` with a
    /// name the gateway cannot read, RESET ALL…) keeps both readings: which one its later
    /// statements get is the server's business, so the strictest decides.
    pub fn decide_statement_as(
        &self,
        subject: &Subject<'_>,
        stmt: &crate::sql::Statement,
        strings: Option<Strings>,
    ) -> Decision {
        let Some(strings) = strings.filter(|_| stmt.backslash_string) else {
            return self.decide_statement(subject, stmt);
        };
        let both = self.cache.classify_keyed(&stmt.sql, &stmt.shape_key);
        let c = if changes_string_reading(&both) {
            both
        } else {
            Arc::new(classify::classify_as(&stmt.sql, strings))
        };
        self.decide_classified(subject, c, Utc::now)
    }

    /// [`Policy::decide`] at a given time (for time-window rules; tests and dry runs).
    pub fn decide_at(&self, subject: &Subject<'_>, sql: &str, at: DateTime<Utc>) -> Decision {
        self.decide_classified(subject, self.cache.classify(sql), || at)
    }

    /// [`Policy::decide_at`] for a session known to read strings as `strings` says (the dry
    /// run's `standard_conforming_strings`); not cached. `None` reads as `decide_at` does.
    pub fn decide_reading_at(
        &self,
        subject: &Subject<'_>,
        sql: &str,
        strings: Option<classify::Strings>,
        at: DateTime<Utc>,
    ) -> Decision {
        let c = match strings {
            Some(strings) => Arc::new(classify::classify_as(sql, strings)),
            None => self.cache.classify(sql),
        };
        self.decide_classified(subject, c, || at)
    }

    fn decide_classified(
        &self,
        subject: &Subject<'_>,
        c: Arc<Classification>,
        clock: impl Fn() -> DateTime<Utc>,
    ) -> Decision {
        let set = self.rules();
        // The clock is read at most once, and only if some rule has a time window.
        let mut now: Option<DateTime<Utc>> = None;
        let mut now = || *now.get_or_insert_with(&clock);
        if c.each.is_empty() {
            let (action, rule, reason) = Self::first_match(&set, &c, subject, &mut now);
            return Decision {
                action,
                rule,
                reason,
                classification: Some(c),
                statements: Vec::new(),
            };
        }
        // Several statements: each is decided on its own, so an allow rule covers only the
        // statements it matches, and the strictest decision is the string's. Ties go to the
        // first statement; among allows, to the first an explicit rule allowed.
        let statements: Vec<StatementDecision> = c
            .each
            .iter()
            .map(|part| {
                let (action, rule, reason) = Self::first_match(&set, part, subject, &mut now);
                StatementDecision {
                    command: part.commands(),
                    action,
                    rule,
                    reason,
                }
            })
            .collect();
        let decisive = statements
            .iter()
            .enumerate()
            .max_by_key(|(i, d)| {
                (
                    d.action.strictness(),
                    d.rule != "default",
                    std::cmp::Reverse(*i),
                )
            })
            .map(|(_, d)| d.clone());
        match decisive {
            Some(d) => Decision {
                action: d.action,
                rule: d.rule,
                reason: d.reason,
                classification: Some(c),
                statements,
            },
            None => Decision {
                classification: Some(c),
                ..Decision::allow()
            },
        }
    }

    /// The first rule of `set` that matches `c`: its action, id and reason (or the default).
    fn first_match(
        set: &RuleSet,
        c: &Classification,
        subject: &Subject<'_>,
        now: &mut dyn FnMut() -> DateTime<Utc>,
    ) -> (Action, String, String) {
        for (rule, _) in &set.all {
            if rule.matches(c, subject, now) {
                return (rule.action, rule.id.clone(), rule.reason(c, subject));
            }
        }
        let d = Decision::allow();
        (d.action, d.rule, d.reason)
    }

    fn check(&self, rule: &Rule) -> Result<(), RuleError> {
        rule.validate()
            .map_err(|e| RuleError::Invalid(e.to_string()))?;
        if let Some(source) = self.reserved(&rule.id) {
            return Err(RuleError::ReadOnly(rule.id.clone(), source));
        }
        Ok(())
    }

    /// Saves `api` as the next version and puts it in force.
    async fn save(
        &self,
        store: &Store,
        base: &RuleSet,
        api: Vec<Rule>,
        by: &str,
        change: String,
    ) -> Result<i64, RuleError> {
        let json = serde_json::to_string(&api).map_err(|e| RuleError::Corrupt {
            version: base.version,
            message: e.to_string(),
        })?;
        match store
            .save_rules(
                base.version,
                crate::identity::now(),
                by.into(),
                change,
                json,
            )
            .await?
        {
            SaveOutcome::Saved(v) => {
                self.install(v, api);
                Ok(v)
            }
            SaveOutcome::Stale { current } => {
                self.reload(store).await?;
                Err(RuleError::Stale(current))
            }
        }
    }

    /// Adds an API rule at `position` among the API rules (the end when `None`).
    pub async fn create_rule(
        &self,
        store: &Store,
        rule: Rule,
        position: Option<usize>,
        by: &str,
    ) -> Result<RuleChange, RuleError> {
        self.check(&rule)?;
        let _guard = self.changes.lock().await;
        let base = self.rules();
        if base.api.iter().any(|r| r.id == rule.id) {
            return Err(RuleError::Duplicate(rule.id));
        }
        let mut api = base.api.clone();
        let at = position.unwrap_or(api.len()).min(api.len());
        api.insert(at, rule.clone());
        let version = self
            .save(store, &base, api, by, format!("create {}", rule.id))
            .await?;
        Ok(RuleChange { version, rule })
    }

    /// Replaces API rule `id` (keeping its place unless `position` is given). The new rule may
    /// carry a new id.
    pub async fn update_rule(
        &self,
        store: &Store,
        id: &str,
        rule: Rule,
        position: Option<usize>,
        by: &str,
    ) -> Result<RuleChange, RuleError> {
        if let Some(source) = self.reserved(id) {
            return Err(RuleError::ReadOnly(id.into(), source));
        }
        self.check(&rule)?;
        let _guard = self.changes.lock().await;
        let base = self.rules();
        let Some(i) = base.api.iter().position(|r| r.id == id) else {
            return Err(RuleError::NotFound(id.into()));
        };
        if rule.id != id && base.api.iter().any(|r| r.id == rule.id) {
            return Err(RuleError::Duplicate(rule.id));
        }
        let mut api = base.api.clone();
        api.remove(i);
        let at = position.unwrap_or(i).min(api.len());
        api.insert(at, rule.clone());
        let version = self
            .save(store, &base, api, by, format!("update {id}"))
            .await?;
        Ok(RuleChange { version, rule })
    }

    /// Removes API rule `id`; returns the rule removed.
    pub async fn delete_rule(
        &self,
        store: &Store,
        id: &str,
        by: &str,
    ) -> Result<RuleChange, RuleError> {
        if let Some(source) = self.reserved(id) {
            return Err(RuleError::ReadOnly(id.into(), source));
        }
        let _guard = self.changes.lock().await;
        let base = self.rules();
        let Some(i) = base.api.iter().position(|r| r.id == id) else {
            return Err(RuleError::NotFound(id.into()));
        };
        let mut api = base.api.clone();
        let rule = api.remove(i);
        let version = self
            .save(store, &base, api, by, format!("delete {id}"))
            .await?;
        Ok(RuleChange { version, rule })
    }

    /// The API rules as they were at `version`.
    pub fn rules_of_version(version: i64, json: &str) -> Result<Vec<Rule>, RuleError> {
        Self::parse_stored(version, json)
    }
}

#[cfg(test)]
mod tests;
