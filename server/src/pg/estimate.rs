//! The planner's row estimate for a statement: `EXPLAIN (FORMAT JSON)` on a short-lived upstream
//! connection of the gateway's own, never `ANALYZE`, so nothing is executed.
//!
//! The statement goes through Parse (which refuses more than one statement, so nothing can ride
//! along after a semicolon) on a connection whose transactions are read-only.
//!
//! Planning is not inert: the planner folds calls of immutable functions with constant
//! arguments, so EXPLAIN of `SELECT my_fn(1)` runs `my_fn` with the gateway's credentials. A
//! statement is therefore estimated only when every function, operator and cast in it is a
//! vetted built-in ([`estimable`]); otherwise there is no estimate and a person decides.
//!
//! The estimate is the largest row count of any node of the plan (CTEs, subplans and init plans
//! included): a write hidden in a CTE under a one-row SELECT counts with its own rows.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::codec;
use super::upstream::{self, UpstreamTarget};
use super::wire::error_fields;

#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    #[error("cannot reach the upstream: {0}")]
    Connect(#[from] upstream::UpstreamError),
    #[error("the statement cannot be explained: {0}")]
    Explain(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

/// Rows the planner expects `sql` to return or change.
pub async fn rows(
    target: &UpstreamTarget,
    sql: &str,
    timeout: Duration,
) -> Result<i64, EstimateError> {
    estimable(sql).map_err(EstimateError::Explain)?;
    let params = vec![
        (
            "application_name".to_string(),
            "gatehouse:estimator".to_string(),
        ),
        (
            "default_transaction_read_only".to_string(),
            "on".to_string(),
        ),
    ];
    let conn = upstream::connect(target, &params, timeout).await?;
    let mut stream = conn.stream;
    let explain = format!("EXPLAIN (FORMAT JSON) {}", sql.trim().trim_end_matches(';'));
    let mut out = BytesMut::new();
    codec::put_unnamed_query(&mut out, &explain, false);
    codec::put_message(&mut out, b'X', |_| {});
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut buf = BytesMut::new();
    let mut plan_json = String::new();
    let mut error = None;
    let read = async {
        loop {
            let frame = codec::read_frame(&mut stream, &mut buf, 16 << 20)
                .await
                .map_err(|e| EstimateError::Protocol(e.to_string()))?;
            match frame[0] {
                b'D' => {
                    let values = super::wire::data_row(&frame)
                        .ok_or_else(|| EstimateError::Protocol("malformed DataRow".into()))?;
                    if let Some(Some(v)) = values.first() {
                        plan_json.push_str(&String::from_utf8_lossy(v));
                    }
                }
                b'E' => {
                    let fields = error_fields(&frame);
                    error = fields.into_iter().find(|(k, _)| *k == b'M').map(|(_, v)| v);
                }
                b'Z' => return Ok::<(), EstimateError>(()),
                _ => {}
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| EstimateError::Protocol("timed out".into()))??;
    if let Some(e) = error {
        return Err(EstimateError::Explain(e));
    }
    plan_rows(&plan_json).ok_or_else(|| EstimateError::Protocol("no plan in the answer".into()))
}

/// The estimate from `EXPLAIN (FORMAT JSON)` output: the most rows any node of the plan
/// expects. A ModifyTable node reports no rows of its own, and a write in a CTE sits under
/// whatever the outer query returns, so only the whole tree tells how many rows are touched.
pub fn plan_rows(json: &str) -> Option<i64> {
    fn most(node: &serde_json::Value) -> f64 {
        let own = node
            .get("Plan Rows")
            .and_then(|r| r.as_f64())
            .unwrap_or(0.0);
        node.get("Plans")
            .and_then(|p| p.as_array())
            .map_or(own, |kids| kids.iter().map(most).fold(own, f64::max))
    }
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let plan = v.get(0)?.get("Plan")?;
    Some(most(plan).ceil() as i64)
}

/// Built-in functions whose evaluation at plan time has no effect beyond its value.
const VETTED_FUNCTIONS: &[&str] = &[
    "abs",
    "avg",
    "btrim",
    "ceil",
    "char_length",
    "coalesce",
    "count",
    "current_date",
    "date_part",
    "date_trunc",
    "extract",
    "floor",
    "greatest",
    "least",
    "left",
    "length",
    "lower",
    "ltrim",
    "max",
    "min",
    "mod",
    "now",
    "nullif",
    "position",
    "replace",
    "right",
    "round",
    "rtrim",
    "split_part",
    "strpos",
    "substr",
    "substring",
    "sum",
    "to_char",
    "to_date",
    "to_timestamp",
    "trim",
    "trunc",
    "upper",
];

/// Words followed by `(` that are syntax, not calls.
const NOT_CALLS: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "between",
    "by",
    "conflict",
    "delete",
    "distinct",
    "do",
    "else",
    "except",
    "exists",
    "filter",
    "from",
    "group",
    "having",
    "in",
    "insert",
    "intersect",
    "into",
    "is",
    "join",
    "lateral",
    "like",
    "limit",
    "matched",
    "not",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "over",
    "recursive",
    "returning",
    "row",
    "select",
    "set",
    "some",
    "table",
    "then",
    "union",
    "update",
    "using",
    "values",
    "when",
    "where",
    "with",
    "within",
];

/// Operators whose built-in meaning on built-in types has no side effect.
const VETTED_OPERATORS: &[&str] = &[
    "=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "||", ".", ",", "(", ")", "[",
    "]", ":", "::",
];

/// Built-in types a value may be cast to without running user code.
const VETTED_TYPES: &[&str] = &[
    "bigint",
    "bool",
    "boolean",
    "bytea",
    "char",
    "character",
    "date",
    "decimal",
    "double",
    "float",
    "float4",
    "float8",
    "int",
    "int2",
    "int4",
    "int8",
    "integer",
    "interval",
    "json",
    "jsonb",
    "numeric",
    "real",
    "smallint",
    "text",
    "time",
    "timestamp",
    "timestamptz",
    "uuid",
    "varchar",
];

/// Whether `sql` may be planned with the gateway's credentials: no parameters (their values
/// are unknown), and only vetted built-in functions, operators and casts. `Err` says why not.
pub fn estimable(sql: &str) -> Result<(), String> {
    use crate::sql::lexer::{Lexer, TokenKind};
    // The lexer gives operator characters one by one; adjacent ones are one operator, as in
    // PostgreSQL (`+++`, `::`, `->>`).
    let op_char = |c: char| "~!@#^&|`?+-*/%<>=:".contains(c);
    let mut tokens: Vec<(TokenKind, std::ops::Range<usize>)> = Vec::new();
    for t in Lexer::new(sql) {
        match tokens.last_mut() {
            Some((TokenKind::Other, r))
                if t.kind == TokenKind::Other
                    && r.end == t.start
                    && t.text(sql).chars().all(op_char)
                    && sql[r.clone()].chars().all(op_char) =>
            {
                r.end = t.end
            }
            _ => tokens.push((t.kind, t.start..t.end)),
        }
    }
    let text = |i: usize| tokens.get(i).map(|(_, r)| &sql[r.clone()]);
    let word = |i: usize| {
        tokens
            .get(i)
            .filter(|(k, _)| *k == TokenKind::Word)
            .map(|(_, r)| sql[r.clone()].to_ascii_lowercase())
    };
    for (i, (kind, range)) in tokens.iter().enumerate() {
        let t = &sql[range.clone()];
        match kind {
            TokenKind::Param => {
                return Err("it has parameters ($1…) whose values are not known yet".into())
            }
            TokenKind::Other => {
                if !VETTED_OPERATORS.contains(&t) {
                    return Err(format!("it uses the operator {t}, which may run user code"));
                }
                if t == "::" && !word(i + 1).is_some_and(|w| VETTED_TYPES.contains(&w.as_str())) {
                    return Err("it casts to a type whose conversion may run user code".into());
                }
            }
            TokenKind::Word | TokenKind::QuotedIdent if text(i + 1) == Some("(") => {
                let name = t.to_ascii_lowercase();
                let qualified = i > 0 && text(i - 1) == Some(".");
                let pg_catalog = qualified && i > 1 && word(i - 2).as_deref() == Some("pg_catalog");
                let after_into = i > 0 && word(i - 1).as_deref() == Some("into");
                let call = *kind == TokenKind::QuotedIdent
                    || qualified
                    || !NOT_CALLS.contains(&name.as_str());
                let vetted = *kind == TokenKind::Word
                    && (!qualified || pg_catalog)
                    && VETTED_FUNCTIONS.contains(&name.as_str());
                if call && !vetted && !after_into {
                    return Err(format!(
                        "it calls {name}(), which planning may run with the gateway's credentials"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_scan_rows_under_modify_table() {
        let j = r#"[{"Plan": {"Node Type": "ModifyTable", "Plan Rows": 0, "Plans": [{"Node Type": "Seq Scan", "Plan Rows": 42}]}}]"#;
        assert_eq!(super::plan_rows(j), Some(42));
        let j = r#"[{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 7}}]"#;
        assert_eq!(super::plan_rows(j), Some(7));
        assert_eq!(super::plan_rows("nope"), None);
    }

    #[test]
    fn a_write_in_a_cte_counts_with_its_own_rows() {
        // WITH d AS (DELETE FROM orders RETURNING 1) SELECT 1: the top node says one row.
        let j = r#"[{"Plan": {"Node Type": "Result", "Plan Rows": 1, "Plans": [
            {"Node Type": "ModifyTable", "Parent Relationship": "Member", "Plan Rows": 0, "Plans": [
                {"Node Type": "Seq Scan", "Plan Rows": 5000}]}]}}]"#;
        assert_eq!(super::plan_rows(j), Some(5000));
    }

    #[test]
    fn only_statements_without_user_code_are_planned() {
        for ok in [
            "DELETE FROM orders WHERE id = 5",
            "UPDATE orders SET total = total * 2 WHERE created < now() - interval '1 day'",
            "INSERT INTO orders (id, total) VALUES (1, 2)",
            "DELETE FROM t WHERE id IN (SELECT id FROM u WHERE lower(name) = 'x')",
            "UPDATE t SET a = '5'::int WHERE b = pg_catalog.upper('x')",
        ] {
            assert_eq!(super::estimable(ok), Ok(()), "{ok}");
        }
        for no in [
            "DELETE FROM t WHERE id = my_fn(1)",
            "DELETE FROM t WHERE id = public.count(1)",
            "DELETE FROM t WHERE id = pg_temp.lower('x')",
            "DELETE FROM t WHERE id = \"lower\"('x')",
            "DELETE FROM t WHERE a +++ 1",
            "DELETE FROM t WHERE a = '1'::my_type",
            "DELETE FROM t WHERE id = $1",
            "SELECT pg_terminate_backend(123)",
        ] {
            assert!(super::estimable(no).is_err(), "{no}");
        }
    }
}
