//! The planner's row estimate for a statement: `EXPLAIN (FORMAT JSON)` on a short-lived upstream
//! connection of the gateway's own, never `ANALYZE`, so nothing is executed.
//!
//! The statement goes through Parse (which refuses more than one statement, so nothing can ride
//! along after a semicolon) on a connection whose transactions are read-only.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::codec;
use super::tracker::error_fields;
use super::upstream::{self, UpstreamTarget};

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
    if sql.contains('$')
        && crate::sql::lexer::Lexer::new(sql).any(|t| t.kind == crate::sql::lexer::TokenKind::Param)
    {
        return Err(EstimateError::Explain(
            "it has parameters ($1…) whose values are not known yet".into(),
        ));
    }
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
                b'D' if frame.len() >= 11 => {
                    let len = i32::from_be_bytes([frame[7], frame[8], frame[9], frame[10]]);
                    if len > 0 {
                        plan_json.push_str(&String::from_utf8_lossy(&frame[11..11 + len as usize]));
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

/// The estimate from `EXPLAIN (FORMAT JSON)` output. A ModifyTable node reports no rows of its
/// own, so for writes the rows of the scan beneath it count.
pub fn plan_rows(json: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let plan = v.get(0)?.get("Plan")?;
    let own = plan
        .get("Plan Rows")
        .and_then(|r| r.as_f64())
        .unwrap_or(0.0);
    let child = plan
        .get("Plans")
        .and_then(|p| p.get(0))
        .and_then(|c| c.get("Plan Rows"))
        .and_then(|r| r.as_f64())
        .unwrap_or(0.0);
    let rows = if plan.get("Node Type").and_then(|n| n.as_str()) == Some("ModifyTable") {
        child.max(own)
    } else {
        own
    };
    Some(rows.ceil() as i64)
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
}
