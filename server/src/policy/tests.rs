//! The policy engine end to end over text: rule order (config, API, built-in), reasons,
//! versions of API changes, and what the API may not touch.

use super::*;
use crate::identity::IdentityKind;

fn identity(kind: IdentityKind, groups: &[&str]) -> Identity {
    Identity {
        name: "alice".into(),
        kind,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        on_behalf_of: None,
        session_id: None,
    }
}

fn rule(toml_text: &str) -> Rule {
    toml::from_str(toml_text).expect("rule")
}

fn subject<'a>(id: &'a Identity, tier: Tier) -> Subject<'a> {
    Subject {
        identity: id,
        environment: "prod",
        tier,
        tags: &[],
        search_path_changed: false,
    }
}

#[test]
fn reasons_name_the_rule_and_say_what_to_do() {
    let p = Policy::default();
    let alice = identity(IdentityKind::Human, &[]);
    let d = p.decide(&subject(&alice, Tier::Production), "DROP TABLE users");
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.rule, "prod-no-drop");
    assert!(
        d.reason
            .starts_with("rule prod-no-drop: DROP TABLE — DROP, TRUNCATE, ALTER … DROP and column type changes are not allowed in production environments"),
        "{}",
        d.reason
    );
    let d = p.decide(
        &subject(&alice, Tier::Production),
        "DELETE FROM orders WHERE 1=1",
    );
    assert_eq!(d.action, Action::Review);
    assert!(
        d.reason
            .contains("DELETE FROM orders has no WHERE clause that limits the rows"),
        "{}",
        d.reason
    );
    let d = p.decide(
        &subject(&alice, Tier::Production),
        "SELECT pg_terminate_backend(1)",
    );
    assert!(
        d.reason.contains("it calls pg_terminate_backend"),
        "{}",
        d.reason
    );
    let d = p.decide(&subject(&alice, Tier::Production), "SELECT 1");
    assert_eq!((d.action, d.rule.as_str()), (Action::Allow, "default"));
    assert!(d.classification.is_some());
}

#[test]
fn config_rules_come_first_and_can_make_exceptions() {
    let config_rules = vec![
        rule(
            r#"
            id = "dba-may-truncate-staging-tables"
            action = "allow"
            kinds = ["truncate"]
            tables = ["staging_*"]
            groups = ["dba"]
        "#,
        ),
        rule(
            r#"
            id = "no-deletes-at-night"
            description = "deletes wait for office hours"
            action = "deny"
            kinds = ["delete"]
            hours = "22:00-06:00"
        "#,
        ),
    ];
    let p = Policy::new(config_rules, true, 100);
    let dba = identity(IdentityKind::Human, &["dba"]);
    let dev = identity(IdentityKind::Human, &["dev"]);
    let d = p.decide(&subject(&dba, Tier::Production), "TRUNCATE staging_import");
    assert_eq!(
        (d.action, d.rule.as_str()),
        (Action::Allow, "dba-may-truncate-staging-tables")
    );
    let d = p.decide(&subject(&dev, Tier::Production), "TRUNCATE staging_import");
    assert_eq!(d.rule, "prod-no-drop");
    let d = p.decide(&subject(&dba, Tier::Production), "TRUNCATE users");
    assert_eq!(d.rule, "prod-no-drop");

    use chrono::TimeZone;
    let night = Utc.with_ymd_and_hms(2026, 11, 26, 23, 0, 0).unwrap();
    let noon = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
    let sql = "DELETE FROM t WHERE id = 1";
    let d = p.decide_at(&subject(&dev, Tier::Development), sql, night);
    assert_eq!(d.action, Action::Deny);
    assert_eq!(
        d.reason,
        "rule no-deletes-at-night: DELETE — deletes wait for office hours"
    );
    let d = p.decide_at(&subject(&dev, Tier::Development), sql, noon);
    assert_eq!(d.action, Action::Allow);
}

#[test]
fn without_builtin_rules_everything_is_allowed_by_default() {
    let p = Policy::new(Vec::new(), false, 100);
    let alice = identity(IdentityKind::Agent, &[]);
    let d = p.decide(&subject(&alice, Tier::Production), "DROP TABLE users");
    assert_eq!(d.action, Action::Allow);
}

#[tokio::test]
async fn api_rules_are_versioned_ordered_and_kept_apart_from_config_and_builtin() {
    let store = Store::open_in_memory().unwrap();
    let p = Policy::new(
        vec![rule("id = \"cfg\"\naction = \"allow\"\nkinds = [\"lock\"]")],
        true,
        100,
    );
    p.load_blocking(&store).unwrap();
    assert_eq!(p.rules().version, 0);

    let a = rule(
        "id = \"a\"\naction = \"deny\"\nkinds = [\"insert\"]\ndescription = \"read-only week\"",
    );
    let b = rule("id = \"b\"\naction = \"review\"\nkinds = [\"insert\"]");
    assert_eq!(
        p.create_rule(&store, a.clone(), None, "root")
            .await
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        p.create_rule(&store, b.clone(), Some(0), "root")
            .await
            .unwrap()
            .version,
        2
    );
    let ids: Vec<(String, RuleSource)> = p
        .rules()
        .all
        .iter()
        .map(|(r, s)| (r.id.clone(), *s))
        .take(3)
        .collect();
    assert_eq!(
        ids,
        [
            ("cfg".to_string(), RuleSource::Config),
            ("b".to_string(), RuleSource::Api),
            ("a".to_string(), RuleSource::Api)
        ]
    );
    let alice = identity(IdentityKind::Human, &[]);
    let d = p.decide(&subject(&alice, Tier::Staging), "INSERT INTO t VALUES (1)");
    assert_eq!((d.action, d.rule.as_str()), (Action::Review, "b"));

    // Duplicates, config and built-in ids, bad rules and unknown ids are refused.
    assert!(matches!(
        p.create_rule(&store, a.clone(), None, "root").await,
        Err(RuleError::Duplicate(_))
    ));
    let mut cfg = a.clone();
    cfg.id = "prod-no-drop".into();
    assert!(matches!(
        p.create_rule(&store, cfg, None, "root").await,
        Err(RuleError::ReadOnly(_, _))
    ));
    assert!(matches!(
        p.delete_rule(&store, "cfg", "root").await,
        Err(RuleError::ReadOnly(_, _))
    ));
    let mut bad = a.clone();
    bad.hours = Some("soon".into());
    assert!(matches!(
        p.update_rule(&store, "a", bad, None, "root").await,
        Err(RuleError::Invalid(m)) if m.contains("hours")
    ));
    assert!(matches!(
        p.delete_rule(&store, "zzz", "root").await,
        Err(RuleError::NotFound(_))
    ));

    // Update in place, then delete; each a new version, all kept.
    let mut b2 = b.clone();
    b2.action = Action::Allow;
    assert_eq!(
        p.update_rule(&store, "b", b2, None, "root")
            .await
            .unwrap()
            .version,
        3
    );
    let d = p.decide(&subject(&alice, Tier::Staging), "INSERT INTO t VALUES (1)");
    assert_eq!((d.action, d.rule.as_str()), (Action::Allow, "b"));
    let removed = p.delete_rule(&store, "b", "root").await.unwrap();
    assert_eq!((removed.version, removed.rule.id.as_str()), (4, "b"));
    let d = p.decide(&subject(&alice, Tier::Staging), "INSERT INTO t VALUES (1)");
    assert_eq!(
        (d.action, d.reason.as_str()),
        (Action::Deny, "rule a: INSERT — read-only week")
    );
    let versions = store.list_rule_versions().await.unwrap();
    let changes: Vec<&str> = versions.iter().map(|v| v.change.as_str()).collect();
    assert_eq!(changes, ["delete b", "update b", "create b", "create a"]);
    let v2 = Policy::rules_of_version(2, &versions[2].rules_json).unwrap();
    assert_eq!(
        v2.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );

    // Another gateway on the same store starts with the latest version; a change made from a
    // stale view is refused rather than lost.
    let other = Policy::new(Vec::new(), true, 100);
    other.load_blocking(&store).unwrap();
    assert_eq!(other.rules().version, 4);
    assert_eq!(other.rules().api, vec![a.clone()]);
    p.delete_rule(&store, "a", "root").await.unwrap();
    assert!(matches!(
        other.create_rule(&store, b.clone(), None, "root").await,
        Err(RuleError::Stale(5))
    ));
    assert!(other.rules().api.is_empty(), "reloaded after the refusal");
}

#[test]
fn unreadable_stored_rules_stop_the_gateway() {
    let store = Store::open_in_memory().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(store.save_rules(0, 1, "x".into(), "create x".into(), "[{\"id\":1}]".into()))
        .unwrap();
    let p = Policy::default();
    assert!(matches!(
        p.load_blocking(&store),
        Err(RuleError::Corrupt { version: 1, .. })
    ));
}

#[test]
fn a_string_of_statements_is_decided_statement_by_statement() {
    // An allow rule covers only the statements it matches: the DROP after the TRUNCATE it
    // allows is decided on its own.
    let p = Policy::new(
        vec![rule(
            r#"
            id = "dba-may-truncate-staging-tables"
            action = "allow"
            kinds = ["truncate"]
            tables = ["staging_*"]
            groups = ["dba"]
        "#,
        )],
        true,
        100,
    );
    let dba = identity(IdentityKind::Human, &["dba"]);
    let s = subject(&dba, Tier::Production);
    let d = p.decide(&s, "TRUNCATE staging_x; DROP TABLE customers");
    assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "prod-no-drop"));
    assert_eq!(d.statements.len(), 2);
    assert_eq!(
        (d.statements[0].action, d.statements[0].rule.as_str()),
        (Action::Allow, "dba-may-truncate-staging-tables")
    );
    assert_eq!(d.statements[1].command, "DROP TABLE");
    // Allowed alone, and when every statement is allowed the explicit rule is named.
    let d = p.decide(&s, "TRUNCATE staging_x; SELECT 1");
    assert_eq!(
        (d.action, d.rule.as_str()),
        (Action::Allow, "dba-may-truncate-staging-tables")
    );
    // Deny beats review, review beats allow, wherever they are in the string.
    let d = p.decide(&s, "DELETE FROM t; SELECT 1; GRANT ALL ON t TO bob");
    assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "prod-no-grant"));
    let d = p.decide(&s, "SELECT 1; DELETE FROM t");
    assert_eq!(
        (d.action, d.rule.as_str()),
        (Action::Review, "prod-review-unbounded-write")
    );

    // A rule's conditions hold on one statement, not on facts gathered from several: this deny
    // rule is about dropping `customers`, not about reading it.
    let p = Policy::new(
        vec![rule(
            r#"
            id = "keep-customers"
            action = "deny"
            kinds = ["drop"]
            tables = ["customers"]
        "#,
        )],
        false,
        100,
    );
    let d = p.decide(&s, "DROP TABLE scratch; SELECT * FROM customers");
    assert_eq!(d.action, Action::Allow, "{}", d.reason);
    let d = p.decide(&s, "SELECT 1; DROP TABLE customers");
    assert_eq!(
        (d.action, d.rule.as_str()),
        (Action::Deny, "keep-customers")
    );
}

#[test]
fn table_rules_see_every_spelling_and_every_kind_of_access() {
    let p = Policy::new(
        vec![rule(
            r#"
            id = "no-salaries"
            action = "deny"
            tables = ["payroll.salaries"]
        "#,
        )],
        false,
        100,
    );
    let alice = identity(IdentityKind::Human, &[]);
    let s = subject(&alice, Tier::Production);
    for sql in [
        "SELECT * FROM payroll.salaries",
        "SELECT * FROM PAYROLL.SALARIES",
        "SELECT * FROM \"payroll\".\"salaries\"",
        "SELECT * FROM appdb.payroll.salaries",
        "SELECT * FROM salaries",
        "COPY payroll.salaries TO STDOUT",
        "COPY (SELECT * FROM payroll.salaries) TO STDOUT",
        "SELECT table_to_xml('payroll.salaries', true, false, '')",
        "SELECT table_to_xml('\"payroll\".\"salaries\"'::regclass, true, false, '')",
        "SELECT table_to_xmlschema('payroll.salaries', true, false, '')",
        "SELECT schema_to_xml('payroll', true, false, '')",
        "SELECT database_to_xml(true, false, '')",
        "SELECT 1; SELECT * FROM payroll.salaries",
    ] {
        let d = p.decide(&s, sql);
        assert_eq!(d.action, Action::Deny, "{sql}: {}", d.reason);
    }
    for sql in [
        "SELECT * FROM public.salaries",
        "SELECT * FROM payroll.bonuses",
        "SELECT table_to_xml('public.salaries', true, false, '')",
        "SELECT schema_to_xml('public', true, false, '')",
    ] {
        assert_eq!(p.decide(&s, sql).action, Action::Allow, "{sql}");
    }
    // A table named in a string the gateway cannot read is not analysable: the built-in
    // rules hold it in production.
    let strict = Policy::default();
    let d = strict.decide(
        &s,
        "SELECT table_to_xml(16384::oid::regclass, true, false, '')",
    );
    assert_eq!(d.action, Action::Review, "{}", d.reason);
}

#[test]
fn literals_that_change_a_verdict_are_never_shared_through_the_cache() {
    let p = Policy::default();
    let agent = identity(IdentityKind::Human, &[]);
    let s = subject(&agent, Tier::Production);
    // Planned only: allowed. Then the same shape with ANALYZE on runs the DELETE.
    assert_eq!(
        p.decide(&s, "EXPLAIN (ANALYZE 0) DELETE FROM users").action,
        Action::Allow
    );
    assert_eq!(
        p.decide(&s, "EXPLAIN (ANALYZE 1) DELETE FROM users").action,
        Action::Review
    );
    assert_eq!(
        p.decide(&s, "EXPLAIN (ANALYZE 0) DELETE FROM users").action,
        Action::Allow
    );
    assert_eq!(
        p.decide(&s, "SELECT table_to_xml('public.x', true, false, '')")
            .classification
            .unwrap()
            .tables_read,
        ["public.x"]
    );
    assert_eq!(
        p.decide(&s, "SELECT table_to_xml('payroll.y', true, false, '')")
            .classification
            .unwrap()
            .tables_read,
        ["payroll.y"]
    );
}

#[test]
fn a_session_whose_string_reading_is_known_gets_that_reading_only() {
    let p = Policy::default();
    let alice = identity(IdentityKind::Human, &[]);
    let s = subject(&alice, Tier::Production);
    let sql = "SELECT 'a\\'; SELECT ' ; DROP TABLE users; --'";
    let stmt = crate::sql::Statement::new(sql);
    // Unknown: both readings count, and one of them drops a table.
    assert_eq!(p.decide_statement_as(&s, &stmt, None).action, Action::Deny);
    // standard_conforming_strings = on: two SELECTs of strings.
    assert_eq!(
        p.decide_statement_as(&s, &stmt, Some(Strings::Standard))
            .action,
        Action::Allow
    );
    assert_eq!(
        p.decide_statement_as(&s, &stmt, Some(Strings::Backslash))
            .action,
        Action::Deny
    );
}

#[tokio::test]
async fn a_kept_decision_ends_with_the_rules_it_came_from_and_timed_rules_are_never_kept() {
    let store = Store::open_in_memory().unwrap();
    let p = Policy::new(Vec::new(), true, 100);
    let first = p
        .kept_decisions()
        .expect("built-in rules have no time window");
    let timed =
        rule("id = \"nights\"\naction = \"deny\"\nkinds = [\"insert\"]\nhours = \"22:00-06:00\"");
    p.create_rule(&store, timed, None, "root").await.unwrap();
    assert_eq!(
        p.kept_decisions(),
        None,
        "a decision under a time window depends on the clock"
    );
    p.delete_rule(&store, "nights", "root").await.unwrap();
    let after = p.kept_decisions().expect("no time window again");
    assert!(
        after > first,
        "every change moves the generation: {first} → {after}"
    );
    p.create_rule(
        &store,
        rule("id = \"no-insert\"\naction = \"deny\"\nkinds = [\"insert\"]"),
        None,
        "root",
    )
    .await
    .unwrap();
    let last = p.kept_decisions().expect("untimed");
    assert!(last > after);
    // Reloading the same version from the store (another replica's change) moves it too.
    p.reload(&store).await.unwrap();
    assert!(p.kept_decisions().expect("untimed") > last);
}

/// A reload that read the store before a save (here: version 1 read, version 2 saved) must
/// not put the older rules back in force when it installs last.
#[tokio::test]
async fn an_older_version_installed_late_does_not_replace_a_newer_one() {
    let store = Store::open_in_memory().unwrap();
    let p = Policy::new(Vec::new(), true, 100);
    p.load_blocking(&store).unwrap();
    let deny = rule("id = \"no-inserts\"\naction = \"deny\"\nkinds = [\"insert\"]");
    p.create_rule(&store, deny, None, "root").await.unwrap();
    let stale = store.latest_rules().await.unwrap().unwrap();
    let other = rule("id = \"no-locks\"\naction = \"deny\"\nkinds = [\"lock\"]");
    assert_eq!(
        p.create_rule(&store, other, None, "root")
            .await
            .unwrap()
            .version,
        2
    );
    p.install(
        stale.version,
        Policy::parse_stored(stale.version, &stale.rules_json).unwrap(),
    );
    assert_eq!(p.rules().version, 2);
    let alice = identity(IdentityKind::Human, &[]);
    let d = p.decide(&subject(&alice, Tier::Staging), "LOCK TABLE t");
    assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "no-locks"));
}
