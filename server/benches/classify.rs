//! What the classifier costs per statement: a cached statement (the steady state, same shape
//! with new constants) must stay under 20 µs, a statement never seen before under 200 µs.
//! `cargo bench -p gatehouse-server --bench classify`.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse_server::config::Tier;
use gatehouse_server::identity::{Identity, IdentityKind};
use gatehouse_server::policy::{classify::classify, ClassifierCache, Policy, Subject};

const TYPICAL: &[&str] = &[
    "SELECT abalance FROM pgbench_accounts WHERE aid = 48213",
    "UPDATE pgbench_accounts SET abalance = abalance + -4012 WHERE aid = 77123",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 48213, -4012, CURRENT_TIMESTAMP)",
    "SELECT u.id, u.email, count(o.id) AS orders FROM users u LEFT JOIN orders o ON o.user_id = u.id \
     WHERE u.created_at > now() - interval '30 days' AND u.status = 'active' GROUP BY u.id, u.email \
     ORDER BY orders DESC LIMIT 50",
    "WITH recent AS (SELECT * FROM events WHERE ts > $1) SELECT kind, count(*) FROM recent GROUP BY kind",
];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify");
    for (i, sql) in TYPICAL.iter().enumerate() {
        g.bench_function(format!("uncached/{i}"), |b| b.iter(|| classify(sql)));
    }
    // Cached: the same shape with a new constant each time, as a real workload sends.
    let cache = ClassifierCache::new(10_000);
    let n = AtomicU64::new(0);
    g.bench_function("cached/pgbench-select", |b| {
        b.iter(|| {
            let aid = n.fetch_add(1, Ordering::Relaxed);
            cache.classify(&format!(
                "SELECT abalance FROM pgbench_accounts WHERE aid = {aid}"
            ))
        })
    });
    let long = TYPICAL[3];
    cache.classify(long);
    g.bench_function("cached/report-query", |b| b.iter(|| cache.classify(long)));

    // The whole decision with the built-in rules, cached, as the relay calls it.
    let policy = Policy::default();
    let agent = Identity {
        name: "agent".into(),
        kind: IdentityKind::Agent,
        groups: vec!["agents".into()],
        on_behalf_of: None,
        session_id: None,
    };
    let tags: Vec<String> = Vec::new();
    let subject = Subject {
        identity: &agent,
        environment: "prod",
        tier: Tier::Production,
        tags: &tags,
        search_path_changed: false,
    };
    g.bench_function("decide/cached-update", |b| {
        b.iter(|| policy.decide(&subject, TYPICAL[1]))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
