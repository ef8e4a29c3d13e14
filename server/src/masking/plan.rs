//! The masking plan of one result: what happens to each column, decided once per result set
//! from its RowDescription (or, for COPY, the statement alone), the catalog and the statement's
//! lineage. Most results need nothing: then the plan says so and rows pass as bytes.
//!
//! Decisions, per column:
//! - a column straight from a table (RowDescription names its table and attribute) takes the
//!   catalog's tag; an expression takes the tags of the columns its lineage names;
//! - a tagged column is masked (a type that cannot hold a mask becomes NULL);
//! - an untagged text-like column (text, JSON, arrays, unknown types) gets value detection,
//!   unless an admin confirmed it safe; plain numbers, dates and booleans cost nothing;
//! - a category the identity is exempt from is left as it is, and the exemption reported.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::Catalog;
use super::detect::Category;
use super::lineage::{
    unhashed, CopyFormat, Output, StatementLineage, CUSTOM_SETTING, STATISTICS_VALUES,
};
use super::names::category_for_name;

/// A field of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub table_oid: u32,
    pub attnum: i16,
    pub type_oid: u32,
    pub format: i16,
}

/// What a type can hold, as far as masking cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    /// text, varchar, char, name, citext-like and unknown: UTF-8 in both formats.
    Text,
    Json,
    Jsonb,
    /// One-dimensional arrays of text-like elements (text format only).
    TextArray,
    /// Numbers, dates, times, booleans, uuids: cannot hold detectable values.
    Plain,
    Bool,
    /// bytea: hex in text format, raw bytes in binary; a mask would not be valid hex.
    Bytea,
    /// Anything else (enums, domains, inet, composites…): detected in text, NULL when masked.
    Other,
}

pub fn type_kind(oid: u32) -> TypeKind {
    match oid {
        25 | 1043 | 1042 | 19 | 705 | 0 => TypeKind::Text,
        114 => TypeKind::Json,
        3802 => TypeKind::Jsonb,
        1009 | 1015 | 1014 | 199 | 3807 | 1003 => TypeKind::TextArray,
        16 => TypeKind::Bool,
        17 => TypeKind::Bytea,
        20 | 21 | 23 | 26 | 700 | 701 | 1700 | 790 | 1082 | 1083 | 1114 | 1184 | 1186 | 1266
        | 2950 | 28 | 29 | 1005 | 1007 | 1016 | 1021 | 1022 | 1231 | 1182 | 1115 | 1185 => {
            TypeKind::Plain
        }
        _ => TypeKind::Other,
    }
}

/// What happens to one column's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Pass,
    /// Masked as these categories (the first decides the mask of a whole value).
    Mask(Vec<Category>),
    /// Run the detectors; mask what they find.
    Detect,
    /// Replace by SQL NULL (a tagged value of a type that cannot hold a mask).
    Null,
    /// Replaced by the gateway's keyed hash of the value (a plain hash of a value from a small
    /// space, which anyone could reverse by enumeration).
    Token,
    /// Masked whole, keeping only the type's shape: a value whose origin the gateway cannot
    /// establish (a relation or column the catalog does not know yet), so no category, no
    /// exemption and no partial mask applies.
    Redact,
    /// SQL text of another session: every string literal masked (`sql::literals_masked`).
    Literals,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPlan {
    pub action: Action,
    pub kind: TypeKind,
    /// 0 text, 1 binary.
    pub format: i16,
    /// Inside JSON: keys that name sensitive columns, and their category.
    pub keys: BTreeMap<String, Category>,
    /// Inside JSON: keys that name columns known to hold nothing tagged.
    pub safe_keys: BTreeSet<String>,
    /// JSON built by the query (`json_build_object('id', full_name)`, a row of a derived
    /// table): its keys were chosen by the query's author and say nothing, so every string
    /// is masked whole (and numbers too, when a category can be written as digits).
    pub whole_json: bool,
    /// Not a direct read of a column: a format-keeping partial mask (`***-**-6789`) could be
    /// rebuilt from pieces (`left(ssn, 3)`, `right(ssn, 4)`), so masked values are masked whole.
    pub whole: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultPlan {
    pub columns: Vec<ColumnPlan>,
    /// Categories left unmasked because of an exemption (for the audit).
    pub exempted: BTreeSet<Category>,
    /// The identity's exempt categories: detection leaves values of these alone.
    pub skip: BTreeSet<Category>,
    /// `table.column` of columns left unmasked because of a column exemption.
    pub exempted_columns: BTreeSet<String>,
    /// The result named a relation or column the catalog does not know: the catalog should be
    /// read again (its rows are masked whole meanwhile).
    pub stale: bool,
    /// What was unknown (`oid:…`, `name:…`): a read is started for what no recent read has
    /// looked for already.
    pub unknown: BTreeSet<String>,
    /// The result's column names (empty for COPY), for the audit of what detection masked.
    pub names: Vec<String>,
}

/// PostgreSQL's first OID for objects made after initdb: a relation below it is PostgreSQL's
/// own (`pg_class`, `information_schema.columns`) and never in the masking catalog.
pub const FIRST_NORMAL_OID: u32 = 16384;

impl ResultPlan {
    /// True when every column passes untouched: rows are forwarded as bytes.
    pub fn is_noop(&self) -> bool {
        self.columns.iter().all(|c| c.action == Action::Pass)
    }

    /// A binary COPY under this plan would have to replace a value that needs masking by
    /// NULL (its type cannot carry a mask in binary): such a COPY is refused before it runs.
    pub fn binary_copy_refused(&self) -> bool {
        self.columns.iter().any(|c| c.action == Action::Null)
    }

    pub fn masked_columns(&self) -> usize {
        self.columns
            .iter()
            .filter(|c| c.action != Action::Pass)
            .count()
    }
}

/// What a column's sensitivity is known to be.
enum Known {
    Categories(Vec<Category>, BTreeMap<String, Category>, BTreeSet<String>),
    /// Known to hold nothing tagged (may still get detection if text-like).
    Untagged {
        confirmed: bool,
    },
    Unknown,
    /// From a relation or column the catalog does not know (yet): masked whole if text-like.
    Unverified,
    /// A plain hash of a low-entropy category: replaced by the keyed hash.
    KeyedHash,
    /// Another session's statement text (`pg_stat_activity.query`): its literals masked.
    StatementText,
}

/// Categories whose values come from a space small enough to enumerate, so a plain hash of
/// one is reversed offline in seconds: 10⁹ national ids, ~10¹⁰ phone numbers, ~4·10⁴ dates of
/// birth, ~10⁹ card numbers once the issuer prefix and Luhn digit are known, IBANs (bank code
/// and check digits fix most of them), 2³² IPv4 addresses. Emails, names, addresses, secrets
/// and free text are not enumerable: their hashes pass.
pub fn low_entropy(c: Category) -> bool {
    matches!(
        c,
        Category::NationalId
            | Category::Phone
            | Category::BirthDate
            | Category::PaymentCard
            | Category::Iban
            | Category::IpAddress
    )
}

/// The inputs of a plan.
pub struct Planner<'a> {
    pub catalog: &'a Catalog,
    pub lineage: Option<&'a StatementLineage>,
    pub exempt: &'a BTreeSet<Category>,
    /// Columns the identity is exempt from, whatever their category.
    pub exempt_columns: &'a BTreeSet<super::exemptions::ColumnExemption>,
}

impl Planner<'_> {
    /// The plan for a result described by `fields`.
    pub fn plan(&self, fields: &[Field]) -> ResultPlan {
        let outputs = self.expanded_outputs();
        let aligned = outputs.as_ref().filter(|o| o.len() == fields.len());
        let mut plan = ResultPlan {
            skip: self.exempt.clone(),
            names: fields.iter().map(|f| f.name.clone()).collect(),
            ..ResultPlan::default()
        };
        let unknown_relations = self.names_unknown_relation();
        for (i, f) in fields.iter().enumerate() {
            if f.table_oid != 0 && f.attnum > 0 && !self.exempt_columns.is_empty() {
                if let Some((t, c)) = self.catalog.table_column(f.table_oid, f.attnum) {
                    if self
                        .exempt_columns
                        .iter()
                        .any(|e| e.matches(&t.schema, &t.name, &c.name))
                    {
                        plan.exempted_columns
                            .insert(format!("{}.{}.{}", t.schema, t.name, c.name));
                        plan.columns.push(ColumnPlan {
                            action: Action::Pass,
                            kind: type_kind(f.type_oid),
                            format: f.format,
                            keys: BTreeMap::new(),
                            safe_keys: BTreeSet::new(),
                            whole_json: false,
                            whole: false,
                        });
                        continue;
                    }
                }
            }
            let known = if f.table_oid != 0 && f.attnum > 0 {
                match self.catalog.column(f.table_oid, f.attnum) {
                    Some(c) => match c.category {
                        Some(cat) => Known::Categories(vec![cat], BTreeMap::new(), BTreeSet::new()),
                        None => Known::Untagged {
                            confirmed: Catalog::confirmed_safe(c),
                        },
                    },
                    // A user relation (or a column of one) the catalog does not know: created or
                    // changed since the catalog was read. Never trusted by its name alone.
                    None if f.table_oid >= FIRST_NORMAL_OID
                        || self.catalog.knows_oid(f.table_oid) =>
                    {
                        plan.stale = true;
                        plan.unknown.insert(format!("oid:{}", f.table_oid));
                        match category_for_name(&f.name) {
                            Some(cat) => {
                                Known::Categories(vec![cat], BTreeMap::new(), BTreeSet::new())
                            }
                            None => Known::Unverified,
                        }
                    }
                    // The planner's statistics: values sampled from every column of a table.
                    None if STATISTICS_VALUES.contains(&f.name.as_str()) => Known::Unverified,
                    // What other sessions run, literals included (`pg_stat_activity`).
                    None if f.name == "query" => Known::StatementText,
                    None => match category_for_name(&f.name) {
                        Some(cat) => Known::Categories(vec![cat], BTreeMap::new(), BTreeSet::new()),
                        None => Known::Unknown,
                    },
                }
            } else {
                match aligned.map(|o| &o[i]) {
                    Some(ExpandedOutput::Column(c)) => self.known_column(c),
                    Some(ExpandedOutput::Expr { sources, whole_row }) => {
                        self.known_expr(sources, *whole_row)
                    }
                    // The lineage cannot say which source this output is (a `*` over a derived
                    // table or a CTE, a statement it cannot read): it may be any column the
                    // statement reads, so it takes all their tags.
                    None => match category_for_name(&f.name) {
                        Some(cat) => Known::Categories(vec![cat], BTreeMap::new(), BTreeSet::new()),
                        None if unknown_relations => Known::Unverified,
                        None if self.lineage.is_some() => self.known_expr(&BTreeSet::new(), true),
                        None => Known::Unknown,
                    },
                }
            };
            if unknown_relations && !(f.table_oid != 0 && f.attnum > 0) {
                plan.stale = true;
                plan.unknown.extend(self.unknown_relations());
            }
            let mut col = self.column(known, type_kind(f.type_oid), f.format, &mut plan.exempted);
            if !(f.table_oid != 0 && f.attnum > 0) {
                col.whole = !matches!(aligned.map(|o| &o[i]), Some(ExpandedOutput::Column(_)));
                col.whole_json = match aligned.map(|o| &o[i]) {
                    Some(ExpandedOutput::Expr { sources, whole_row }) => {
                        !self.json_keys_trusted(sources, *whole_row)
                    }
                    Some(ExpandedOutput::Column(_)) => false,
                    None => true,
                };
            }
            plan.columns.push(col);
        }
        plan
    }

    /// How many columns the lineage's outputs expand to, if that is known.
    pub fn expanded_len(&self) -> Option<usize> {
        self.expanded_outputs().map(|o| o.len())
    }

    /// The first category of each of `n` outputs of the lineage (for view columns).
    pub fn source_categories(&self, n: usize) -> Vec<Option<Category>> {
        let outputs = self.expanded_outputs();
        (0..n)
            .map(|i| {
                let known = match outputs.as_ref().filter(|o| o.len() == n).map(|o| &o[i]) {
                    Some(ExpandedOutput::Column(c)) => self.known_column(c),
                    Some(ExpandedOutput::Expr { sources, whole_row }) => {
                        self.known_expr(sources, *whole_row)
                    }
                    None => Known::Unknown,
                };
                match known {
                    Known::Categories(c, _, _) => c.first().copied(),
                    _ => None,
                }
            })
            .collect()
    }

    /// The plan for COPY … TO STDOUT in text or CSV (no RowDescription): from the lineage alone.
    pub fn plan_copy(&self, columns: usize) -> ResultPlan {
        self.plan_copy_as(columns, CopyFormat::Text)
    }

    /// The plan for COPY … TO STDOUT in `format`, from the lineage alone. Output the lineage
    /// cannot line up with the rows (a statement it could not read, a wildcard over a name in
    /// two schemas) is of unknown origin: masked whole. In binary, values keep their binary
    /// form, so only columns of a known text-like type can carry a mask; a column that needs
    /// one otherwise is `Null` (and [`ResultPlan::binary_copy_refused`] says so).
    pub fn plan_copy_as(&self, columns: usize, format: CopyFormat) -> ResultPlan {
        let binary = format == CopyFormat::Binary;
        let outputs = self.expanded_outputs();
        let mut plan = ResultPlan {
            skip: self.exempt.clone(),
            stale: self.names_unknown_relation(),
            unknown: self.unknown_relations(),
            ..ResultPlan::default()
        };
        for i in 0..columns {
            let (known, kind, typed) = match outputs
                .as_ref()
                .filter(|o| o.len() == columns)
                .map(|o| &o[i])
            {
                Some(ExpandedOutput::Column(c)) => {
                    (self.known_column(c), type_kind(c.type_oid), true)
                }
                Some(ExpandedOutput::Expr { sources, whole_row }) => {
                    let bare = self.bare_kind(i);
                    (
                        self.known_expr(sources, *whole_row),
                        bare.unwrap_or(TypeKind::Other),
                        bare.is_some(),
                    )
                }
                None => (Known::Unverified, TypeKind::Other, false),
            };
            let unverified = matches!(known, Known::Unverified);
            let whole_json = match outputs
                .as_ref()
                .filter(|o| o.len() == columns)
                .map(|o| &o[i])
            {
                Some(ExpandedOutput::Expr { sources, whole_row }) => {
                    !self.json_keys_trusted(sources, *whole_row)
                }
                Some(ExpandedOutput::Column(_)) => false,
                None => true,
            };
            let mut col = if binary {
                self.column(known, kind, 1, &mut plan.exempted)
            } else {
                // COPY text and CSV carry every type as text: masks, not NULLs, where they fit
                // — an expression of unknown type is masked as text; a column whose type is
                // known not to be text (inet, an enum) keeps that, so its mask is a NULL, a
                // valid value, never `188.*.*.*/26`.
                let kind = if kind == TypeKind::Other && !typed {
                    TypeKind::Text
                } else {
                    kind
                };
                self.column(known, kind, 0, &mut plan.exempted)
            };
            // Of unknown origin and unknown binary form: detection cannot judge it.
            if binary && unverified && col.action == Action::Detect {
                col.action = Action::Null;
            }
            col.whole_json = whole_json && !typed;
            // A direct read of a table's column (`COPY t`, or a bare column of a plain SELECT)
            // keeps the mask's shape; anything computed is masked whole.
            col.whole = !typed;
            plan.columns.push(col);
        }
        plan
    }

    fn column(
        &self,
        known: Known,
        kind: TypeKind,
        format: i16,
        exempted: &mut BTreeSet<Category>,
    ) -> ColumnPlan {
        let mut keys = BTreeMap::new();
        let mut safe_keys = BTreeSet::new();
        let action = match known {
            Known::Categories(cats, k, safe) => {
                safe_keys = safe;
                let (exempt, cats): (Vec<Category>, Vec<Category>) =
                    cats.into_iter().partition(|c| self.exempt.contains(c));
                exempted.extend(exempt);
                keys = k
                    .into_iter()
                    .filter(|(_, c)| !self.exempt.contains(c))
                    .collect();
                if cats.is_empty() {
                    // Every category of this column is exempt for this identity.
                    Action::Pass
                } else {
                    match kind {
                        // A comparison reveals a bit of the value at a time (`substr(ssn, 1, 1)
                        // = '2'`), as a number does (`ascii(substr(ssn, 5, 1))`): no value.
                        TypeKind::Bool | TypeKind::Plain | TypeKind::Other | TypeKind::Bytea => {
                            Action::Null
                        }
                        TypeKind::TextArray | TypeKind::Json | TypeKind::Jsonb if format == 1 => {
                            Action::Null
                        }
                        _ => Action::Mask(cats),
                    }
                }
            }
            Known::Untagged { confirmed: true } => Action::Pass,
            Known::StatementText => match kind {
                TypeKind::Text => Action::Literals,
                _ => Action::Null,
            },
            Known::KeyedHash => match kind {
                TypeKind::Text | TypeKind::Bytea => Action::Token,
                // `hashtext(ssn)` (an integer) or a hash inside JSON: nothing valid to put there.
                _ => Action::Null,
            },
            Known::Unverified => match kind {
                TypeKind::Plain | TypeKind::Bool => Action::Pass,
                // Bytes, composites (a whole row of a temporary table), enums, inet…: what
                // they hold may be a name no detector sees (`convert_to(full_name, 'UTF8')`
                // reads as hex), and a masked value would not be valid for the type.
                TypeKind::Other | TypeKind::Bytea => Action::Null,
                TypeKind::TextArray if format == 1 => Action::Null,
                TypeKind::Text | TypeKind::Json | TypeKind::Jsonb | TypeKind::TextArray => {
                    Action::Redact
                }
            },
            Known::Untagged { confirmed: false } | Known::Unknown => match kind {
                TypeKind::Plain | TypeKind::Bool => Action::Pass,
                _ => Action::Detect,
            },
        };
        ColumnPlan {
            action,
            kind,
            format,
            keys,
            safe_keys,
            whole_json: false,
            whole: false,
        }
    }

    fn known_column(&self, c: &CatalogRef) -> Known {
        match c.category {
            Some(cat) => Known::Categories(vec![cat], BTreeMap::new(), BTreeSet::new()),
            None => Known::Untagged {
                confirmed: c.confirmed,
            },
        }
    }

    /// The tags of the columns an expression derives from, looked up in the statement's tables.
    fn known_expr(&self, sources: &BTreeSet<String>, whole_row: bool) -> Known {
        let Some(l) = self.lineage else {
            return Known::Unknown;
        };
        // Names are matched by name, not scope: with a relation the catalog does not know in
        // the statement, any output may come from it, whatever its known sources say.
        if self.names_unknown_relation()
            || sources
                .iter()
                .any(|s| s == CUSTOM_SETTING || unhashed(s) == Some(CUSTOM_SETTING))
            || (l.reads_activity && sources.iter().any(|s| s == "query"))
        {
            return Known::Unverified;
        }
        // Sources read only through a hash function are judged apart (see `low_entropy`).
        let (hashed, plain): (BTreeSet<String>, BTreeSet<String>) =
            sources.iter().cloned().partition(|s| unhashed(s).is_some());
        let hashed: BTreeSet<String> = hashed
            .iter()
            .filter_map(|s| unhashed(s).map(str::to_string))
            .collect();
        let sources = &plain;
        let mut cats: Vec<Category> = Vec::new();
        let mut keys = BTreeMap::new();
        let mut safe = BTreeSet::new();
        let mut hashed_cats: BTreeSet<Category> = BTreeSet::new();
        let mut found_any_table = false;
        for (_, tname) in &l.tables {
            for t in self.catalog.tables_named(tname) {
                found_any_table = true;
                for c in &t.columns {
                    let Some(cat) = c.category else {
                        safe.insert(c.name.clone());
                        continue;
                    };
                    if hashed.contains(&c.name) {
                        hashed_cats.insert(cat);
                    }
                    if whole_row || sources.contains(&c.name) {
                        if !cats.contains(&cat) {
                            cats.push(cat);
                        }
                        keys.insert(c.name.clone(), cat);
                    }
                }
            }
        }
        // Names the catalog does not know (a table created since it was read): the names alone.
        if !found_any_table || self.catalog.tables.is_empty() {
            hashed_cats.extend(hashed.iter().filter_map(|h| category_for_name(h)));
            for s in sources {
                if let Some(cat) = category_for_name(s) {
                    if !cats.contains(&cat) {
                        cats.push(cat);
                    }
                    keys.insert(s.clone(), cat);
                }
            }
            if whole_row && cats.is_empty() {
                return Known::Unknown;
            }
        }
        // Put the categories no detector recognises first: they decide a whole value's mask.
        cats.sort_by_key(|c| c.detectable());
        let reversible = hashed_cats
            .iter()
            .any(|c| low_entropy(*c) && !self.exempt.contains(c));
        if cats.is_empty() && reversible {
            Known::KeyedHash
        } else if reversible {
            // A reversible hash beside personal text: neither part may show.
            Known::Unverified
        } else if cats.is_empty() {
            Known::Untagged { confirmed: false }
        } else {
            safe.retain(|k| !keys.contains_key(k));
            Known::Categories(cats, keys, safe)
        }
    }

    /// Whether the keys of JSON an expression builds are a table's own column names: a whole
    /// row of a relation of the catalog (`row_to_json(c)` over `customers c`), and nothing
    /// else. Keys of `json_build_object`, of a derived table's or a CTE's row are the query
    /// author's choice.
    fn json_keys_trusted(&self, sources: &BTreeSet<String>, whole_row: bool) -> bool {
        let Some(l) = self.lineage else {
            return false;
        };
        whole_row
            && !sources.is_empty()
            && sources.iter().all(|s| {
                l.tables.iter().any(|(alias, name)| {
                    (alias == s || name == s)
                        && !l.ctes.contains(name)
                        && self.catalog.knows_name(name)
                })
            })
    }

    /// The type of output `i` when it reads a column as it is and every column of that name
    /// in the statement's relations has one kind of type.
    fn bare_kind(&self, i: usize) -> Option<TypeKind> {
        let l = self.lineage?;
        let name = l.bare.get(i)?.as_ref()?;
        let mut kinds = l
            .tables
            .iter()
            .flat_map(|(_, t)| self.catalog.tables_named(t))
            .flat_map(|t| t.columns.iter().filter(|c| &c.name == name))
            .map(|c| type_kind(c.type_oid));
        let first = kinds.next()?;
        kinds.all(|k| k == first).then_some(first)
    }

    /// Whether the statement reads a relation the catalog does not know: not one of its CTEs,
    /// not PostgreSQL's own (`pg_…`, or qualified by `pg_catalog`/`information_schema`, which
    /// the lineage leaves out). Created or changed since the catalog was read, or temporary.
    /// A call of a function or operator that may be the database's own counts as one: it may
    /// read any relation.
    pub fn names_unknown_relation(&self) -> bool {
        !self.unknown_relations().is_empty()
    }

    /// The names (`name:…`) of the relations [`Self::names_unknown_relation`] is about.
    pub fn unknown_relations(&self) -> BTreeSet<String> {
        let Some(l) = self.lineage else {
            return BTreeSet::new();
        };
        let code = self.catalog.code.as_ref();
        l.tables
            .iter()
            .filter(|(_, t)| {
                !l.ctes.contains(t) && !t.starts_with("pg_") && !self.catalog.knows_name(t)
            })
            .map(|(_, t)| format!("name:{t}"))
            // Code of the database's own can return whatever it reads (see `masking::code`).
            .chain(
                l.functions
                    .iter()
                    .filter(|f| !super::code::trusts_function(code, f))
                    .map(|f| format!("function:{f}")),
            )
            .chain(
                l.operators
                    .iter()
                    .filter(|o| !super::code::trusts_operator(code, o))
                    .map(|o| format!("operator:{o}")),
            )
            .collect()
    }

    /// The lineage's outputs with wildcards expanded through the catalog, or None.
    fn expanded_outputs(&self) -> Option<Vec<ExpandedOutput>> {
        let l = self.lineage?;
        let outs = l.outputs.as_ref()?;
        let mut v = Vec::new();
        for o in outs {
            match o {
                Output::Expr { sources, whole_row } => v.push(ExpandedOutput::Expr {
                    sources: sources.clone(),
                    whole_row: *whole_row,
                }),
                // `*` over the top-level FROM, where the lineage knows it: relations from the
                // catalog, derived tables and CTEs from their own outputs.
                Output::Wildcard(q) if !l.from.is_empty() => {
                    let mut any = false;
                    for (alias, name) in l
                        .from
                        .iter()
                        .filter(|(a, n)| q.as_ref().is_none_or(|q| q == a || q == n))
                    {
                        any = true;
                        if name.is_empty() {
                            return None;
                        }
                        if let Some(outs) = l.derived.get(alias).or_else(|| l.derived.get(name)) {
                            for o in outs {
                                match o {
                                    Output::Expr { sources, whole_row } => {
                                        v.push(ExpandedOutput::Expr {
                                            sources: sources.clone(),
                                            whole_row: *whole_row,
                                        })
                                    }
                                    Output::Wildcard(_) => return None,
                                }
                            }
                            continue;
                        }
                        if l.ctes.contains(name) {
                            return None;
                        }
                        let mut found = self.catalog.tables_named(name);
                        let table = found.next()?;
                        if found.next().is_some() {
                            return None;
                        }
                        for c in &table.columns {
                            v.push(ExpandedOutput::Column(CatalogRef {
                                category: c.category,
                                confirmed: Catalog::confirmed_safe(c),
                                type_oid: c.type_oid,
                            }));
                        }
                    }
                    if !any {
                        return None;
                    }
                }
                Output::Wildcard(q) => {
                    let tables: Vec<&String> = l
                        .tables
                        .iter()
                        .filter(|(alias, name)| q.as_ref().is_none_or(|q| q == alias || q == name))
                        .map(|(_, name)| name)
                        .collect();
                    if tables.is_empty() {
                        return None;
                    }
                    for t in tables {
                        let mut found = self.catalog.tables_named(t);
                        let table = found.next()?;
                        if found.next().is_some() {
                            // The same name in two schemas: which one depends on search_path.
                            return None;
                        }
                        for c in &table.columns {
                            v.push(ExpandedOutput::Column(CatalogRef {
                                category: c.category,
                                confirmed: Catalog::confirmed_safe(c),
                                type_oid: c.type_oid,
                            }));
                        }
                    }
                }
            }
        }
        Some(v)
    }
}

struct CatalogRef {
    category: Option<Category>,
    confirmed: bool,
    type_oid: u32,
}

enum ExpandedOutput {
    Column(CatalogRef),
    Expr {
        sources: BTreeSet<String>,
        whole_row: bool,
    },
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::masking::catalog::RawColumn;
    use crate::masking::lineage::analyse;

    fn catalog() -> Catalog {
        let col = |attnum: i16, name: &str, ty: u32| RawColumn {
            table_oid: 100,
            schema: "public".into(),
            table: "people".into(),
            relkind: "r".into(),
            attnum,
            name: name.into(),
            type_oid: ty,
            type_name: String::new(),
            comment: None,
        };
        let mut c = Catalog::build(
            vec![
                col(1, "id", 23),
                col(2, "full_name", 25),
                col(3, "email", 25),
                col(4, "birth_date", 1082),
                col(5, "amount", 1700),
            ],
            &HashMap::new(),
            &[],
        );
        // A database that defines no functions or operators of its own.
        c.code = Some(Default::default());
        c
    }

    /// A planner over `cat` for one statement, with no exemptions.
    fn planner<'a>(cat: &'a Catalog, st: Option<&'a StatementLineage>) -> Planner<'a> {
        static NONE: std::sync::LazyLock<BTreeSet<Category>> =
            std::sync::LazyLock::new(BTreeSet::new);
        static NO_COLUMNS: std::sync::LazyLock<
            BTreeSet<super::super::exemptions::ColumnExemption>,
        > = std::sync::LazyLock::new(BTreeSet::new);
        Planner {
            catalog: cat,
            lineage: st,
            exempt: &NONE,
            exempt_columns: &NO_COLUMNS,
        }
    }

    fn field(name: &str, table_oid: u32, attnum: i16, type_oid: u32) -> Field {
        Field {
            name: name.into(),
            table_oid,
            attnum,
            type_oid,
            format: 0,
        }
    }

    #[test]
    fn code_of_the_database_makes_outputs_of_unknown_origin() {
        let mut cat = catalog();
        let none = BTreeSet::new();
        let plan = |cat: &Catalog, sql: &str| {
            let l = analyse(sql);
            Planner {
                catalog: cat,
                lineage: l.statements.first(),
                exempt: &none,
                exempt_columns: &Default::default(),
            }
            .plan(&[field("x", 0, 0, 25), field("n", 0, 0, 20)])
        };
        let actions = |p: ResultPlan| p.columns.into_iter().map(|c| c.action).collect::<Vec<_>>();
        // PostgreSQL's own: a count reveals nothing, text of no tagged column is judged by value.
        let builtin = plan(
            &cat,
            "SELECT lower('x') AS x, count(full_name) AS n FROM people",
        );
        assert!(!builtin.stale);
        assert_eq!(actions(builtin), vec![Action::Detect, Action::Pass]);
        // A function the database defines (under any name), or qualified with another schema.
        cat.code = Some(super::super::code::UserCode {
            functions: ["leak".to_string(), "count".to_string()].into(),
            ..Default::default()
        });
        for sql in [
            "SELECT leak() AS x, 1 AS n",
            "SELECT count(full_name) AS x, count(*) AS n FROM people",
            "SELECT pg_temp.lower(full_name) AS x, 1 AS n FROM people",
            "SELECT x, 1 AS n FROM (SELECT leak() AS x) s",
        ] {
            let p = plan(&cat, sql);
            assert!(p.stale, "{sql}: a read of the catalog is due");
            assert!(
                p.unknown.iter().any(|u| u.starts_with("function:")),
                "{sql}"
            );
            assert_eq!(actions(p)[0], Action::Redact, "{sql}");
        }
        // Written `pg_catalog.count`, it is PostgreSQL's own whatever the database defines.
        let p = plan(
            &cat,
            "SELECT 'a' AS x, pg_catalog.count(full_name) AS n FROM people",
        );
        assert_eq!(actions(p), vec![Action::Detect, Action::Pass]);
        // Not known what the database defines: nothing is taken at its word.
        cat.code = None;
        assert_eq!(
            actions(plan(&cat, "SELECT lower('x') AS x, 1 AS n"))[0],
            Action::Redact
        );
    }

    #[test]
    fn direct_columns_expressions_and_safe_ones() {
        let cat = catalog();
        let l = analyse("SELECT id, email AS e, upper(full_name), md5(email), birth_date, amount, note FROM people");
        let p = planner(&cat, l.statements.first());
        let plan = p.plan(&[
            field("id", 100, 1, 23),
            field("e", 100, 3, 25),
            field("upper", 0, 0, 25),
            field("md5", 0, 0, 25),
            field("birth_date", 100, 4, 1082),
            field("amount", 100, 5, 1700),
            field("note", 0, 0, 25),
        ]);
        let a: Vec<&Action> = plan.columns.iter().map(|c| &c.action).collect();
        assert_eq!(a[0], &Action::Pass);
        assert_eq!(a[1], &Action::Mask(vec![Category::Email]));
        assert_eq!(a[2], &Action::Mask(vec![Category::PersonName]));
        assert_eq!(
            a[3],
            &Action::Detect,
            "a hash is text: detection, which finds nothing"
        );
        assert_eq!(a[4], &Action::Null, "a date of birth cannot hold a mask");
        assert_eq!(a[5], &Action::Pass);
        assert_eq!(a[6], &Action::Detect);
        assert!(
            !plan.columns[1].whole,
            "a direct read keeps the mask's shape"
        );
        assert!(plan.columns[2].whole, "an expression is masked whole");
        let l = analyse(
            "SELECT substr(email, 1, 1) = 'a', length(full_name), count(email) FROM people",
        );
        let q = Planner {
            lineage: l.statements.first(),
            ..p
        };
        let plan = q.plan(&[
            field("b", 0, 0, 16),
            field("length", 0, 0, 23),
            field("count", 0, 0, 20),
        ]);
        let a: Vec<&Action> = plan.columns.iter().map(|c| &c.action).collect();
        assert_eq!(
            a,
            [&Action::Null, &Action::Null, &Action::Pass],
            "comparisons and lengths reveal pieces"
        );
        let l = analyse("SELECT id, count(*) FROM people");
        let p = Planner {
            lineage: l.statements.first(),
            ..p
        };
        let ints = p.plan(&[field("id", 100, 1, 23), field("count", 0, 0, 20)]);
        assert!(ints.is_noop());
    }

    #[test]
    fn exemptions_and_copy() {
        let cat = catalog();
        let l = analyse("COPY people TO STDOUT");
        let ex: BTreeSet<Category> = [Category::Email].into();
        let p = Planner {
            catalog: &cat,
            lineage: l.statements.first(),
            exempt: &ex,
            exempt_columns: &Default::default(),
        };
        let plan = p.plan_copy(5);
        let a: Vec<&Action> = plan.columns.iter().map(|c| &c.action).collect();
        assert_eq!(a[0], &Action::Pass);
        assert_eq!(a[1], &Action::Mask(vec![Category::PersonName]));
        assert_eq!(a[2], &Action::Pass, "exempt");
        assert_eq!(a[3], &Action::Null);
        assert!(plan.exempted.contains(&Category::Email));
    }

    #[test]
    fn relations_the_catalog_does_not_know_are_masked_whole() {
        let cat = catalog();
        // A table created since the catalog was read: its oid is unknown.
        let l = analyse("SELECT * FROM customers");
        let p = planner(&cat, l.statements.first());
        let plan = p.plan(&[
            field("id", 90000, 1, 23),
            field("display", 90000, 2, 25),
            field("email", 90000, 3, 25),
            field("profile", 90000, 4, 3802),
            field("kind", 90000, 5, 90001),
        ]);
        assert!(plan.stale, "a read of the catalog is due");
        let a: Vec<&Action> = plan.columns.iter().map(|c| &c.action).collect();
        assert_eq!(a[0], &Action::Pass, "numbers stay clear");
        assert_eq!(a[1], &Action::Redact);
        assert_eq!(
            a[2],
            &Action::Mask(vec![Category::Email]),
            "names still count"
        );
        assert_eq!(a[3], &Action::Redact);
        assert_eq!(
            a[4],
            &Action::Null,
            "other types (enums, composites, bytes) hold what no detector sees"
        );
        // A known table, a column added since the read.
        let plan = p.plan(&[field("nickname", 100, 9, 25)]);
        assert_eq!(plan.columns[0].action, Action::Redact);
        // PostgreSQL's own relations are never in the catalog and are not stale.
        let plan = p.plan(&[field("relname", 1259, 2, 19)]);
        assert!(!plan.stale);
        assert_eq!(plan.columns[0].action, Action::Detect);
        // Expressions over a relation the catalog does not know, even beside a known one.
        let l = analyse("SELECT upper(p.status), t.x FROM people p JOIN tmp t ON t.id = p.id");
        let p = planner(&cat, l.statements.first());
        let plan = p.plan(&[field("upper", 0, 0, 25), field("n", 0, 0, 23)]);
        assert!(plan.stale);
        assert_eq!(plan.columns[0].action, Action::Redact);
        assert_eq!(plan.columns[1].action, Action::Pass);
        // CTEs and catalog relations are not unknown relations.
        let l = analyse("WITH c AS (SELECT id FROM people) SELECT relname FROM c, pg_class");
        let p = planner(&cat, l.statements.first());
        let plan = p.plan(&[field("relname", 0, 0, 25)]);
        assert!(!plan.stale);
        assert_eq!(plan.columns[0].action, Action::Detect);
    }

    #[test]
    fn plain_hashes_of_small_spaces_become_keyed() {
        let cat = catalog();
        let l = analyse(
            "SELECT md5(birth_date::text), sha256(birth_date::text::bytea), hashtext(birth_date::text), md5(email), md5(birth_date::text) || full_name FROM people",
        );
        let p = planner(&cat, l.statements.first());
        let plan = p.plan(&[
            field("md5", 0, 0, 25),
            field("sha256", 0, 0, 17),
            field("hashtext", 0, 0, 23),
            field("md5", 0, 0, 25),
            field("x", 0, 0, 25),
        ]);
        let a: Vec<&Action> = plan.columns.iter().map(|c| &c.action).collect();
        assert_eq!(a[0], &Action::Token);
        assert_eq!(a[1], &Action::Token, "bytea keeps its type");
        assert_eq!(a[2], &Action::Null, "an integer hash has no keyed form");
        assert_eq!(a[3], &Action::Detect, "emails are no small space");
        assert_eq!(a[4], &Action::Redact);
        // Exempt from the category: the hash is theirs to see.
        let ex: BTreeSet<Category> = [Category::BirthDate].into();
        let p = Planner {
            catalog: &cat,
            lineage: l.statements.first(),
            exempt: &ex,
            exempt_columns: &Default::default(),
        };
        let plan = p.plan(&[
            field("md5", 0, 0, 25),
            field("sha256", 0, 0, 17),
            field("hashtext", 0, 0, 23),
            field("md5", 0, 0, 25),
            field("x", 0, 0, 25),
        ]);
        assert_eq!(plan.columns[0].action, Action::Detect);
    }
}
