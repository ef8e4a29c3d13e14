//! What the statement path derived from a statement, kept per session so that a statement the
//! session has seen before costs a lookup and a check that nothing it depended on changed.
//!
//! Two tables, both bounded (emptied whole when full; a session that sends ever new text pays
//! only the insert):
//!
//! - **texts**: the exact text of a Query or Parse → its [`Statement`] (lexing, shape key,
//!   fingerprint, kinds). A pure function of the text, so it is kept without condition. A
//!   client that re-parses the same text (every driver's unnamed statements) gets the same
//!   `Arc`, which is what the second table is keyed by.
//! - **memos**: per statement (by its address; the memo holds the `Arc`, so the address is
//!   not reused while it is kept) what was decided about it, each with the inputs it was
//!   decided under:
//!   - the policy's decision: the rule set's generation (rules with a time window are never
//!     kept, see `Policy::kept_decisions`), whether the session may have moved its
//!     `search_path`, and how it reads backslashes in strings. Reviews are never kept: each
//!     execution asks for its own approval.
//!   - the check before reading (`catalog::before_reading`): the catalog it found every
//!     relation in, compared by identity. A catalog is never changed in place (a read, a tag,
//!     an invalidation or this session's own code in an open transaction each make a new
//!     one), so the same `Arc` means the same answer.
//!   - the masking plan of each result: the result's description and formats, the catalog
//!     (by identity) and what the identity is exempt from (by value, looked up for each
//!     result). Plans that found something unknown, or that read a cursor's lineage (session
//!     state), are never kept.
//!   - whether the text switches the client encoding to one the gateway refuses.
//!
//!   The decision and the read check also hold for every text of the statement's shape
//!   where the policy's classification, or the masking lineage, is the shape's (a Query
//!   with its literals inline is new text each time): they are kept per shape key too.
//!   A result whose every column comes straight from a table is planned without the
//!   statement's lineage: its plan is kept once per session for all statements (a Query
//!   with inline literals too), under the same description, catalog and exemptions.
//!
//! Architecture invariant: a kept verdict is used only when every input it was computed from
//! is unchanged; anything not keyed here is computed again on every execution (the audit's
//! health, approvals, the durable record of a write, exemption-use records).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::masking::plan::{Field, ResultPlan};
use crate::masking::{Catalog, Exempt};
use crate::policy::{Decision, Strings};
use crate::sql::Statement;

/// Statements kept per session: enough for every statement of a typical application, small
/// enough that emptying the table costs nothing noticeable.
const MAX_STATEMENTS: usize = 256;
/// Longer texts are not kept (their lexing dominates anyway, and memory stays bounded).
const MAX_TEXT: usize = 8 * 1024;
/// Result descriptions kept per statement (a string of several statements, or one read with
/// several sets of formats).
const MAX_PLANS: usize = 4;
/// Descriptions of results straight from tables kept per session.
const MAX_COLUMN_PLANS: usize = 16;

/// What a decision was made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionKey {
    /// `Policy::kept_decisions` when the decision was asked for (read before it was made).
    pub rules: u64,
    pub search_path_changed: bool,
    pub strings: Option<Strings>,
}

/// What a masking plan was made from, besides the statement.
#[derive(Clone, Copy)]
pub struct PlanInputs<'a> {
    pub index: usize,
    pub fields: Option<&'a [Field]>,
    pub formats: &'a [i16],
    pub blind: Option<usize>,
    pub catalog: &'a Arc<Catalog>,
    pub exempt: &'a Exempt,
}

struct KeptPlan {
    index: usize,
    fields: Option<Vec<Field>>,
    formats: Vec<i16>,
    blind: Option<usize>,
    catalog: Arc<Catalog>,
    exempt: Exempt,
    plan: Arc<ResultPlan>,
}

impl KeptPlan {
    fn new(inputs: &PlanInputs<'_>, plan: Arc<ResultPlan>) -> Self {
        KeptPlan {
            index: inputs.index,
            fields: inputs.fields.map(<[Field]>::to_vec),
            formats: inputs.formats.to_vec(),
            blind: inputs.blind,
            catalog: inputs.catalog.clone(),
            exempt: inputs.exempt.clone(),
            plan,
        }
    }

    fn made_from(&self, i: &PlanInputs<'_>) -> bool {
        self.index == i.index
            && Arc::ptr_eq(&self.catalog, i.catalog)
            && self.blind == i.blind
            && crate::bytewise::eq(&self.formats, i.formats)
            && self.fields.as_deref() == i.fields
            && &self.exempt == i.exempt
    }
}

struct Memo {
    /// Keeps the statement (and so the address this memo is keyed by) alive.
    _stmt: Arc<Statement>,
    decision: Option<(DecisionKey, Arc<Decision>)>,
    read_against: Option<Arc<Catalog>>,
    plans: Vec<KeptPlan>,
    encoding_clean: bool,
}

/// Hashes a statement's address: the memos' keys are addresses of live `Arc`s, already
/// spread; SipHash over them would cost more than the lookup saves.
#[derive(Default)]
pub struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        // Allocations are 16-byte aligned: the low bits say nothing.
        self.0 = ((n >> 4) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The text maps' hasher: every Query's text (new each time when its literals are inline) and
/// shape key is hashed once per statement, where SipHash was a tenth of the statement path.
/// Seeded per map; the maps are the session's own and bounded by [`MAX_STATEMENTS`], so a
/// client that collides texts on purpose slows only itself.
type TextHasher = foldhash::fast::RandomState;

/// The session's kept statements and verdicts (see the module docs).
#[derive(Default)]
pub struct Verdicts {
    texts: HashMap<Arc<str>, Arc<Statement>, TextHasher>,
    /// Kept statements that are worth a memo: prepared ones, and texts seen again. A session
    /// that sends every query with its literals inline (each text once) then pays no memo.
    /// Emptied with `texts`, which keeps their addresses alive until then.
    again: HashSet<usize, BuildHasherDefault<AddressHasher>>,
    memos: HashMap<usize, Memo, BuildHasherDefault<AddressHasher>>,
    /// Plans of results whose every column comes straight from a table: the planner then
    /// reads no lineage, so the plan depends on the description, formats, catalog and
    /// exemptions alone, whatever statement produced it (a Query with inline literals
    /// too). The statement index is not part of their key.
    column_plans: Vec<KeptPlan>,
    /// What holds for every text of a shape (see [`ShapeMemo`]), by shape key.
    shapes: HashMap<String, ShapeMemo, TextHasher>,
}

/// What holds for every statement of one shape key: a Query with its literals inline is new
/// text each time, but the policy's cache classifies every text of a shape alike unless the
/// classification says its literals matter, and the masking lineage is the shape's unless
/// `Masking::lineage_by_shape` says otherwise. Neither is used for a text with a backslash
/// string, which reads differently with the session's settings.
#[derive(Default)]
struct ShapeMemo {
    decision: Option<(DecisionKey, Arc<Decision>)>,
    read_against: Option<Arc<Catalog>>,
}

fn address(stmt: &Arc<Statement>) -> usize {
    Arc::as_ptr(stmt) as usize
}

impl Verdicts {
    /// The statement of `sql`: the one kept for this exact text, or a new one (then kept).
    /// `prepared`: the text of a Parse, made to be run again.
    pub fn statement(&mut self, sql: &str, prepared: bool) -> Arc<Statement> {
        if let Some(s) = self.texts.get(sql) {
            self.again.insert(address(s));
            return s.clone();
        }
        let s = Statement::new(sql);
        if sql.len() <= MAX_TEXT {
            if self.texts.len() >= MAX_STATEMENTS {
                self.texts.clear();
                self.again.clear();
            }
            self.texts.insert(s.sql.clone(), s.clone());
            if prepared {
                self.again.insert(address(&s));
            }
        }
        s
    }

    /// `stmt`'s memo, made if the statement is worth one.
    fn memo(&mut self, stmt: &Arc<Statement>) -> Option<&mut Memo> {
        let at = address(stmt);
        if !self.memos.contains_key(&at) {
            if !self.again.contains(&at) {
                return None;
            }
            if self.memos.len() >= MAX_STATEMENTS {
                self.memos.clear();
            }
        }
        Some(self.memos.entry(at).or_insert_with(|| Memo {
            _stmt: stmt.clone(),
            decision: None,
            read_against: None,
            plans: Vec::new(),
            encoding_clean: false,
        }))
    }

    /// The memo of `stmt`'s shape, for what may be kept per shape at all.
    fn shape(&self, stmt: &Statement) -> Option<&ShapeMemo> {
        if stmt.backslash_string {
            return None;
        }
        self.shapes.get(stmt.shape_key.as_str())
    }

    fn shape_mut(&mut self, stmt: &Statement) -> Option<&mut ShapeMemo> {
        if stmt.backslash_string || stmt.shape_key.len() > MAX_TEXT {
            return None;
        }
        if !self.shapes.contains_key(stmt.shape_key.as_str()) {
            if self.shapes.len() >= MAX_STATEMENTS {
                self.shapes.clear();
            }
            self.shapes
                .insert(stmt.shape_key.clone(), ShapeMemo::default());
        }
        self.shapes.get_mut(stmt.shape_key.as_str())
    }

    /// The decision kept for `stmt` (or, where its classification is its shape's, for its
    /// shape) under exactly `key`.
    pub fn decision(&self, stmt: &Arc<Statement>, key: DecisionKey) -> Option<Arc<Decision>> {
        let kept = |d: &Option<(DecisionKey, Arc<Decision>)>| match d {
            Some((k, d)) if *k == key => Some(d.clone()),
            _ => None,
        };
        self.memos
            .get(&address(stmt))
            .and_then(|m| kept(&m.decision))
            .or_else(|| self.shape(stmt).and_then(|m| kept(&m.decision)))
    }

    pub fn keep_decision(&mut self, stmt: &Arc<Statement>, key: DecisionKey, d: Arc<Decision>) {
        // Every text of the shape gets this classification (the policy's cache says so by
        // not marking it literal-sensitive): the decision holds for the shape.
        let per_shape = d
            .classification
            .as_ref()
            .is_some_and(|c| !c.literal_sensitive);
        if per_shape {
            if let Some(m) = self.shape_mut(stmt) {
                m.decision = Some((key, d.clone()));
            }
        }
        if let Some(m) = self.memo(stmt) {
            m.decision = Some((key, d));
        }
    }

    /// Whether every relation `stmt` reads (or, where its lineage is its shape's, any text of
    /// its shape reads) was found in `catalog` (this very one) before.
    pub fn read_checked(&self, stmt: &Arc<Statement>, catalog: &Arc<Catalog>) -> bool {
        let against =
            |c: &Option<Arc<Catalog>>| c.as_ref().is_some_and(|c| Arc::ptr_eq(c, catalog));
        self.memos
            .get(&address(stmt))
            .is_some_and(|m| against(&m.read_against))
            || (crate::masking::Masking::lineage_by_shape(stmt)
                && self.shape(stmt).is_some_and(|m| against(&m.read_against)))
    }

    pub fn keep_read_checked(&mut self, stmt: &Arc<Statement>, catalog: Arc<Catalog>) {
        if crate::masking::Masking::lineage_by_shape(stmt) {
            if let Some(m) = self.shape_mut(stmt) {
                m.read_against = Some(catalog.clone());
            }
        }
        if let Some(m) = self.memo(stmt) {
            m.read_against = Some(catalog);
        }
    }

    /// The plan kept for a result of `stmt` made from exactly `inputs`.
    pub fn plan(&self, stmt: &Arc<Statement>, inputs: &PlanInputs<'_>) -> Option<Arc<ResultPlan>> {
        self.memos
            .get(&address(stmt))?
            .plans
            .iter()
            .find(|p| p.made_from(inputs))
            .map(|p| p.plan.clone())
    }

    pub fn keep_plan(
        &mut self,
        stmt: &Arc<Statement>,
        inputs: &PlanInputs<'_>,
        plan: Arc<ResultPlan>,
    ) {
        let Some(memo) = self.memo(stmt) else {
            return;
        };
        // Plans made under an older catalog can never be used again.
        memo.plans
            .retain(|p| Arc::ptr_eq(&p.catalog, inputs.catalog));
        if memo.plans.len() >= MAX_PLANS {
            memo.plans.remove(0);
        }
        memo.plans.push(KeptPlan::new(inputs, plan));
    }

    /// The kept plan of a result whose columns all come straight from tables (see
    /// `column_plans`), made from exactly `inputs` but whatever statement.
    pub fn column_plan(&self, inputs: &PlanInputs<'_>) -> Option<Arc<ResultPlan>> {
        self.column_plans
            .iter()
            .find(|p| {
                p.made_from(&PlanInputs {
                    index: p.index,
                    ..*inputs
                })
            })
            .map(|p| p.plan.clone())
    }

    pub fn keep_column_plan(&mut self, inputs: &PlanInputs<'_>, plan: Arc<ResultPlan>) {
        self.column_plans
            .retain(|p| Arc::ptr_eq(&p.catalog, inputs.catalog));
        if self.column_plans.len() >= MAX_COLUMN_PLANS {
            self.column_plans.remove(0);
        }
        self.column_plans.push(KeptPlan::new(inputs, plan));
    }

    /// Whether `stmt`'s text was found not to switch to a refused client encoding (a pure
    /// function of the text).
    pub fn encoding_clean(&self, stmt: &Arc<Statement>) -> bool {
        self.memos
            .get(&address(stmt))
            .is_some_and(|m| m.encoding_clean)
    }

    pub fn keep_encoding_clean(&mut self, stmt: &Arc<Statement>) {
        if let Some(m) = self.memo(stmt) {
            m.encoding_clean = true;
        }
    }

    /// Statements kept (texts and memos).
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.texts.len(), self.memos.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Decision;

    fn key(rules: u64) -> DecisionKey {
        DecisionKey {
            rules,
            search_path_changed: false,
            strings: Some(Strings::Standard),
        }
    }

    #[test]
    fn the_same_text_is_the_same_statement_and_the_store_stays_bounded() {
        let mut v = Verdicts::default();
        let a = v.statement("SELECT 1", false);
        assert!(Arc::ptr_eq(&a, &v.statement("SELECT 1", false)));
        assert!(
            !Arc::ptr_eq(&a, &v.statement("SELECT  1", false)),
            "exact text, not shape"
        );
        for i in 0..3 * MAX_STATEMENTS {
            let s = v.statement(&format!("SELECT {i}"), true);
            v.keep_encoding_clean(&s);
        }
        let (texts, memos) = v.len();
        assert!(
            texts <= MAX_STATEMENTS && memos <= MAX_STATEMENTS,
            "{texts} {memos}"
        );
        let long = "x".repeat(MAX_TEXT + 1);
        v.statement(&long, true);
        assert!(!v.texts.contains_key(long.as_str()));
    }

    #[test]
    fn a_text_sent_once_gets_no_memo_a_prepared_or_repeated_one_does() {
        let mut v = Verdicts::default();
        let once = v.statement("SELECT 1 WHERE 2 = 2", false);
        v.keep_encoding_clean(&once);
        assert!(!v.encoding_clean(&once));
        let again = v.statement("SELECT 1 WHERE 2 = 2", false);
        v.keep_encoding_clean(&again);
        assert!(v.encoding_clean(&once));
        let prepared = v.statement("SELECT $1", true);
        v.keep_encoding_clean(&prepared);
        assert!(v.encoding_clean(&prepared));
    }

    #[test]
    fn a_decision_is_used_only_under_the_key_it_was_made_under() {
        let mut v = Verdicts::default();
        let s = v.statement("SELECT 1", true);
        let d = Arc::new(Decision {
            classification: Some(crate::policy::Policy::default().classify("SELECT 1")),
            ..Decision::allow()
        });
        v.keep_decision(&s, key(2), d.clone());
        assert!(v.decision(&s, key(2)).is_some());
        assert!(v.decision(&s, key(4)).is_none(), "the rules changed");
        let mut moved = key(2);
        moved.search_path_changed = true;
        assert!(v.decision(&s, moved).is_none(), "search_path moved");
        let mut backslash = key(2);
        backslash.strings = Some(Strings::Backslash);
        assert!(
            v.decision(&s, backslash).is_none(),
            "strings read otherwise"
        );
        let mut unknown = key(2);
        unknown.strings = None;
        assert!(v.decision(&s, unknown).is_none(), "strings reading unknown");
        // Another statement of the same shape shares it: its classification is the shape's.
        let other = Statement::new("SELECT 2");
        assert!(v.decision(&other, key(2)).is_some());
        assert!(v.decision(&other, key(4)).is_none());
    }

    #[test]
    fn a_decision_whose_literals_matter_or_with_a_backslash_string_is_not_kept_per_shape() {
        let mut v = Verdicts::default();
        let policy = crate::policy::Policy::default();
        let sensitive = v.statement("SELECT set_config('role', 'x', false)", false);
        let c = policy.classify(&sensitive.sql);
        assert!(c.literal_sensitive);
        let d = Arc::new(Decision {
            classification: Some(c),
            ..Decision::allow()
        });
        v.keep_decision(&sensitive, key(2), d);
        let other = Statement::new("SELECT set_config('search_path', 'x', false)");
        assert!(v.decision(&other, key(2)).is_none());

        let backslash = v.statement(r"SELECT 'a\'; SELECT 'b'", false);
        let plain = Arc::new(Decision {
            classification: Some(policy.classify("SELECT 1")),
            ..Decision::allow()
        });
        v.keep_decision(&backslash, key(2), plain);
        let same_shape = Statement::new(r"SELECT 'c\'; SELECT 'd'");
        assert!(v.decision(&same_shape, key(2)).is_none());
        let catalog = Arc::new(Catalog::empty());
        v.keep_read_checked(&backslash, catalog.clone());
        assert!(!v.read_checked(&same_shape, &catalog));
    }

    #[test]
    fn a_read_check_is_kept_per_shape_only_where_the_lineage_is_the_shapes() {
        let mut v = Verdicts::default();
        let catalog = Arc::new(Catalog::empty());
        let a = v.statement("SELECT x FROM t WHERE id = 1", false);
        v.keep_read_checked(&a, catalog.clone());
        assert!(v.read_checked(&Statement::new("SELECT x FROM t WHERE id = 2"), &catalog));
        let setting = v.statement("SELECT current_setting('a.b') FROM t", false);
        v.keep_read_checked(&setting, catalog.clone());
        assert!(!v.read_checked(
            &Statement::new("SELECT current_setting('c.d') FROM t"),
            &catalog
        ));
        let copy = v.statement("COPY t TO STDOUT (DELIMITER ';')", false);
        v.keep_read_checked(&copy, catalog.clone());
        assert!(!v.read_checked(
            &Statement::new("COPY t TO STDOUT (DELIMITER ',')"),
            &catalog
        ));
    }

    #[test]
    fn a_plan_or_read_check_is_used_only_with_the_very_catalog_and_exemptions() {
        let mut v = Verdicts::default();
        let s = v.statement("SELECT a FROM t", true);
        let c1 = Arc::new(Catalog::empty());
        let c2 = Arc::new(Catalog::empty());
        v.keep_read_checked(&s, c1.clone());
        assert!(v.read_checked(&s, &c1));
        assert!(
            !v.read_checked(&s, &c2),
            "an equal but other catalog is not the same"
        );

        let fields = vec![Field {
            name: "a".into(),
            table_oid: 16400,
            attnum: 1,
            type_oid: 25,
            format: 0,
        }];
        let none = Exempt::default();
        let inputs = |catalog, exempt, formats| PlanInputs {
            index: 0,
            fields: Some(&fields),
            formats,
            blind: None,
            catalog,
            exempt,
        };
        let plan = Arc::new(ResultPlan::default());
        v.keep_plan(&s, &inputs(&c1, &none, &[]), plan.clone());
        assert!(v.plan(&s, &inputs(&c1, &none, &[])).is_some());
        assert!(v.plan(&s, &inputs(&c2, &none, &[])).is_none(), "catalog");
        assert!(v.plan(&s, &inputs(&c1, &none, &[1])).is_none(), "formats");
        let mut exempt = Exempt::default();
        exempt.categories.insert(crate::masking::Category::Email);
        assert!(
            v.plan(&s, &inputs(&c1, &exempt, &[])).is_none(),
            "exemptions"
        );
        let mut other_fields = fields.clone();
        other_fields[0].type_oid = 23;
        let changed = PlanInputs {
            fields: Some(&other_fields),
            ..inputs(&c1, &none, &[])
        };
        assert!(v.plan(&s, &changed).is_none(), "description");
        // Plans of table columns serve every statement, under the same inputs.
        v.keep_column_plan(&inputs(&c1, &none, &[]), Arc::new(ResultPlan::default()));
        let other = Statement::new("SELECT a FROM t WHERE id = 1");
        assert!(v.plan(&other, &inputs(&c1, &none, &[])).is_none());
        let any_index = PlanInputs {
            index: 3,
            ..inputs(&c1, &none, &[])
        };
        assert!(v.column_plan(&any_index).is_some());
        assert!(v.column_plan(&inputs(&c2, &none, &[])).is_none(), "catalog");
        assert!(
            v.column_plan(&inputs(&c1, &exempt, &[])).is_none(),
            "exemptions"
        );
        assert!(
            v.column_plan(&inputs(&c1, &none, &[1])).is_none(),
            "formats"
        );
        // A plan under a newer catalog drops the older ones.
        v.keep_plan(&s, &inputs(&c2, &none, &[]), plan);
        assert!(v.plan(&s, &inputs(&c1, &none, &[])).is_none());
        assert!(v.plan(&s, &inputs(&c2, &none, &[])).is_some());
    }
}
