//! What `describe` and `query` hand back to agents: the catalog query, the flag on columns that
//! likely hold personal data, and text-format values turned into JSON values.
//!
//! Architecture invariant: pure functions; the statements run through the loopback session.

use serde_json::{json, Map, Value};

use crate::pg::loopback::{Column, ResultSet};

/// Every column of every user table and view the session's role can see.
pub const DESCRIBE_SQL: &str = "SELECT c.table_schema, c.table_name, t.table_type, c.column_name, c.data_type, c.is_nullable \
FROM information_schema.columns c JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.table_schema NOT LIKE 'pg\\_toast%' \
ORDER BY c.table_schema, c.table_name, c.ordinal_position";

/// Most catalog rows `describe` reads.
pub const DESCRIBE_MAX_ROWS: usize = 20_000;

/// Whether a column's name says it holds personal data or secrets, and which kind.
///
/// A heuristic on names only: the masking catalog (issue #5) will replace it with what the
/// detectors found in the data. Short words (`tel`, `dob`, `ssn`) must be a whole `_`-separated
/// part of the name, so `hotel` or `panel` are not flagged.
pub fn sensitive_column(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    let parts: Vec<&str> = n.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let part = |words: &[&str]| parts.iter().any(|p| words.contains(p));
    let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if has(&["email", "e_mail"]) || part(&["mail"]) {
        Some("email")
    } else if has(&["phone", "mobile", "msisdn"]) || part(&["tel", "fax"]) {
        Some("phone")
    } else if has(&[
        "card_number",
        "cardnumber",
        "credit_card",
        "creditcard",
        "cc_number",
    ]) || part(&["pan", "cvv", "cvc"])
    {
        Some("card")
    } else if has(&["iban", "account_number", "bank_account", "routing_number"]) {
        Some("bank_account")
    } else if has(&[
        "ssn",
        "social_security",
        "national_id",
        "passport",
        "tax_id",
        "taxid",
        "driver_license",
        "drivers_license",
    ]) || part(&["nin", "tin"])
    {
        Some("national_id")
    } else if has(&[
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "credential",
    ]) {
        Some("secret")
    } else if has(&["birth"]) || part(&["dob"]) {
        Some("date_of_birth")
    } else if has(&["address", "street", "postcode", "postal_code", "zipcode"]) || part(&["zip"]) {
        Some("address")
    } else if has(&[
        "first_name",
        "last_name",
        "full_name",
        "surname",
        "maiden_name",
    ]) {
        Some("name")
    } else {
        None
    }
}

/// The catalog rows of [`DESCRIBE_SQL`] as schemas → tables → columns, optionally narrowed
/// to one schema or one table (`name` or `schema.name`).
pub fn describe(set: &ResultSet, schema: Option<&str>, table: Option<&str>) -> Value {
    let (want_schema, want_table) = match (schema, table.map(|t| t.split_once('.'))) {
        (s, Some(Some((ts, tn)))) => (Some(s.unwrap_or(ts)), Some(tn)),
        (s, _) => (s, table),
    };
    let mut tables: Vec<Value> = Vec::new();
    let mut current: Option<(String, String, Map<String, Value>)> = None;
    let mut flagged = 0usize;
    let finish = |cur: Option<(String, String, Map<String, Value>)>, out: &mut Vec<Value>| {
        if let Some((_, _, t)) = cur {
            out.push(Value::Object(t));
        }
    };
    for row in &set.rows {
        let cell = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (s, t, kind, col, ty, nullable) =
            (cell(0), cell(1), cell(2), cell(3), cell(4), cell(5));
        if want_schema.is_some_and(|w| w != s) || want_table.is_some_and(|w| w != t) {
            continue;
        }
        if current
            .as_ref()
            .is_none_or(|(cs, ct, _)| *cs != s || *ct != t)
        {
            finish(current.take(), &mut tables);
            let mut m = Map::new();
            m.insert("schema".into(), json!(s));
            m.insert("table".into(), json!(t));
            m.insert(
                "kind".into(),
                json!(if kind == "VIEW" { "view" } else { "table" }),
            );
            m.insert("columns".into(), json!([]));
            current = Some((s.clone(), t.clone(), m));
        }
        let sensitive = sensitive_column(&col);
        flagged += usize::from(sensitive.is_some());
        let mut c = json!({ "name": col, "type": ty, "nullable": nullable == "YES" });
        if let Some(kind) = sensitive {
            c["sensitive"] = json!(true);
            c["sensitive_kind"] = json!(kind);
        }
        if let Some((_, _, m)) = current.as_mut() {
            if let Some(Value::Array(cols)) = m.get_mut("columns") {
                cols.push(c);
            }
        }
    }
    finish(current.take(), &mut tables);
    json!({
        "tables": tables,
        "sensitive_columns": flagged,
        "note": "Columns marked sensitive likely hold personal data or secrets; the gateway masks such values in results, and their values are never shown here.",
    })
}

/// A text-format value as the JSON value of its PostgreSQL type (numbers, booleans and JSON as
/// themselves; everything else, numeric included so no precision is lost, as a string).
pub fn value(text: Option<&str>, type_oid: u32) -> Value {
    let Some(t) = text else { return Value::Null };
    match type_oid {
        16 => Value::Bool(t == "t"),
        20 | 21 | 23 | 26 => t
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(t)),
        700 | 701 => t
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| json!(t)),
        114 | 3802 => serde_json::from_str(t).unwrap_or_else(|_| json!(t)),
        _ => json!(t),
    }
}

/// A type OID's name, for the common types (others as `oid:N`).
pub fn type_name(oid: u32) -> String {
    match oid {
        16 => "boolean".into(),
        17 => "bytea".into(),
        20 => "bigint".into(),
        21 => "smallint".into(),
        23 => "integer".into(),
        25 => "text".into(),
        26 => "oid".into(),
        114 => "json".into(),
        700 => "real".into(),
        701 => "double precision".into(),
        1042 => "character".into(),
        1043 => "character varying".into(),
        1082 => "date".into(),
        1083 => "time".into(),
        1114 => "timestamp".into(),
        1184 => "timestamptz".into(),
        1186 => "interval".into(),
        1700 => "numeric".into(),
        2950 => "uuid".into(),
        3802 => "jsonb".into(),
        other => format!("oid:{other}"),
    }
}

/// One result set as JSON: columns with types, rows as arrays of values.
pub fn result_json(set: &ResultSet) -> Value {
    let columns: Vec<Value> = set
        .columns
        .iter()
        .map(|c: &Column| json!({ "name": c.name, "type": type_name(c.type_oid) }))
        .collect();
    let rows: Vec<Value> = set
        .rows
        .iter()
        .map(|r| {
            Value::Array(
                r.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        value(v.as_deref(), set.columns.get(i).map_or(25, |c| c.type_oid))
                    })
                    .collect(),
            )
        })
        .collect();
    json!({
        "command": set.tag,
        "columns": columns,
        "rows": rows,
        "row_count": set.rows.len(),
        "total_rows": set.total_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_columns_are_flagged_by_name() {
        for (name, kind) in [
            ("email", "email"),
            ("customer_email", "email"),
            ("phone_number", "phone"),
            ("tel", "phone"),
            ("ssn", "national_id"),
            ("card_number", "card"),
            ("iban", "bank_account"),
            ("password_hash", "secret"),
            ("api_key", "secret"),
            ("date_of_birth", "date_of_birth"),
            ("dob", "date_of_birth"),
            ("street_address", "address"),
            ("last_name", "name"),
        ] {
            assert_eq!(sensitive_column(name), Some(kind), "{name}");
        }
        for name in [
            "id",
            "hotel",
            "panel",
            "total",
            "created_at",
            "status",
            "mailbox_count",
        ] {
            assert_eq!(sensitive_column(name), None, "{name}");
        }
    }

    #[test]
    fn values_keep_their_types() {
        assert_eq!(value(Some("42"), 23), json!(42));
        assert_eq!(value(Some("t"), 16), json!(true));
        assert_eq!(value(Some("1.5"), 701), json!(1.5));
        assert_eq!(value(Some("1.50"), 1700), json!("1.50"));
        assert_eq!(value(Some(r#"{"a":1}"#), 3802), json!({"a": 1}));
        assert_eq!(value(None, 25), Value::Null);
        assert_eq!(value(Some("x"), 25), json!("x"));
    }

    #[test]
    fn the_catalog_is_grouped_and_narrowed() {
        let row = |s: &str, t: &str, c: &str, ty: &str| {
            vec![
                Some(s.to_string()),
                Some(t.to_string()),
                Some("BASE TABLE".to_string()),
                Some(c.to_string()),
                Some(ty.to_string()),
                Some("NO".to_string()),
            ]
        };
        let set = ResultSet {
            rows: vec![
                row("public", "customers", "id", "integer"),
                row("public", "customers", "email", "text"),
                row("public", "orders", "id", "integer"),
            ],
            ..Default::default()
        };
        let all = describe(&set, None, None);
        assert_eq!(all["tables"].as_array().unwrap().len(), 2);
        assert_eq!(all["sensitive_columns"], json!(1));
        assert_eq!(all["tables"][0]["columns"][1]["sensitive"], json!(true));
        let one = describe(&set, None, Some("public.orders"));
        assert_eq!(one["tables"].as_array().unwrap().len(), 1);
        assert_eq!(one["tables"][0]["table"], json!("orders"));
    }
}
