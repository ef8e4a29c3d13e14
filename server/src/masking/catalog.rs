//! The catalog of an environment's database: tables and views, their columns and types, and
//! the sensitivity tag of each column, decided from (in order) an admin override, the column
//! name, its comment, and a bounded sample of its values run through the detectors.
//!
//! Architecture invariant: pure; the rows come from `pg::catalog` and overrides from the store.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::Serialize;

use super::code::UserCode;
use super::detect::{detect, find_spans, Category};
use super::lineage::Touch;
use super::names::category_for_name;

/// Why a column carries its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TagSource {
    Name,
    Comment,
    Values,
    /// An administrator confirmed or set the tag.
    Override,
    /// A view column derived from a tagged base column.
    View,
    /// Nothing suggested a category.
    None,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CatalogColumn {
    pub attnum: i16,
    pub name: String,
    pub type_name: String,
    #[serde(skip)]
    pub type_oid: u32,
    pub comment: Option<String>,
    /// The category (`email`, `person_name`, …) or none.
    #[schema(value_type = Option<String>)]
    pub category: Option<Category>,
    pub source: TagSource,
    /// What the gateway decided before any override.
    #[serde(skip)]
    pub detected: (Option<Category>, TagSource),
    /// Values sampled to decide the tag (never stored or shown).
    pub sampled: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CatalogTable {
    #[serde(skip)]
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `table`, `view`, `materialized_view`, `foreign_table`, `partitioned_table`.
    pub kind: String,
    pub columns: Vec<CatalogColumn>,
}

/// One row of the catalog query (a column of a relation).
#[derive(Debug, Clone)]
pub struct RawColumn {
    pub table_oid: u32,
    pub schema: String,
    pub table: String,
    pub relkind: String,
    pub attnum: i16,
    pub name: String,
    pub type_oid: u32,
    pub type_name: String,
    pub comment: Option<String>,
}

/// An admin's decision about one column: a category, or `None` to confirm it holds none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Override {
    pub environment: String,
    pub schema: String,
    pub table: String,
    pub column: String,
    #[schema(value_type = Option<String>)]
    pub category: Option<Category>,
    pub set_by: String,
    #[schema(value_type = String)]
    pub set_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Catalog {
    pub tables: Vec<CatalogTable>,
    #[schema(value_type = String)]
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip)]
    by_oid: HashMap<u32, usize>,
    #[serde(skip)]
    by_name: HashMap<String, Vec<usize>>,
    /// What the database defines besides PostgreSQL's own functions and operators; `None`
    /// until read, and from a schema change that may define code until the next read.
    #[serde(skip)]
    pub code: Option<UserCode>,
    /// The columns filled through the gateway from tagged ones ([`Catalog::tag_filled`]),
    /// kept in the store with the catalog.
    #[serde(skip)]
    pub filled: Vec<super::FilledColumn>,
}

fn kind_name(relkind: &str) -> &'static str {
    match relkind {
        "v" => "view",
        "m" => "materialized_view",
        "f" => "foreign_table",
        "p" => "partitioned_table",
        _ => "table",
    }
}

/// The category a bounded sample of values suggests: one category for most whole values, or
/// `free_text` when values hold sensitive parts inside other text.
pub fn category_from_samples(values: &[String]) -> Option<Category> {
    let non_empty: Vec<&String> = values.iter().filter(|v| !v.trim().is_empty()).collect();
    if non_empty.is_empty() {
        return None;
    }
    let mut counts: HashMap<Category, usize> = HashMap::new();
    let mut with_spans = 0;
    for v in &non_empty {
        if let Some(c) = detect(v) {
            *counts.entry(c).or_default() += 1;
        } else if !find_spans(v).is_empty() {
            with_spans += 1;
        }
    }
    if let Some((c, n)) = counts.iter().max_by_key(|(_, n)| **n) {
        if *n * 2 >= non_empty.len() {
            return Some(*c);
        }
    }
    // Any sensitive value at all in a column makes it free text that needs masking.
    (with_spans > 0 || !counts.is_empty()).then_some(Category::FreeText)
}

/// What the store keeps of a catalog: the columns and the tags the gateway found, never the
/// sampled values; overrides are applied again when it is restored.
#[derive(Serialize, serde::Deserialize)]
struct Stored {
    loaded_at: chrono::DateTime<chrono::Utc>,
    tables: Vec<StoredTable>,
    #[serde(default)]
    code: Option<UserCode>,
    #[serde(default)]
    filled: Vec<super::FilledColumn>,
}

#[derive(Serialize, serde::Deserialize)]
struct StoredTable {
    oid: u32,
    schema: String,
    name: String,
    kind: String,
    columns: Vec<StoredColumn>,
}

#[derive(Serialize, serde::Deserialize)]
struct StoredColumn {
    attnum: i16,
    name: String,
    type_name: String,
    type_oid: u32,
    comment: Option<String>,
    detected: Option<Category>,
    detected_source: TagSource,
    sampled: usize,
}

impl Catalog {
    /// The form the store keeps (see [`Stored`]).
    pub fn to_stored_json(&self) -> String {
        let stored = Stored {
            loaded_at: self.loaded_at,
            tables: self
                .tables
                .iter()
                .map(|t| StoredTable {
                    oid: t.oid,
                    schema: t.schema.clone(),
                    name: t.name.clone(),
                    kind: t.kind.clone(),
                    columns: t
                        .columns
                        .iter()
                        .map(|c| StoredColumn {
                            attnum: c.attnum,
                            name: c.name.clone(),
                            type_name: c.type_name.clone(),
                            type_oid: c.type_oid,
                            comment: c.comment.clone(),
                            detected: c.detected.0,
                            detected_source: c.detected.1,
                            sampled: c.sampled,
                        })
                        .collect(),
                })
                .collect(),
            code: self.code.clone(),
            filled: self.filled.clone(),
        };
        serde_json::to_string(&stored).unwrap_or_else(|_| "{}".into())
    }

    /// A catalog the store kept, with `overrides` applied as they are now.
    pub fn from_stored_json(json: &str, overrides: &[Override]) -> serde_json::Result<Catalog> {
        let stored: Stored = serde_json::from_str(json)?;
        let tables = stored
            .tables
            .into_iter()
            .map(|t| CatalogTable {
                oid: t.oid,
                schema: t.schema,
                name: t.name,
                kind: t.kind,
                columns: t
                    .columns
                    .into_iter()
                    .map(|c| CatalogColumn {
                        attnum: c.attnum,
                        name: c.name,
                        type_name: c.type_name,
                        type_oid: c.type_oid,
                        comment: c.comment,
                        category: c.detected,
                        source: c.detected_source,
                        detected: (c.detected, c.detected_source),
                        sampled: c.sampled,
                    })
                    .collect(),
            })
            .collect();
        let mut c = Catalog::indexed(tables, stored.loaded_at).with_overrides(overrides);
        c.code = stored.code;
        c.filled = stored.filled;
        Ok(c)
    }

    /// A catalog over `tables` with its lookup indices.
    fn indexed(tables: Vec<CatalogTable>, loaded_at: chrono::DateTime<chrono::Utc>) -> Catalog {
        let mut by_oid = HashMap::new();
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in tables.iter().enumerate() {
            by_oid.insert(t.oid, i);
            by_name.entry(t.name.clone()).or_default().push(i);
        }
        Catalog {
            tables,
            loaded_at,
            by_oid,
            by_name,
            code: None,
            filled: Vec::new(),
        }
    }

    pub fn empty() -> Catalog {
        Catalog::build(Vec::new(), &HashMap::new(), &[])
    }

    /// Builds the catalog from the catalog rows, the sampled values of text-like columns
    /// (keyed by table oid and attnum) and the admin overrides.
    pub fn build(
        raw: Vec<RawColumn>,
        samples: &HashMap<(u32, i16), Vec<String>>,
        overrides: &[Override],
    ) -> Catalog {
        let mut tables: Vec<CatalogTable> = Vec::new();
        let mut by_oid: HashMap<u32, usize> = HashMap::new();
        for r in raw {
            let idx = *by_oid.entry(r.table_oid).or_insert_with(|| {
                tables.push(CatalogTable {
                    oid: r.table_oid,
                    schema: r.schema.clone(),
                    name: r.table.clone(),
                    kind: kind_name(&r.relkind).into(),
                    columns: Vec::new(),
                });
                tables.len() - 1
            });
            let sample = samples.get(&(r.table_oid, r.attnum));
            let over = overrides
                .iter()
                .find(|o| o.schema == r.schema && o.table == r.table && o.column == r.name);
            let detected = if let Some(c) = category_for_name(&r.name) {
                (Some(c), TagSource::Name)
            } else if let Some(c) = r.comment.as_deref().and_then(comment_category) {
                (Some(c), TagSource::Comment)
            } else if let Some(c) = sample.and_then(|s| category_from_samples(s)) {
                (Some(c), TagSource::Values)
            } else {
                (None, TagSource::None)
            };
            let (category, source) = match over {
                Some(o) => (o.category, TagSource::Override),
                None => detected,
            };
            tables[idx].columns.push(CatalogColumn {
                attnum: r.attnum,
                name: r.name,
                type_name: r.type_name,
                type_oid: r.type_oid,
                comment: r.comment,
                category,
                source,
                detected,
                sampled: sample.map(|s| s.len()).unwrap_or(0),
            });
        }
        Catalog::indexed(
            tables,
            chrono::DateTime::<chrono::Utc>::from(SystemTime::now()),
        )
    }

    /// Like [`Catalog::build`], then view columns with no tag of their own take the tags of the
    /// base columns their definition derives them from (lineage of the view's query).
    pub fn build_with_views(
        raw: Vec<RawColumn>,
        samples: &HashMap<(u32, i16), Vec<String>>,
        views: &HashMap<u32, String>,
        overrides: &[Override],
        code: Option<UserCode>,
    ) -> Catalog {
        let mut c = Catalog::build(raw, samples, overrides);
        c.code = code;
        // Views over views: a few rounds reach a fixed point for any sane nesting.
        for _ in 0..4 {
            let mut changes = Vec::new();
            for (ti, t) in c.tables.iter().enumerate() {
                let Some(def) = views.get(&t.oid) else {
                    continue;
                };
                let lineage = super::lineage::analyse(def);
                let Some(st) = lineage.statements.first() else {
                    continue;
                };
                let planner = super::plan::Planner {
                    catalog: &c,
                    lineage: Some(st),
                    exempt: &Default::default(),
                    exempt_columns: &Default::default(),
                };
                let cats = planner.source_categories(t.columns.len());
                // Over a function of the database's own (or anything else it cannot see
                // through), a view's text may hold whatever that read: free text.
                let opaque = planner.names_unknown_relation();
                for (ci, col) in t.columns.iter().enumerate() {
                    if col.category.is_none() && col.source != TagSource::Override {
                        match cats.get(ci) {
                            Some(Some(cat)) => changes.push((ti, ci, *cat)),
                            _ if opaque && text_like(col) => {
                                changes.push((ti, ci, Category::FreeText))
                            }
                            _ => {}
                        }
                    }
                }
            }
            if changes.is_empty() {
                break;
            }
            for (ti, ci, cat) in changes {
                let col = &mut c.tables[ti].columns[ci];
                col.category = Some(cat);
                col.source = TagSource::View;
                col.detected = (Some(cat), TagSource::View);
            }
        }
        c
    }

    /// The same catalog with `overrides` applied in place of earlier ones.
    pub fn with_overrides(&self, overrides: &[Override]) -> Catalog {
        let mut c = self.clone();
        c.apply_overrides(overrides);
        c
    }

    /// [`Catalog::with_overrides`] in place.
    pub fn apply_overrides(&mut self, overrides: &[Override]) {
        for t in &mut self.tables {
            for col in &mut t.columns {
                let o = overrides
                    .iter()
                    .find(|o| o.schema == t.schema && o.table == t.name && o.column == col.name);
                (col.category, col.source) = match o {
                    Some(o) => (o.category, TagSource::Override),
                    None => col.detected,
                };
            }
        }
    }

    /// The same catalog without the relations a schema change touched: until they are read
    /// again the plan treats them as unknown (masked whole), never by their old identity.
    pub fn without(&self, touch: &Touch) -> Catalog {
        let tables = match touch {
            Touch::Code => {
                let mut c = self.clone();
                c.code = None;
                return c;
            }
            Touch::Everything => Vec::new(),
            Touch::Tables(names) => self
                .tables
                .iter()
                .filter(|t| !names.contains(&t.name))
                .cloned()
                .collect(),
        };
        let mut c = Catalog::indexed(tables, self.loaded_at);
        // A DDL statement the gateway could not read may have defined code too.
        if *touch != Touch::Everything {
            c.code = self.code.clone();
        }
        c.filled = self.filled.clone();
        c
    }

    /// Columns filled through the gateway from tagged ones take their category, unless a tag
    /// of their own or an admin's decision says otherwise (`TagSource::View`: derived from
    /// tagged base columns, as a view's are).
    pub fn tag_filled(&mut self, filled: &[super::FilledColumn]) {
        self.filled = filled.to_vec();
        for f in filled {
            for t in self.tables.iter_mut().filter(|t| t.name == f.table) {
                let col = match &f.column {
                    Some(name) => t.columns.iter_mut().find(|c| &c.name == name),
                    None => t.columns.get_mut(f.position),
                };
                if let Some(col) = col {
                    if col.category.is_none()
                        && col.source != TagSource::Override
                        && (!f.text_only || text_like(col))
                    {
                        col.category = Some(f.category);
                        col.source = TagSource::View;
                        col.detected = (Some(f.category), TagSource::View);
                    }
                }
            }
        }
    }

    /// Whether the catalog holds a relation of that name (without schema) in any schema.
    pub fn knows_name(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Whether the catalog holds the relation with that OID.
    pub fn knows_oid(&self, oid: u32) -> bool {
        self.by_oid.contains_key(&oid)
    }

    pub fn column(&self, table_oid: u32, attnum: i16) -> Option<&CatalogColumn> {
        self.table_column(table_oid, attnum).map(|(_, c)| c)
    }

    /// A column with its table.
    pub fn table_column(
        &self,
        table_oid: u32,
        attnum: i16,
    ) -> Option<(&CatalogTable, &CatalogColumn)> {
        let t = &self.tables[*self.by_oid.get(&table_oid)?];
        t.columns
            .iter()
            .find(|c| c.attnum == attnum)
            .map(|c| (t, c))
    }

    /// Tables of that name (without schema) in any schema.
    pub fn tables_named(&self, name: &str) -> impl Iterator<Item = &CatalogTable> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| &self.tables[i])
    }

    /// Whether the column was confirmed by an admin to hold nothing sensitive.
    pub fn confirmed_safe(c: &CatalogColumn) -> bool {
        c.source == TagSource::Override && c.category.is_none()
    }
}

/// Whether a column's type can hold text (a mask of free text is only valid there).
fn text_like(c: &CatalogColumn) -> bool {
    !matches!(
        super::plan::type_kind(c.type_oid),
        super::plan::TypeKind::Plain | super::plan::TypeKind::Bool | super::plan::TypeKind::Bytea
    )
}

/// A column comment that says what the column holds ("customer e-mail", "PII: phone").
fn comment_category(comment: &str) -> Option<Category> {
    let lower = comment.to_lowercase();
    for w in lower.split(|c: char| !c.is_alphanumeric() && c != '_') {
        if w.is_empty() {
            continue;
        }
        if let Some(c) = category_for_name(w) {
            return Some(c);
        }
    }
    (lower.contains("e-mail")).then_some(Category::Email)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(attnum: i16, name: &str, ty: &str) -> RawColumn {
        RawColumn {
            table_oid: 10,
            schema: "public".into(),
            table: "people".into(),
            relkind: "r".into(),
            attnum,
            name: name.into(),
            type_oid: 25,
            type_name: ty.into(),
            comment: None,
        }
    }

    #[test]
    fn tags_from_names_values_comments_and_overrides() {
        let mut samples = HashMap::new();
        samples.insert((10, 2), vec!["ana@example.com".into(), "bo@x.org".into()]);
        samples.insert(
            (10, 3),
            vec!["hello".into(), "call +1 (415) 555-0132".into()],
        );
        samples.insert((10, 4), vec!["shipped".into(), "pending".into()]);
        let mut r5 = raw(5, "contact", "text");
        r5.comment = Some("Customer e-mail address".into());
        let c = Catalog::build(
            vec![
                raw(1, "full_name", "text"),
                raw(2, "contact_1", "text"),
                raw(3, "notes", "text"),
                raw(4, "status", "text"),
                r5,
                raw(6, "name", "text"),
            ],
            &samples,
            &[Override {
                environment: "app".into(),
                set_by: "admin".into(),
                set_at: chrono::Utc::now(),
                schema: "public".into(),
                table: "people".into(),
                column: "name".into(),
                category: None,
            }],
        );
        let cat = |n| c.column(10, n).and_then(|c| c.category);
        assert_eq!(cat(1), Some(Category::PersonName));
        assert_eq!(cat(2), Some(Category::Email));
        assert_eq!(c.column(10, 2).map(|c| c.source), Some(TagSource::Values));
        assert_eq!(cat(3), Some(Category::FreeText));
        assert_eq!(cat(4), None);
        assert_eq!(cat(5), Some(Category::Email));
        assert_eq!(cat(6), None);
        assert!(Catalog::confirmed_safe(c.column(10, 6).expect("col")));
        assert_eq!(c.tables_named("people").count(), 1);
    }

    #[test]
    fn the_stored_form_keeps_tags_drops_samples_and_takes_todays_overrides() {
        let mut samples = HashMap::new();
        samples.insert((10, 2), vec!["ana@example.com".into(), "bo@x.org".into()]);
        let c = Catalog::build(
            vec![raw(1, "full_name", "text"), raw(2, "contact_1", "text")],
            &samples,
            &[],
        );
        let json = c.to_stored_json();
        assert!(!json.contains("ana@example.com"), "{json}");
        let back = Catalog::from_stored_json(&json, &[]).unwrap();
        assert_eq!(back.loaded_at, c.loaded_at);
        assert_eq!(
            back.column(10, 2)
                .map(|c| (c.category, c.source, c.sampled)),
            Some((Some(Category::Email), TagSource::Values, 2))
        );
        assert_eq!(back.tables_named("people").count(), 1);
        let over = Override {
            environment: "app".into(),
            set_by: "admin".into(),
            set_at: chrono::Utc::now(),
            schema: "public".into(),
            table: "people".into(),
            column: "full_name".into(),
            category: None,
        };
        let back = Catalog::from_stored_json(&json, &[over]).unwrap();
        let col = back.column(10, 1).unwrap();
        assert_eq!((col.category, col.source), (None, TagSource::Override));
        assert_eq!(col.detected, (Some(Category::PersonName), TagSource::Name));
        assert!(Catalog::from_stored_json("{", &[]).is_err());
    }
}
