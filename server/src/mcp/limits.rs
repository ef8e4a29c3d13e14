//! Per-identity limits suited to agents: statements in any minute, rows returned in any hour,
//! statements running at once. In memory (they protect this gateway process, like its
//! connection limit); windows slide, so a burst at a minute's edge cannot double the rate.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::McpConfig;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// One identity's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub statements_per_minute: u32,
    pub rows_per_hour: u64,
    pub concurrent_queries: u32,
    pub max_rows: usize,
}

/// Which limit a call ran into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    #[error("limit reached: at most {limit} statements per minute for `{identity}`; try again in {retry_after_seconds} s")]
    StatementsPerMinute {
        identity: String,
        limit: u32,
        retry_after_seconds: u64,
    },
    #[error("limit reached: at most {limit} rows per hour for `{identity}`; try again in {retry_after_seconds} s, or ask for fewer rows (LIMIT, aggregates)")]
    RowsPerHour {
        identity: String,
        limit: u64,
        retry_after_seconds: u64,
    },
    #[error("limit reached: at most {limit} statements at once for `{identity}`; wait for one to finish")]
    ConcurrentQueries { identity: String, limit: u32 },
}

impl LimitHit {
    /// The limit's configuration key, for the audit and for agents.
    pub fn key(&self) -> &'static str {
        match self {
            LimitHit::StatementsPerMinute { .. } => "statements_per_minute",
            LimitHit::RowsPerHour { .. } => "rows_per_hour",
            LimitHit::ConcurrentQueries { .. } => "concurrent_queries",
        }
    }
}

#[derive(Default)]
struct Usage {
    statements: VecDeque<Instant>,
    rows: VecDeque<(Instant, u64)>,
    rows_total: u64,
}

impl Usage {
    fn expire(&mut self, now: Instant) {
        while self
            .statements
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            self.statements.pop_front();
        }
        while let Some(&(t, n)) = self.rows.front() {
            if now.duration_since(t) < HOUR {
                break;
            }
            self.rows_total -= n;
            self.rows.pop_front();
        }
    }
}

struct PerIdentity {
    usage: Mutex<Usage>,
    running: Arc<Semaphore>,
}

pub struct Limits {
    defaults: Quota,
    overrides: HashMap<String, Quota>,
    identities: Mutex<HashMap<String, Arc<PerIdentity>>>,
}

/// Held while a statement runs; returns its concurrency slot when dropped.
pub struct Admitted {
    per: Arc<PerIdentity>,
    _permit: OwnedSemaphorePermit,
    /// Rows this call may still return (the row cap and what is left of the hour's rows).
    pub row_allowance: usize,
}

impl Admitted {
    /// Counts the rows a call returned against the hourly limit.
    pub fn returned(&self, rows: u64) {
        if rows == 0 {
            return;
        }
        let mut u = lock(&self.per.usage);
        u.rows.push_back((Instant::now(), rows));
        u.rows_total += rows;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Limits {
    pub fn from_config(c: &McpConfig) -> Limits {
        let defaults = Quota {
            statements_per_minute: c.statements_per_minute,
            rows_per_hour: c.rows_per_hour,
            concurrent_queries: c.concurrent_queries.max(1),
            max_rows: c.max_rows.max(1),
        };
        let overrides = c
            .limits
            .iter()
            .map(|o| {
                (
                    o.identity.get_ref().clone(),
                    Quota {
                        statements_per_minute: o
                            .statements_per_minute
                            .unwrap_or(defaults.statements_per_minute),
                        rows_per_hour: o.rows_per_hour.unwrap_or(defaults.rows_per_hour),
                        concurrent_queries: o
                            .concurrent_queries
                            .unwrap_or(defaults.concurrent_queries)
                            .max(1),
                        max_rows: o.max_rows.unwrap_or(defaults.max_rows).max(1),
                    },
                )
            })
            .collect();
        Limits {
            defaults,
            overrides,
            identities: Mutex::new(HashMap::new()),
        }
    }

    pub fn quota(&self, identity: &str) -> Quota {
        self.overrides
            .get(identity)
            .copied()
            .unwrap_or(self.defaults)
    }

    fn per(&self, identity: &str) -> Arc<PerIdentity> {
        let quota = self.quota(identity);
        lock(&self.identities)
            .entry(identity.to_string())
            .or_insert_with(|| {
                Arc::new(PerIdentity {
                    usage: Mutex::new(Usage::default()),
                    running: Arc::new(Semaphore::new(quota.concurrent_queries as usize)),
                })
            })
            .clone()
    }

    /// Admits one statement for `identity`, or says which limit it hit. A refused call does
    /// not count against the per-minute limit (an agent retrying in a loop stays refused).
    pub fn admit(&self, identity: &str) -> Result<Admitted, LimitHit> {
        let quota = self.quota(identity);
        let per = self.per(identity);
        let permit =
            per.running
                .clone()
                .try_acquire_owned()
                .map_err(|_| LimitHit::ConcurrentQueries {
                    identity: identity.to_string(),
                    limit: quota.concurrent_queries,
                })?;
        let now = Instant::now();
        let mut u = lock(&per.usage);
        u.expire(now);
        if u.statements.len() >= quota.statements_per_minute as usize {
            let oldest = u.statements.front().copied().unwrap_or(now);
            return Err(LimitHit::StatementsPerMinute {
                identity: identity.to_string(),
                limit: quota.statements_per_minute,
                retry_after_seconds: MINUTE.saturating_sub(now.duration_since(oldest)).as_secs()
                    + 1,
            });
        }
        if u.rows_total >= quota.rows_per_hour {
            let oldest = u.rows.front().map(|r| r.0).unwrap_or(now);
            return Err(LimitHit::RowsPerHour {
                identity: identity.to_string(),
                limit: quota.rows_per_hour,
                retry_after_seconds: HOUR.saturating_sub(now.duration_since(oldest)).as_secs() + 1,
            });
        }
        u.statements.push_back(now);
        let left = quota.rows_per_hour - u.rows_total;
        let row_allowance = (quota.max_rows as u64).min(left) as usize;
        drop(u);
        Ok(Admitted {
            per,
            _permit: permit,
            row_allowance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_minute: u32, rows: u64, concurrent: u32) -> McpConfig {
        McpConfig {
            statements_per_minute: per_minute,
            rows_per_hour: rows,
            concurrent_queries: concurrent,
            max_rows: 100,
            ..McpConfig::default()
        }
    }

    #[test]
    fn statements_per_minute_are_counted_per_identity() {
        let l = Limits::from_config(&config(2, 1000, 5));
        drop(l.admit("a").unwrap());
        drop(l.admit("a").unwrap());
        let hit = l.admit("a").err().unwrap();
        assert_eq!(hit.key(), "statements_per_minute");
        assert!(hit.to_string().contains("2 statements per minute"));
        assert!(l.admit("b").is_ok(), "another identity has its own budget");
    }

    #[test]
    fn rows_per_hour_cap_the_allowance_then_refuse() {
        let l = Limits::from_config(&config(100, 150, 5));
        let a = l.admit("a").unwrap();
        assert_eq!(a.row_allowance, 100, "the row cap");
        a.returned(100);
        let a = l.admit("a").unwrap();
        assert_eq!(a.row_allowance, 50, "what is left of the hour");
        a.returned(50);
        assert_eq!(l.admit("a").err().unwrap().key(), "rows_per_hour");
    }

    #[test]
    fn concurrent_statements_are_bounded() {
        let l = Limits::from_config(&config(100, 1000, 1));
        let first = l.admit("a").unwrap();
        assert_eq!(l.admit("a").err().unwrap().key(), "concurrent_queries");
        drop(first);
        assert!(l.admit("a").is_ok());
    }
}
