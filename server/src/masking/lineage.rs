//! Lineage: for each result column of a statement, the source columns it derives from.
//!
//! sqlparser (PostgreSQL dialect) reads the statement; each projection item's expression is
//! walked for column references, through aliases, casts, functions, concatenation, `format`,
//! CASE, scalar subqueries, CTEs and derived tables (an alias defined inside resolves to the
//! columns behind it), UNION branches (position by position), JSON builders and aggregates, and
//! `RETURNING`. A bare table or alias name used as a value (`row_to_json(p)`, `to_jsonb(people)`)
//! is a whole-row reference. Hash and count functions (`md5(email)`, `count(email)`) cut the
//! lineage: their results are not personal data.
//!
//! Names are matched by name, not by scope: an over-approximation, so a column can only be
//! thought sensitive too often, never too rarely. Whatever cannot be read gives `None` and the
//! plan fails closed.
//!
//! Architecture invariant: pure function of the text (cached by the caller per statement shape).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    CopyOption, CopySource, CopyTarget, Expr, Query, SelectItem, SelectItemQualifiedWildcardKind,
    SetExpr, Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::policy::classify::{ident, last_part, object_name};

/// One result column, before wildcards are expanded against the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An expression; the base column names it derives from (lower case), and whether it
    /// references whole rows (`row_to_json(p)`).
    Expr {
        sources: BTreeSet<String>,
        whole_row: bool,
    },
    /// `*` (None) or `t.*`; expanded with the catalog by the plan.
    Wildcard(Option<String>),
}

/// How a COPY TO STDOUT writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// COPY … TO STDOUT details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOut {
    pub format: CopyFormat,
    pub delimiter: u8,
    pub header: bool,
    pub null: String,
    pub quote: u8,
    /// CSV: the character before a quote (or itself) inside a quoted value; the quote itself
    /// unless ESCAPE says otherwise.
    pub escape: u8,
}

impl CopyOut {
    /// PostgreSQL's defaults: text, tab, `\N`.
    pub fn text_default() -> CopyOut {
        CopyOut {
            format: CopyFormat::Text,
            delimiter: b'\t',
            header: false,
            null: "\\N".into(),
            quote: b'"',
            escape: b'"',
        }
    }

    /// What a CopyOutResponse says (`overall`: 0 text, 1 binary) decides between text and
    /// binary, whatever the statement seemed to say; the statement's options (or PostgreSQL's
    /// defaults when it could not be read) give the rest.
    pub fn for_response(statement: Option<&CopyOut>, overall: Option<u8>) -> CopyOut {
        let mut c = statement.cloned().unwrap_or_else(CopyOut::text_default);
        match overall {
            Some(1) => c.format = CopyFormat::Binary,
            Some(_) if c.format == CopyFormat::Binary => c = CopyOut::text_default(),
            _ => {}
        }
        c
    }
}

/// What one statement's results derive from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementLineage {
    /// Result columns in order; `None` when the statement could not be read.
    pub outputs: Option<Vec<Output>>,
    /// Tables named in FROM/JOIN/DML targets, in order: (alias or name, table name), lower case,
    /// without schema.
    pub tables: Vec<(String, String)>,
    /// Set for `COPY … TO STDOUT`.
    pub copy: Option<CopyOut>,
    /// `DECLARE name CURSOR FOR …`: the outputs are the cursor's, for its later FETCHes.
    pub declares: Option<String>,
    /// `FETCH … FROM name`: the rows are those of the cursor declared earlier.
    pub fetches: Option<String>,
    /// Names of the statement's CTEs: rows named in FROM that are not relations.
    pub ctes: BTreeSet<String>,
    /// For each output of a plain SELECT without wildcards, the column it reads as it is
    /// (`email`, `c.email AS e`), if it is only that: its type is the column's.
    pub bare: Vec<Option<String>>,
    /// The top-level SELECT's FROM, as (alias, name), for its `*` (empty: not known).
    pub from: Vec<(String, String)>,
    /// Outputs of the statement's derived tables and CTEs, by alias or name (names used twice
    /// are left out), for a `*` over them.
    pub derived: BTreeMap<String, Vec<Output>>,
    /// `CREATE TABLE … AS`, `SELECT … INTO`, `INSERT INTO … SELECT`: the relation filled.
    pub fills: Option<Fill>,
    /// Whether sqlparser read the statement (a DDL statement it cannot read touches anything).
    pub parsed: bool,
    /// The relations whose columns or tags a schema change (DDL) may have changed.
    pub touches: Option<Touch>,
    /// Every function the statement calls, as PostgreSQL folds the name and qualified as
    /// written (`lower`, `pg_temp.count`), anywhere in it: the plan trusts a result only where
    /// each of them is PostgreSQL's own (see `Catalog::trusts_function`).
    pub functions: BTreeSet<String>,
    /// Every operator the statement uses (`+`, `||`, `OPERATOR(public.+)`), for the same check.
    pub operators: BTreeSet<String>,
    /// The statement reads `pg_stat_activity`: its `query` is other sessions' SQL, literals
    /// and all.
    pub reads_activity: bool,
}

/// A relation a statement fills from a query: what its columns hold derives from the query's
/// outputs, in order (or into the columns listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// The relation's name (lower case, without schema).
    pub table: String,
    /// The columns listed (`INSERT INTO t (a, b)`, `CREATE TABLE t (a, b) AS`); empty: the
    /// relation's columns in order.
    pub columns: Vec<String>,
    /// The lineage of the query that fills it.
    pub source: Box<StatementLineage>,
}

/// What a schema change touches, for the masking catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch {
    /// Relations by name (lower case, without schema): in any schema, to be safe.
    Tables(BTreeSet<String>),
    /// Could be any relation (`DROP SCHEMA`, a DDL statement that could not be read).
    Everything,
    /// Functions or operators may have been defined or renamed (`CREATE FUNCTION`, `DO`):
    /// what the database defines is unknown until read again (see `masking::code`).
    Code,
}

/// Lineage of every statement in a query string, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    pub statements: Vec<StatementLineage>,
}

/// Functions whose result carries no personal data whatever their input.
/// Lengths are not among them: a length is a piece of the value (`length(name)` narrows a
/// name, `octet_length` tells accents), and pieces rebuild values.
const CUTTING_FUNCTIONS: &[&str] = &["count", "num_nulls", "num_nonnulls"];

/// Hash functions: their result reveals its input only where the input comes from a space
/// small enough to enumerate (a national id, a card, a phone, a date of birth). The columns
/// they read are kept as [`hashed`] sources, for the plan to judge by category.
const HASH_FUNCTIONS: &[&str] = &[
    "md5",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "digest",
    "hmac",
    "hashtext",
    "hashtextextended",
    "crc32",
    "crc32c",
];

/// Marks a source read only through a hash function (NUL cannot occur in an identifier).
const HASHED: &str = "\u{0}hash\u{0}";

/// The source of a custom setting read back (`current_setting('my.x')`, `SHOW my.x`): a
/// session may have filled it from anything (`set_config('my.x', (SELECT full_name …))`),
/// so what it returns is of unknown origin. Also the mark of [`READS_BY_NAME`] calls.
pub const CUSTOM_SETTING: &str = "\u{0}setting\u{0}";

/// Functions that return what they read by a name given as a value (a table, a schema, the
/// database, SQL text, a cursor) or from a large object: the lineage cannot see which columns
/// that is, so what they return is of unknown origin, like a custom setting read back.
pub const READS_BY_NAME: &[&str] = &[
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    "lo_get",
    "loread",
];

/// Columns of PostgreSQL's statistics (`pg_stats`, `pg_stats_ext`, `pg_statistic`) that hold
/// values sampled from every column of a table: of unknown origin, like [`READS_BY_NAME`].
pub const STATISTICS_VALUES: &[&str] = &[
    "most_common_vals",
    "histogram_bounds",
    "most_common_elems",
    "stavalues1",
    "stavalues2",
    "stavalues3",
    "stavalues4",
    "stavalues5",
];

/// Whether `e` calls one of [`READS_BY_NAME`].
fn reads_by_name(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if READS_BY_NAME.contains(&last_part(&f.name).as_str()))
}

/// Whether a `current_setting(…)` call may read a custom setting: its name is not a literal
/// naming one of PostgreSQL's own (those have no dot: `search_path`, `DateStyle`).
fn reads_custom_setting(e: &Expr) -> bool {
    let Expr::Function(f) = e else {
        return false;
    };
    if last_part(&f.name) != "current_setting" {
        return false;
    }
    let sqlparser::ast::FunctionArguments::List(list) = &f.args else {
        return true;
    };
    match list.args.first().map(|a| a.to_string()) {
        // A quoted literal without a dot names one of PostgreSQL's own settings.
        Some(name) => !name.starts_with('\'') || name.contains('.'),
        None => true,
    }
}

/// A source name as read inside a hash function.
pub fn hashed(name: &str) -> String {
    format!("{HASHED}{name}")
}

/// The column name of a source read inside a hash function, or `None` for a plain source.
pub fn unhashed(source: &str) -> Option<&str> {
    source.strip_prefix(HASHED)
}

/// Analyses `sql` (one simple Query or one Parse).
pub fn analyse(sql: &str) -> Lineage {
    let mut out = Lineage::default();
    for piece in crate::policy::classify::split_statements(sql, false) {
        match Parser::parse_sql(&PostgreSqlDialect {}, piece) {
            Ok(stmts) => {
                for s in &stmts {
                    out.statements.push(statement(s));
                }
            }
            Err(_) => out
                .statements
                .push(copy_fallback(piece).unwrap_or_default()),
        }
    }
    out
}

/// A `COPY … TO STDOUT` whose options sqlparser cannot read (`FORCE_QUOTE *`, `ENCODING`, an
/// option newer than it): the statement up to `STDOUT` is read by sqlparser, the options by
/// hand, so the rows are still split as PostgreSQL writes them. `None` if that fails too.
fn copy_fallback(piece: &str) -> Option<StatementLineage> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, piece)
        .tokenize()
        .ok()?;
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let significant: Vec<(usize, &Token)> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t, Token::Whitespace(_)))
        .collect();
    if !significant.first().is_some_and(|(_, t)| word(t, "COPY")) {
        return None;
    }
    let mut depth = 0i32;
    let mut stdout_at = None;
    for (k, (i, t)) in significant.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth == 0 && word(t, "STDOUT") && k > 0 && word(significant[k - 1].1, "TO") => {
                stdout_at = Some((k, *i));
                break;
            }
            _ => {}
        }
    }
    let (k, i) = stdout_at?;
    let prefix: String = tokens[..=i].iter().map(|t| t.to_string()).collect();
    let stmts = Parser::parse_sql(&PostgreSqlDialect {}, &prefix).ok()?;
    let mut st = statement(stmts.first()?);
    // What is left: `[WITH] (option [value], …)` or the legacy `[WITH] BINARY CSV HEADER …`.
    let mut c = CopyOut::text_default();
    let (mut delimiter_set, mut null_set, mut escape_set) = (false, false, false);
    let rest: Vec<&Token> = significant[k + 1..]
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| !matches!(t, Token::SemiColon | Token::EOF))
        .collect();
    let string = |t: Option<&&Token>| match t {
        Some(Token::SingleQuotedString(s)) | Some(Token::EscapedStringLiteral(s)) => {
            Some(s.clone())
        }
        _ => None,
    };
    let first_byte = |s: Option<String>| s.and_then(|s| s.bytes().next());
    let mut j = 0;
    while j < rest.len() {
        let t = rest[j];
        let name = match t {
            Token::Word(w) => w.value.to_ascii_lowercase(),
            _ => {
                j += 1;
                continue;
            }
        };
        // The value: the next token, past a legacy `AS`.
        let mut v = j + 1;
        if rest.get(v).is_some_and(|t| word(t, "AS")) {
            v += 1;
        }
        match name.as_str() {
            "format" => {
                if let Some(Token::Word(f)) = rest.get(v) {
                    c.format = match f.value.to_ascii_lowercase().as_str() {
                        "csv" => CopyFormat::Csv,
                        "binary" => CopyFormat::Binary,
                        _ => CopyFormat::Text,
                    };
                }
            }
            "binary" => c.format = CopyFormat::Binary,
            "csv" => c.format = CopyFormat::Csv,
            "header" => {
                c.header = !rest.get(v).is_some_and(|t| {
                    word(t, "false")
                        || word(t, "off")
                        || matches!(t, Token::Number(n, _) if n == "0")
                })
            }
            "delimiter" => {
                if let Some(d) = first_byte(string(rest.get(v))) {
                    c.delimiter = d;
                    delimiter_set = true;
                }
            }
            "null" => {
                if let Some(n) = string(rest.get(v)) {
                    c.null = n;
                    null_set = true;
                }
            }
            "quote" => {
                if let Some(q) = first_byte(string(rest.get(v))) {
                    c.quote = q;
                }
            }
            "escape" => {
                if let Some(e) = first_byte(string(rest.get(v))) {
                    c.escape = e;
                    escape_set = true;
                }
            }
            _ => {}
        }
        j += 1;
    }
    if !escape_set {
        c.escape = c.quote;
    }
    if c.format == CopyFormat::Csv {
        if !delimiter_set {
            c.delimiter = b',';
        }
        if !null_set {
            c.null = String::new();
        }
    }
    st.copy = Some(c);
    Some(st)
}

/// Everything the walk of one statement gathers.
#[derive(Default)]
struct Scope {
    /// Alias → the names it stands for (inner projection aliases, CTE column lists).
    aliases: BTreeMap<String, BTreeSet<String>>,
    /// Names that denote rows: tables, their aliases, CTE and derived-table names.
    row_names: BTreeSet<String>,
    tables: Vec<(String, String)>,
    ctes: BTreeSet<String>,
    /// Outputs of derived tables (by alias) and CTEs (by name), for `*` over them.
    derived: BTreeMap<String, Vec<Output>>,
    /// Derived-table or CTE names used twice in the statement: `*` over them is not expanded.
    ambiguous: BTreeSet<String>,
}

impl Scope {
    fn add_derived(&mut self, name: String, outputs: Vec<Output>) {
        if self.derived.insert(name.clone(), outputs).is_some() {
            self.ambiguous.insert(name);
        }
    }
}

/// The relations the top-level SELECT's FROM names, in order, as (alias, name): what its `*`
/// expands to. A FROM item that is neither a relation nor a derived table (a function) gives
/// an empty name: the expansion is then unknown.
fn from_list(q: &Query) -> Vec<(String, String)> {
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Vec::new();
    };
    let item = |f: &TableFactor| match f {
        TableFactor::Table { name, alias, .. } => {
            let n = last_part(name);
            (
                alias
                    .as_ref()
                    .map(|a| ident(&a.name))
                    .unwrap_or_else(|| n.clone()),
                n,
            )
        }
        TableFactor::Derived {
            alias: Some(alias), ..
        } => (ident(&alias.name), ident(&alias.name)),
        _ => (String::new(), String::new()),
    };
    sel.from
        .iter()
        .flat_map(|t| {
            std::iter::once(item(&t.relation)).chain(t.joins.iter().map(|j| item(&j.relation)))
        })
        .collect()
}

fn statement(s: &Statement) -> StatementLineage {
    let mut l = statement_outputs(s);
    l.parsed = true;
    l.touches = touches(s);
    l.fills = fills(s);
    l
}

/// See [`StatementLineage::fills`].
fn fills(s: &Statement) -> Option<Fill> {
    let source = |q: &Query| Box::new(statement_outputs(&Statement::Query(Box::new(q.clone()))));
    match s {
        Statement::CreateTable(t) => t.query.as_ref().map(|q| Fill {
            table: last_part(&t.name),
            columns: t.columns.iter().map(|c| ident(&c.name)).collect(),
            source: source(q),
        }),
        Statement::Insert(i) => match (&i.table, &i.source) {
            (sqlparser::ast::TableObject::TableName(n), Some(q)) => Some(Fill {
                table: last_part(n),
                columns: i.columns.iter().map(last_part).collect(),
                source: source(q),
            }),
            _ => None,
        },
        Statement::Query(q) => {
            let SetExpr::Select(sel) = q.body.as_ref() else {
                return None;
            };
            let target = sel.into.as_ref()?.targets.first()?;
            let table = match target {
                Expr::Identifier(id) => ident(id),
                Expr::CompoundIdentifier(parts) => parts.last().map(ident)?,
                _ => return None,
            };
            Some(Fill {
                table,
                columns: Vec::new(),
                source: source(q),
            })
        }
        _ => None,
    }
}

/// The relations a DDL statement creates, changes or drops; `None` for other statements.
/// CREATE INDEX, functions, types and the like change no relation's columns or comments.
fn touches(s: &Statement) -> Option<Touch> {
    use sqlparser::ast::{AlterTableOperation, CommentObject, ObjectType, RenameTableNameKind};
    let names = |ns: &mut dyn Iterator<Item = &sqlparser::ast::ObjectName>| {
        Some(Touch::Tables(ns.map(last_part).collect()))
    };
    match s {
        Statement::CreateTable(t) => names(&mut std::iter::once(&t.name)),
        Statement::CreateView(v) => names(&mut std::iter::once(&v.name)),
        Statement::AlterView(v) => names(&mut std::iter::once(&v.name)),
        Statement::AlterTable(t) => {
            let renamed = t.operations.iter().filter_map(|o| match o {
                AlterTableOperation::RenameTable {
                    table_name: RenameTableNameKind::As(n) | RenameTableNameKind::To(n),
                } => Some(n),
                _ => None,
            });
            names(&mut std::iter::once(&t.name).chain(renamed))
        }
        Statement::RenameTable(r) => names(&mut r.iter().flat_map(|r| [&r.old_name, &r.new_name])),
        Statement::Drop {
            object_type,
            names: ns,
            ..
        } => match object_type {
            ObjectType::Table | ObjectType::View | ObjectType::MaterializedView => {
                names(&mut ns.iter())
            }
            ObjectType::Schema => Some(Touch::Everything),
            _ => None,
        },
        Statement::Comment {
            object_type,
            object_name,
            ..
        } => match object_type {
            // `COMMENT ON COLUMN [schema.]table.column`: the table is the part before the column.
            CommentObject::Column => {
                let parts = &object_name.0;
                let table = parts.len().checked_sub(2).and_then(|i| match &parts[i] {
                    sqlparser::ast::ObjectNamePart::Identifier(id) => Some(ident(id)),
                    _ => None,
                });
                match table {
                    Some(t) => Some(Touch::Tables([t].into())),
                    None => Some(Touch::Everything),
                }
            }
            CommentObject::Table
            | CommentObject::View
            | CommentObject::MaterializedView
            | CommentObject::ForeignTable => names(&mut std::iter::once(object_name)),
            _ => None,
        },
        _ => None,
    }
}

/// The key a prepared statement's lineage is kept under beside cursors (NUL cannot occur in
/// an identifier, so no cursor name collides with it).
fn prepared_key(name: &str) -> String {
    format!("\u{0}prepared\u{0}{name}")
}

/// Whether a command tag (CommandComplete) may come from a statement that changed a
/// relation's columns or comments, directly or from code (`DO`, `CALL`).
pub fn may_change_schema(tag: &[u8]) -> bool {
    // Most tags (SELECT, INSERT, UPDATE…) are told apart by their first letter.
    if !matches!(tag.first(), Some(b'C' | b'A' | b'D' | b'I')) {
        return false;
    }
    ["CREATE", "ALTER", "DROP", "COMMENT", "DO", "CALL", "IMPORT"]
        .iter()
        .any(|p| tag.starts_with(p.as_bytes()))
}

/// What the statement that completed with `tag` touched, for the masking catalog: its DDL
/// touches; every relation when the gateway could not read a DDL statement; nothing to
/// invalidate but a read due for `IMPORT FOREIGN SCHEMA`; what the database defines as code
/// after code that may run DDL (`DO`, `CALL`) or DDL that defines functions or operators;
/// `None` when no read is needed (`CREATE INDEX`…).
pub fn touched(st: Option<&StatementLineage>, tag: &[u8]) -> Option<Touch> {
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| tag.starts_with(p.as_bytes()));
    // Code that may run DDL, or DDL that defines what a call or an operator resolves to.
    if starts(&[
        "DO",
        "CALL",
        "CREATE FUNCTION",
        "CREATE PROCEDURE",
        "CREATE AGGREGATE",
        "CREATE OPERATOR",
        "CREATE CAST",
        "CREATE EXTENSION",
        "CREATE TRIGGER",
        "CREATE RULE",
        "ALTER TRIGGER",
        "ALTER FUNCTION",
        "ALTER PROCEDURE",
        "ALTER ROUTINE",
        "ALTER AGGREGATE",
        "ALTER OPERATOR",
        "ALTER EXTENSION",
    ]) {
        return Some(Touch::Code);
    }
    if starts(&["IMPORT"]) {
        return Some(Touch::Tables(BTreeSet::new()));
    }
    match st {
        Some(st) if st.parsed => st.touches.clone(),
        _ => Some(Touch::Everything),
    }
}

/// Whether `name` is qualified by a schema of PostgreSQL's own (`pg_catalog.pg_class`,
/// `information_schema.columns`): never a relation of the masking catalog.
fn system_qualified(name: &sqlparser::ast::ObjectName) -> bool {
    let parts = &name.0;
    parts.len() >= 2
        && matches!(&parts[parts.len() - 2], sqlparser::ast::ObjectNamePart::Identifier(id)
            if matches!(ident(id).as_str(), "pg_catalog" | "information_schema"))
}

fn statement_outputs(s: &Statement) -> StatementLineage {
    let mut l = outputs_of(s);
    let mut calls = Calls::default();
    let _ = s.visit(&mut calls);
    l.functions = calls.functions;
    l.operators = calls.operators;
    l.reads_activity = calls.reads_activity;
    l
}

/// The functions and operators a statement uses (see [`StatementLineage::functions`]).
#[derive(Default)]
struct Calls {
    functions: BTreeSet<String>,
    operators: BTreeSet<String>,
    reads_activity: bool,
}

impl Visitor for Calls {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Function(f) => {
                // `"coalesce"(x)` is no grammar: PostgreSQL looks a function of that name up.
                let quoted_grammar = match f.name.0.last() {
                    Some(sqlparser::ast::ObjectNamePart::Identifier(id)) => {
                        id.quote_style.is_some()
                            && crate::policy::functions::SQL_SYNTAX.contains(&id.value.as_str())
                    }
                    _ => false,
                };
                let name = object_name(&f.name);
                self.functions.insert(if quoted_grammar {
                    format!("\"{name}\"")
                } else {
                    name
                });
            }
            Expr::BinaryOp { op, .. } => {
                self.operators.insert(op.to_string());
            }
            Expr::UnaryOp { op, .. } => {
                self.operators.insert(op.to_string());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => {
                self.functions.insert(object_name(name));
            }
            TableFactor::Table { name, .. } => {
                self.reads_activity |= last_part(name) == "pg_stat_activity";
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn outputs_of(s: &Statement) -> StatementLineage {
    let mut scope = Scope::default();
    // Tables and row names anywhere in the statement.
    collect_tables(s, &mut scope);
    let mut bare = Vec::new();
    let mut from = Vec::new();
    let (items, copy) = match s {
        Statement::Query(q) => {
            bare = bare_columns(q);
            from = from_list(q);
            (query_outputs(q, &mut scope), None)
        }
        Statement::Insert(i) => (
            i.returning.as_ref().map(|r| items_outputs(r, &mut scope)),
            None,
        ),
        Statement::Update(u) => (
            u.returning.as_ref().map(|r| items_outputs(r, &mut scope)),
            None,
        ),
        Statement::Delete(d) => (
            d.returning.as_ref().map(|r| items_outputs(r, &mut scope)),
            None,
        ),
        Statement::Copy {
            source,
            to: true,
            target: CopyTarget::Stdout,
            options,
            legacy_options,
            ..
        } => {
            let copy = copy_options(options, legacy_options);
            let outputs = match source {
                CopySource::Query(q) => {
                    bare = bare_columns(q);
                    from = from_list(q);
                    query_outputs(q, &mut scope)
                }
                CopySource::Table {
                    table_name,
                    columns,
                } => {
                    let t = last_part(table_name);
                    if !scope.tables.iter().any(|(_, n)| *n == t) {
                        scope.tables.push((t.clone(), t.clone()));
                    }
                    Some(if columns.is_empty() {
                        vec![Output::Wildcard(None)]
                    } else {
                        columns
                            .iter()
                            .map(|c| Output::Expr {
                                sources: [ident(c)].into(),
                                whole_row: false,
                            })
                            .collect()
                    })
                }
            };
            (outputs, Some(copy))
        }
        Statement::Declare { stmts, .. } => {
            let d = stmts.first();
            let q = d.and_then(|d| d.for_query.as_ref());
            let outs = q.and_then(|q| query_outputs(q, &mut scope));
            let name = d.and_then(|d| d.names.first()).map(ident);
            let mut l = finish(outs, scope, None);
            l.declares = name;
            return l;
        }
        // SHOW of a custom setting (or of all of them): see `CUSTOM_SETTING`.
        Statement::ShowVariable { variable } => {
            let name: Vec<String> = variable.iter().map(ident).collect();
            let outputs = match name.as_slice() {
                [all] if all == "all" => 3,
                _ if name.len() > 1 || name.iter().any(|n| n.contains('.')) => 1,
                _ => return StatementLineage::default(),
            };
            let custom = Output::Expr {
                sources: [CUSTOM_SETTING.to_string()].into(),
                whole_row: false,
            };
            return StatementLineage {
                outputs: Some(vec![custom; outputs]),
                ..StatementLineage::default()
            };
        }
        Statement::Fetch { name, .. } => {
            return StatementLineage {
                fetches: Some(ident(name)),
                ..StatementLineage::default()
            };
        }
        // A prepared statement is remembered like a cursor (under a name no cursor can have):
        // its EXECUTEs return what its query returns.
        Statement::Prepare {
            name, statement, ..
        } => {
            let mut l = statement_outputs(statement);
            l.declares = Some(prepared_key(&ident(name)));
            return l;
        }
        Statement::Execute {
            name: Some(name), ..
        } => {
            return StatementLineage {
                fetches: Some(prepared_key(&last_part(name))),
                ..StatementLineage::default()
            };
        }
        // Statements without result rows, or whose rows the plan cannot see through (EXECUTE,
        // SHOW): no lineage; the plan fails closed.
        _ => (None, None),
    };
    let mut l = finish(items, scope, copy);
    l.bare = bare;
    l.from = from;
    l
}

/// See [`StatementLineage::bare`]; empty for anything but a plain SELECT without wildcards.
/// Only where the FROM names relations alone: under a CTE or a derived table, a bare name
/// may be an alias of anything (`SELECT ssn FROM (SELECT left(ssn, 3) AS ssn …) s`).
fn bare_columns(q: &Query) -> Vec<Option<String>> {
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Vec::new();
    };
    let plain_relation = |f: &TableFactor| matches!(f, TableFactor::Table { args: None, .. });
    if q.with.is_some()
        || !sel.from.iter().all(|t| {
            plain_relation(&t.relation) && t.joins.iter().all(|j| plain_relation(&j.relation))
        })
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    for item in &sel.projection {
        let e = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return Vec::new(),
        };
        out.push(match e {
            Expr::Identifier(id) => Some(ident(id)),
            Expr::CompoundIdentifier(parts) => parts.last().map(ident),
            _ => None,
        });
    }
    out
}

fn finish(items: Option<Vec<Output>>, scope: Scope, copy: Option<CopyOut>) -> StatementLineage {
    let outputs = items.map(|v| {
        v.into_iter()
            .map(|o| match o {
                Output::Expr { sources, whole_row } => {
                    let (sources, rows) = resolve(&sources, &scope);
                    Output::Expr {
                        sources,
                        whole_row: whole_row || rows,
                    }
                }
                w => w,
            })
            .collect()
    });
    let resolve_all = |v: Vec<Output>| -> Vec<Output> {
        v.into_iter()
            .map(|o| match o {
                Output::Expr { sources, whole_row } => {
                    let (sources, rows) = resolve(&sources, &scope);
                    Output::Expr {
                        sources,
                        whole_row: whole_row || rows,
                    }
                }
                w => w,
            })
            .collect()
    };
    let derived = scope
        .derived
        .clone()
        .into_iter()
        .filter(|(k, _)| !scope.ambiguous.contains(k))
        .map(|(k, v)| (k, resolve_all(v)))
        .collect();
    StatementLineage {
        outputs,
        tables: scope.tables,
        copy,
        ctes: scope.ctes,
        derived,
        ..StatementLineage::default()
    }
}

fn copy_options(options: &[CopyOption], legacy: &[sqlparser::ast::CopyLegacyOption]) -> CopyOut {
    let mut c = CopyOut::text_default();
    let mut escape_set = false;
    let mut delimiter_set = false;
    let mut null_set = false;
    for o in options {
        match o {
            CopyOption::Format(f) => {
                c.format = match f.value.to_lowercase().as_str() {
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    _ => CopyFormat::Text,
                }
            }
            CopyOption::Delimiter(d) => {
                c.delimiter = *d as u8;
                delimiter_set = true;
            }
            CopyOption::Header(h) => c.header = *h,
            CopyOption::Null(n) => {
                c.null = n.clone();
                null_set = true;
            }
            CopyOption::Quote(q) => c.quote = *q as u8,
            CopyOption::Escape(e) => {
                c.escape = *e as u8;
                escape_set = true;
            }
            _ => {}
        }
    }
    for o in legacy {
        use sqlparser::ast::CopyLegacyOption as L;
        match o {
            L::Binary => c.format = CopyFormat::Binary,
            L::Csv(csv) => {
                c.format = CopyFormat::Csv;
                use sqlparser::ast::CopyLegacyCsvOption as C;
                for o in csv {
                    match o {
                        C::Header => c.header = true,
                        C::Quote(q) => c.quote = *q as u8,
                        C::Escape(e) => {
                            c.escape = *e as u8;
                            escape_set = true;
                        }
                        _ => {}
                    }
                }
            }
            L::Delimiter(d) => {
                c.delimiter = *d as u8;
                delimiter_set = true;
            }
            L::Null(n) => {
                c.null = n.clone();
                null_set = true;
            }
            _ => {}
        }
    }
    if !escape_set {
        c.escape = c.quote;
    }
    if c.format == CopyFormat::Csv {
        if !delimiter_set {
            c.delimiter = b',';
        }
        if !null_set {
            c.null = String::new();
        }
    }
    c
}

/// Follows aliases to the names behind them (keeping the alias names too: an alias may also be
/// a real column somewhere). Returns the names and whether a whole-row name was reached.
fn resolve(names: &BTreeSet<String>, scope: &Scope) -> (BTreeSet<String>, bool) {
    let mut out = BTreeSet::new();
    let mut rows = false;
    let mut todo: Vec<String> = names.iter().cloned().collect();
    while let Some(n) = todo.pop() {
        if !out.insert(n.clone()) {
            continue;
        }
        // A hashed alias stands for its names hashed (a plain one stays plain).
        let (name, in_hash) = match unhashed(&n) {
            Some(inner) => (inner.to_string(), true),
            None => (n.clone(), false),
        };
        if scope.row_names.contains(&name) {
            // A whole row read through a hash is still a whole row: judged as not hashed.
            rows = true;
        }
        if let Some(more) = scope.aliases.get(&name) {
            todo.extend(more.iter().map(|m| {
                if in_hash && unhashed(m).is_none() {
                    hashed(m)
                } else {
                    m.clone()
                }
            }));
        }
    }
    (out, rows)
}

struct TableFinder<'a> {
    scope: &'a mut Scope,
}

/// A built-in set-returning function called with constants only (`generate_series(1, 500)`,
/// `unnest(ARRAY['a','b'])`): its rows come from its arguments, so it reads no table and is no
/// unknown relation. With a column, a subquery or a function of the user's among its
/// arguments it may carry what it was given, and stays one (masked whole, fail closed).
fn constant_builtin_function(t: &TableFactor) -> bool {
    let TableFactor::Table {
        name,
        args: Some(args),
        ..
    } = t
    else {
        return false;
    };
    if crate::policy::functions::builtin(&last_part(name)).is_none() {
        return false;
    }
    struct Reads(bool);
    impl Visitor for Reads {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let reads = match e {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
                Expr::Function(f) => {
                    crate::policy::functions::builtin(&last_part(&f.name)).is_none()
                }
                _ => false,
            };
            if reads {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        // A subquery reads tables of its own.
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.0 = true;
            ControlFlow::Break(())
        }
    }
    let mut reads = Reads(false);
    let _ = args.visit(&mut reads);
    !reads.0
}

impl Visitor for TableFinder<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        match t {
            TableFactor::Table { .. } if constant_builtin_function(t) => {}
            TableFactor::Table { name, alias, .. } => {
                let table = last_part(name);
                let a = alias.as_ref().map(|a| ident(&a.name));
                self.scope.row_names.insert(table.clone());
                if let Some(a) = &a {
                    self.scope.row_names.insert(a.clone());
                }
                if !system_qualified(name) {
                    self.scope
                        .tables
                        .push((a.unwrap_or_else(|| table.clone()), table));
                }
            }
            TableFactor::Derived {
                alias: Some(alias),
                subquery,
                ..
            } => {
                self.scope.row_names.insert(ident(&alias.name));
                let mut inner = Scope::default();
                if let Some(outs) = query_outputs(subquery, &mut inner) {
                    self.scope.add_derived(ident(&alias.name), outs.clone());
                    for (i, c) in alias.columns.iter().enumerate() {
                        if let Some(Output::Expr { sources, .. }) = outs.get(i) {
                            self.scope
                                .aliases
                                .entry(ident(&c.name))
                                .or_default()
                                .extend(sources.iter().cloned());
                        }
                    }
                }
                merge_aliases(&mut self.scope.aliases, inner.aliases);
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.scope.row_names.insert(ident(&cte.alias.name));
                self.scope.ctes.insert(ident(&cte.alias.name));
                let mut inner = Scope::default();
                if let Some(outs) = query_outputs(&cte.query, &mut inner) {
                    self.scope.add_derived(ident(&cte.alias.name), outs.clone());
                    for (i, c) in cte.alias.columns.iter().enumerate() {
                        if let Some(Output::Expr { sources, .. }) = outs.get(i) {
                            self.scope
                                .aliases
                                .entry(ident(&c.name))
                                .or_default()
                                .extend(sources.iter().cloned());
                        }
                    }
                }
                merge_aliases(&mut self.scope.aliases, inner.aliases);
            }
        }
        // Every projection alias anywhere defines a name the outer query may use.
        collect_aliases(q, self.scope);
        ControlFlow::Continue(())
    }
}

fn merge_aliases(
    into: &mut BTreeMap<String, BTreeSet<String>>,
    from: BTreeMap<String, BTreeSet<String>>,
) {
    for (k, v) in from {
        into.entry(k).or_default().extend(v);
    }
}

fn collect_aliases(q: &Query, scope: &mut Scope) {
    fn set_expr(s: &SetExpr, scope: &mut Scope) {
        match s {
            SetExpr::Select(sel) => {
                for item in &sel.projection {
                    if let SelectItem::ExprWithAlias { expr, alias } = item {
                        let (sources, _) = expr_sources(expr);
                        scope
                            .aliases
                            .entry(ident(alias))
                            .or_default()
                            .extend(sources);
                    }
                }
            }
            SetExpr::Query(q) => set_expr(&q.body, scope),
            SetExpr::SetOperation { left, right, .. } => {
                set_expr(left, scope);
                set_expr(right, scope);
            }
            _ => {}
        }
    }
    set_expr(&q.body, scope);
}

fn collect_tables(s: &Statement, scope: &mut Scope) {
    let mut f = TableFinder { scope };
    let _ = s.visit(&mut f);
    match s {
        Statement::Insert(i) => {
            if let sqlparser::ast::TableObject::TableName(n) = &i.table {
                let t = last_part(n);
                let a = i
                    .table_alias
                    .as_ref()
                    .map(|a| ident(&a.alias))
                    .unwrap_or_else(|| t.clone());
                scope.row_names.insert(t.clone());
                scope.tables.push((a, t));
            }
        }
        Statement::Delete(_) | Statement::Update(_) => {}
        _ => {}
    }
}

fn query_outputs(q: &Query, scope: &mut Scope) -> Option<Vec<Output>> {
    set_outputs(&q.body, scope)
}

fn set_outputs(s: &SetExpr, scope: &mut Scope) -> Option<Vec<Output>> {
    match s {
        SetExpr::Select(sel) => Some(items_outputs(&sel.projection, scope)),
        SetExpr::Query(q) => query_outputs(q, scope),
        SetExpr::SetOperation { left, right, .. } => {
            let l = set_outputs(left, scope)?;
            let r = set_outputs(right, scope)?;
            if l.len() != r.len() || l.iter().chain(&r).any(|o| matches!(o, Output::Wildcard(_))) {
                // Wildcards in a UNION: positions cannot be lined up here.
                return None;
            }
            Some(
                l.into_iter()
                    .zip(r)
                    .map(|(a, b)| match (a, b) {
                        (
                            Output::Expr {
                                sources: mut s1,
                                whole_row: w1,
                            },
                            Output::Expr {
                                sources: s2,
                                whole_row: w2,
                            },
                        ) => {
                            s1.extend(s2);
                            Output::Expr {
                                sources: s1,
                                whole_row: w1 || w2,
                            }
                        }
                        (a, _) => a,
                    })
                    .collect(),
            )
        }
        SetExpr::Values(v) => {
            let width = v.rows.first().map(|r| r.len()).unwrap_or(0);
            let mut outs = vec![BTreeSet::new(); width];
            for row in &v.rows {
                for (i, e) in row.iter().enumerate() {
                    if let Some(o) = outs.get_mut(i) {
                        o.extend(expr_sources(e).0);
                    }
                }
            }
            Some(
                outs.into_iter()
                    .map(|sources| Output::Expr {
                        sources,
                        whole_row: false,
                    })
                    .collect(),
            )
        }
        SetExpr::Insert(st) | SetExpr::Update(st) | SetExpr::Delete(st) => statement(st).outputs,
        _ => None,
    }
}

fn items_outputs(items: &[SelectItem], _scope: &mut Scope) -> Vec<Output> {
    items
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                let (sources, whole_row) = expr_sources(e);
                Output::Expr { sources, whole_row }
            }
            SelectItem::ExprWithAliases { expr, .. } => {
                let (sources, whole_row) = expr_sources(expr);
                Output::Expr { sources, whole_row }
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), _) => {
                Output::Wildcard(Some(last_part(n)))
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(e), _) => {
                let (sources, _) = expr_sources(e);
                Output::Expr {
                    sources,
                    whole_row: true,
                }
            }
            SelectItem::Wildcard(_) => Output::Wildcard(None),
        })
        .collect()
}

struct Refs {
    names: BTreeSet<String>,
    star: bool,
    cut_depth: usize,
    hash_depth: usize,
}

fn is_cutting(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => CUTTING_FUNCTIONS.contains(&last_part(&f.name).as_str()),
        _ => false,
    }
}

fn is_hash(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => HASH_FUNCTIONS.contains(&last_part(&f.name).as_str()),
        _ => false,
    }
}

impl Visitor for Refs {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if is_cutting(e) {
            self.cut_depth += 1;
        }
        if is_hash(e) {
            self.hash_depth += 1;
        }
        if self.cut_depth == 0 && (reads_custom_setting(e) || reads_by_name(e)) {
            self.names.insert(CUSTOM_SETTING.to_string());
        }
        if self.cut_depth == 0 {
            let in_hash = self.hash_depth > 0;
            let mark = |n: String| if in_hash { hashed(&n) } else { n };
            match e {
                Expr::Identifier(id) => {
                    let name = ident(id);
                    if STATISTICS_VALUES.contains(&name.as_str()) {
                        self.names.insert(CUSTOM_SETTING.to_string());
                    }
                    self.names.insert(mark(name));
                }
                Expr::CompoundIdentifier(parts) => {
                    if let Some(last) = parts.last() {
                        let name = ident(last);
                        if STATISTICS_VALUES.contains(&name.as_str()) {
                            self.names.insert(CUSTOM_SETTING.to_string());
                        }
                        self.names.insert(mark(name));
                    }
                    // `p.email`: `p` is a row, not a value; only when alone is it whole-row.
                }
                Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => self.star = true,
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if is_cutting(e) {
            self.cut_depth -= 1;
        }
        if is_hash(e) {
            self.hash_depth -= 1;
        }
        ControlFlow::Continue(())
    }
}

/// Column names an expression references (outside hash/count functions), and whether it uses
/// a `*` (as in `json_agg(t.*)`).
fn expr_sources(e: &Expr) -> (BTreeSet<String>, bool) {
    let mut r = Refs {
        names: BTreeSet::new(),
        star: false,
        cut_depth: 0,
        hash_depth: 0,
    };
    let _ = e.visit(&mut r);
    (r.names, r.star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srcs(sql: &str) -> Vec<Vec<String>> {
        analyse(sql).statements[0]
            .outputs
            .clone()
            .expect("analysable")
            .into_iter()
            .map(|o| match o {
                Output::Expr { sources, whole_row } => {
                    let mut v: Vec<String> = sources.into_iter().collect();
                    if whole_row {
                        v.push("<row>".into());
                    }
                    v
                }
                Output::Wildcard(q) => vec![format!("*{}", q.unwrap_or_default())],
            })
            .collect()
    }

    #[test]
    fn expression_forms() {
        assert_eq!(srcs("SELECT email AS e, id FROM people")[0], vec!["email"]);
        assert_eq!(
            srcs("SELECT upper(p.full_name)::text FROM people p")[0],
            vec!["full_name"]
        );
        assert_eq!(
            srcs("SELECT first_name || ' ' || last_name FROM people")[0],
            vec!["first_name", "last_name"]
        );
        assert_eq!(
            srcs("SELECT format('%s <%s>', full_name, email) FROM people")[0],
            vec!["email", "full_name"]
        );
        assert_eq!(
            srcs("SELECT CASE WHEN id > 1 THEN email ELSE 'x' END FROM people")[0],
            vec!["email", "id"]
        );
        assert_eq!(
            srcs("SELECT md5(email), count(email) FROM people"),
            vec![vec![hashed("email")], vec![]]
        );
        let s = srcs("WITH c AS (SELECT ssn AS s FROM people) SELECT md5(s) FROM c");
        assert!(s[0].contains(&hashed("ssn")), "{s:?}");
        assert!(srcs("SELECT row_to_json(p) FROM people p")[0].contains(&"<row>".to_string()));
        assert!(srcs("SELECT json_agg(p) FROM people p")[0].contains(&"<row>".to_string()));
        assert_eq!(
            srcs("SELECT string_agg(email, ',') FROM people")[0],
            vec!["email"]
        );
        assert_eq!(srcs("SELECT * FROM people")[0], vec!["*"]);
        assert_eq!(srcs("SELECT p.* FROM people p")[0], vec!["*p"]);
    }

    #[test]
    fn through_ctes_subqueries_unions_and_returning() {
        let s = srcs("WITH x AS (SELECT email AS e FROM people) SELECT upper(e) FROM x");
        assert!(s[0].contains(&"email".to_string()));
        let s = srcs("WITH x(a) AS (SELECT ssn FROM people) SELECT a FROM x");
        assert!(s[0].contains(&"ssn".to_string()));
        let s = srcs("SELECT m FROM (SELECT phone AS m FROM people) sub");
        assert!(s[0].contains(&"phone".to_string()));
        let s = srcs("SELECT id, (SELECT email FROM people q WHERE q.id = o.id) FROM orders o");
        assert!(s[1].contains(&"email".to_string()));
        let s = srcs("SELECT id FROM orders UNION ALL SELECT email FROM people");
        assert!(s[0].contains(&"email".to_string()));
        let s = srcs("UPDATE people SET note = 'x' WHERE id = 1 RETURNING id, email");
        assert_eq!(s[1], vec!["email"]);
        let s = srcs("INSERT INTO people (email) VALUES ('a@b.co') RETURNING email");
        assert_eq!(s[0], vec!["email"]);
    }

    #[test]
    fn builtin_functions_of_constants_read_no_table() {
        let tables = |sql: &str| -> Vec<String> {
            analyse(sql).statements[0]
                .tables
                .iter()
                .map(|(_, t)| t.clone())
                .collect()
        };
        assert_eq!(
            tables("INSERT INTO t SELECT g, 'p' || g FROM generate_series(1, 500) g"),
            ["t"]
        );
        // Given a column, a subquery or a user's function, it may carry what it was given.
        let reads = |sql: &str| tables(sql).contains(&"regexp_split_to_table".to_string());
        assert!(reads(
            "SELECT w FROM people p, regexp_split_to_table(p.name, ' ') w"
        ));
        assert!(reads(
            "SELECT * FROM regexp_split_to_table((SELECT string_agg(name, ' ') FROM people), ' ') w"
        ));
        assert!(tables("SELECT * FROM generate_series(1, my_count()) g")
            .contains(&"generate_series".to_string()));
        assert!(tables("SELECT * FROM my_function(1)").contains(&"my_function".to_string()));
    }

    #[test]
    fn copy_and_unreadable() {
        let l = analyse("COPY people TO STDOUT WITH (FORMAT csv, HEADER)");
        let c = l.statements[0].copy.clone().expect("copy");
        assert_eq!(
            (c.format, c.delimiter, c.header),
            (CopyFormat::Csv, b',', true)
        );
        assert_eq!(
            l.statements[0].tables,
            vec![("people".to_string(), "people".to_string())]
        );
        let l = analyse("COPY (SELECT email FROM people) TO STDOUT");
        assert_eq!(
            l.statements[0].copy.as_ref().map(|c| c.format),
            Some(CopyFormat::Text)
        );
        assert!(analyse("FETCH 10 FROM c").statements[0].outputs.is_none());
        assert_eq!(
            analyse("FETCH 10 FROM c").statements[0].fetches.as_deref(),
            Some("c")
        );
        let d = analyse("DECLARE c CURSOR FOR SELECT upper(full_name) FROM people");
        assert_eq!(d.statements[0].declares.as_deref(), Some("c"));
        assert_eq!(d.statements[0].outputs.as_ref().map(|o| o.len()), Some(1));
        assert_eq!(
            analyse("SELECT 1; SELECT email FROM people")
                .statements
                .len(),
            2
        );
    }

    #[test]
    fn copy_options_sqlparser_cannot_read_are_read_by_hand() {
        let l = analyse("COPY people TO STDOUT (FORMAT csv, DELIMITER '|', QUOTE '''', ESCAPE '\\', FORCE_QUOTE *, HEADER)");
        let st = &l.statements[0];
        let c = st.copy.clone().expect("copy");
        assert_eq!(
            (c.format, c.delimiter, c.quote, c.escape, c.header),
            (CopyFormat::Csv, b'|', b'\'', b'\\', true)
        );
        assert_eq!(st.outputs, Some(vec![Output::Wildcard(None)]));
        let c = analyse("COPY people TO STDOUT WITH CSV HEADER QUOTE AS '|'").statements[0]
            .copy
            .clone()
            .expect("copy");
        assert_eq!(
            (c.format, c.header, c.quote, c.escape),
            (CopyFormat::Csv, true, b'|', b'|')
        );
        assert_eq!(
            analyse("SELECT id, p.email AS e, upper(x) FROM people p").statements[0].bare,
            vec![Some("id".into()), Some("email".into()), None]
        );
    }

    #[test]
    fn custom_settings_read_back_have_no_known_origin() {
        let custom = CUSTOM_SETTING.to_string();
        assert_eq!(
            srcs("SELECT current_setting('my.who')")[0],
            vec![custom.clone()]
        );
        assert_eq!(
            srcs("SELECT current_setting(x) FROM t")[0],
            vec![custom.clone(), "x".into()]
        );
        assert!(srcs("SELECT current_setting('search_path')")[0].is_empty());
        // Tables read by name and large objects: of unknown origin too.
        for sql in [
            "SELECT table_to_xml('customers', true, false, '')",
            "SELECT query_to_xml('SELECT * FROM customers', true, false, '')",
            "SELECT encode(lo_get(4242), 'base64')",
        ] {
            assert!(srcs(sql)[0].contains(&custom), "{sql}");
        }
        assert!(!srcs("SELECT lower('x')")[0].contains(&custom));
        assert_eq!(srcs("SHOW my.who")[0], vec![custom.clone()]);
        assert_eq!(srcs("SHOW ALL").len(), 3);
        assert!(analyse("SHOW search_path").statements[0].outputs.is_none());
    }

    #[test]
    fn stars_over_derived_tables_and_ctes_expand_to_their_outputs() {
        let l = analyse("WITH t AS (SELECT status, count(*) FROM people GROUP BY status) SELECT * FROM t, (SELECT upper(full_name) AS x FROM people) s");
        let st = &l.statements[0];
        assert_eq!(
            st.from,
            vec![("t".to_string(), "t".to_string()), ("s".into(), "s".into())]
        );
        let t = &st.derived["t"];
        assert_eq!(t.len(), 2);
        assert!(matches!(&t[1], Output::Expr { sources, .. } if sources.is_empty()));
        assert!(
            matches!(&st.derived["s"][0], Output::Expr { sources, .. } if sources.contains("full_name"))
        );
    }

    #[test]
    fn calls_are_listed_as_postgresql_would_look_them_up() {
        let st = &analyse(
            "SELECT coalesce(a, 1), \"coalesce\"(1), pg_temp.count(x), Lower(y) \
             FROM t, generate_series(1, 3) g WHERE a ||| b",
        )
        .statements[0];
        let f: Vec<&str> = st.functions.iter().map(String::as_str).collect();
        assert_eq!(
            f,
            [
                "\"coalesce\"",
                "coalesce",
                "generate_series",
                "lower",
                "pg_temp.count"
            ]
        );
        assert!(st.operators.contains("|||"));
    }

    #[test]
    fn schema_changes_name_what_they_touch() {
        let t = |sql: &str, tag: &str| touched(analyse(sql).statements.first(), tag.as_bytes());
        let tables = |v: &[&str]| Some(Touch::Tables(v.iter().map(|s| s.to_string()).collect()));
        assert_eq!(
            t("DROP TABLE public.customers, orders", "DROP TABLE"),
            tables(&["customers", "orders"])
        );
        assert_eq!(
            t(
                "CREATE TABLE customers (id int, display text)",
                "CREATE TABLE"
            ),
            tables(&["customers"])
        );
        assert_eq!(
            t("CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE VIEW"),
            tables(&["v"])
        );
        assert_eq!(
            t("ALTER TABLE customers RENAME TO clients", "ALTER TABLE"),
            tables(&["clients", "customers"])
        );
        assert_eq!(
            t("COMMENT ON COLUMN s.customers.display IS 'x'", "COMMENT"),
            tables(&["customers"])
        );
        assert_eq!(
            t("DROP SCHEMA s CASCADE", "DROP SCHEMA"),
            Some(Touch::Everything)
        );
        assert_eq!(t("CREATE INDEX ON customers (id)", "CREATE INDEX"), None);
        // What the gateway cannot read could have changed anything; code may run DDL.
        assert_eq!(
            t("CREATE TABLE ((( nonsense", "CREATE TABLE"),
            Some(Touch::Everything)
        );
        assert_eq!(
            t("DO $$ BEGIN EXECUTE 'DROP TABLE x'; END $$", "DO"),
            Some(Touch::Code)
        );
        // What a call resolves to may have changed.
        for (sql, tag) in [
            (
                "CREATE FUNCTION public.count(text) RETURNS text AS 'SELECT $1' LANGUAGE sql",
                "CREATE FUNCTION",
            ),
            ("ALTER FUNCTION f(int) RENAME TO lower", "ALTER FUNCTION"),
            (
                "CREATE OPERATOR ||| (function = f, leftarg = int, rightarg = int)",
                "CREATE OPERATOR",
            ),
        ] {
            assert_eq!(t(sql, tag), Some(Touch::Code), "{sql}");
        }
        assert!(may_change_schema(b"ALTER TABLE\0"));
        assert!(!may_change_schema(b"SELECT 3\0"));
    }

    #[test]
    fn ctes_and_system_relations_are_told_apart() {
        let l = analyse("WITH c AS (SELECT 1 AS x) SELECT * FROM c, pg_catalog.pg_class, information_schema.columns, people");
        let st = &l.statements[0];
        assert!(st.ctes.contains("c"));
        let names: Vec<&str> = st.tables.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(names, vec!["c", "people"]);
    }
}
