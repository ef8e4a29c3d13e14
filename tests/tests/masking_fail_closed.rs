//! Masking that fails closed, judged on every byte the client receives: each test reads the
//! whole backend stream through a raw protocol client (rows, errors, notices, parameter
//! reports, COPY data) and fails if any seeded value of a fake person comes back as it is.
//! Over-masking checks sit beside each one: ids, amounts and ordinary words stay clear.

use gatehouse_tests::raw::{ext, Msg, RawConn};
use gatehouse_tests::{Fixture, ADMIN, ADMIN_PASSWORD, AGENT, ENV};

const ROWS: usize = 12;

struct Customer {
    id: usize,
    name: String,
    email: String,
    card: String,
    ssn: String,
}

fn customers() -> Vec<Customer> {
    const FIRST: [&str; 4] = ["Mirela", "Tobias", "Ingrid", "Kwame"];
    const LAST: [&str; 3] = ["Vasquez", "Lindqvist", "Adeyemi"];
    (1..=ROWS)
        .map(|i| Customer {
            id: i,
            name: format!("{} {}{i}", FIRST[i % 4], LAST[i % 3]),
            email: format!("person{i}.{}@example.net", LAST[i % 3].to_lowercase()),
            // Luhn-valid 16-digit numbers (4111 1111 1111 1111 with the last block varied).
            card: luhn_card(i),
            ssn: format!("{:03}-{:02}-{:04}", 200 + i, 30 + i, 4000 + i),
        })
        .collect()
}

fn luhn_card(i: usize) -> String {
    let body = format!("411111111111{:03}", 100 + i);
    let digits: Vec<u32> = body.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            if k % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    let s = format!("{body}{}", (10 - sum % 10) % 10);
    format!("{} {} {} {}", &s[0..4], &s[4..8], &s[8..12], &s[12..16])
}

/// The seeded values that must never come back, whole or in the pieces that identify a person.
fn secrets(cs: &[Customer]) -> Vec<String> {
    let mut v = Vec::new();
    for c in cs {
        v.extend([
            c.name.clone(),
            c.name.to_uppercase(),
            c.email.clone(),
            c.card.clone(),
            c.card.replace(' ', ""),
            c.ssn.clone(),
        ]);
        // The surname with its number is unique to the person.
        if let Some((_, last)) = c.name.split_once(' ') {
            v.push(last.to_string());
        }
    }
    v
}

/// `CREATE TABLE customers` and its rows: `display` holds full names under a column name that
/// says nothing (so only a catalog tag, here an admin's, can protect it).
fn create_customers(cs: &[Customer]) -> String {
    let mut sql = String::from(
        "CREATE TABLE customers (id int PRIMARY KEY, display text, email text, card_number text, \
         ssn text, amount numeric(10,2), status text);\n",
    );
    for c in cs {
        sql.push_str(&format!(
            "INSERT INTO customers VALUES ({}, '{}', '{}', '{}', '{}', {}.50, '{}');\n",
            c.id,
            c.name,
            c.email,
            c.card,
            c.ssn,
            c.id * 10,
            if c.id % 2 == 0 { "active" } else { "closed" }
        ));
    }
    sql
}

/// A staging fixture with the seeded customers, `display` commented as a full name (so the
/// catalog tags it by its comment), and the values that must never come back.
async fn seeded() -> (Fixture, Vec<String>) {
    let f = Fixture::start().await;
    let cs = customers();
    f.cluster
        .exec(
            "appdb",
            &format!(
                "SET ROLE app_owner;\n{}COMMENT ON COLUMN customers.display IS 'customer fullname';\nRESET ROLE;",
                create_customers(&cs)
            ),
        )
        .await;
    (f, secrets(&cs))
}

async fn raw_agent(f: &Fixture) -> RawConn {
    RawConn::login("127.0.0.1", f.gw.pg_port, AGENT, ENV, &f.token).await
}

/// Every message of one simple query, up to ReadyForQuery.
async fn query_all(c: &mut RawConn, sql: &str) -> Vec<Msg> {
    c.send(&ext::query(sql.as_bytes())).await;
    c.read_until_ready().await
}

/// Every byte of `msgs`, as text (lossy), for leak checks.
fn stream_text(msgs: &[Msg]) -> String {
    msgs.iter()
        .map(|m| format!("{}:{}", m.tag as char, String::from_utf8_lossy(&m.body)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_no_leak(what: &str, msgs: &[Msg], secrets: &[String]) {
    let text = stream_text(msgs);
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{what}: the seeded value {s:?} came back unmasked in:\n{text}"
        );
    }
}

/// The values of each DataRow (text format), NULL as None.
fn rows(msgs: &[Msg]) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter(|m| m.tag == b'D')
        .map(|m| {
            let b = &m.body;
            let n = u16::from_be_bytes([b[0], b[1]]) as usize;
            let mut pos = 2;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let len = i32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
                pos += 4;
                if len < 0 {
                    out.push(None);
                } else {
                    let l = len as usize;
                    out.push(Some(String::from_utf8_lossy(&b[pos..pos + l]).into_owned()));
                    pos += l;
                }
            }
            out
        })
        .collect()
}

fn error_of(msgs: &[Msg]) -> Option<String> {
    msgs.iter()
        .find(|m| m.tag == b'E')
        .and_then(|m| m.field(b'M'))
}

/// Runs `sql` until `ok` holds for its rows (the catalog re-read happens in the background),
/// for at most `secs` seconds; every attempt's stream is also checked for leaks.
async fn eventually(
    c: &mut RawConn,
    sql: &str,
    secs: u64,
    secrets: &[String],
    ok: impl Fn(&[Vec<Option<String>>]) -> bool,
) -> Vec<Vec<Option<String>>> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let msgs = query_all(c, sql).await;
        assert_no_leak(sql, &msgs, secrets);
        let r = rows(&msgs);
        if ok(&r) {
            return r;
        }
        assert!(
            std::time::Instant::now() < until,
            "{sql}: still {r:?} after {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Issue 18, item 5: after a schema change the catalog must never hold the old table's
/// identity while the new table's rows are served. Tables are dropped and created again
/// through the gateway (a migration) and directly upstream by a superuser (a fixture reload),
/// views are created, and columns are added; `SELECT *` must never return names in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_never_open_a_window() {
    let f = Fixture::start_with(|b| b.user(ADMIN, ADMIN_PASSWORD, &["admins"])).await;
    let cs = customers();
    let secrets = secrets(&cs);
    f.cluster
        .exec(
            "appdb",
            &format!("SET ROLE app_owner;\n{}RESET ROLE;", create_customers(&cs)),
        )
        .await;
    let mut c = raw_agent(&f).await;

    // An admin tags `display` (the catalog was read when the agent connected).
    let admin = f.gw.login(ADMIN, ADMIN_PASSWORD).await;
    let r = reqwest::Client::new()
        .put(format!(
            "{}/api/v1/environments/app/catalog/columns/public/customers/display",
            f.gw.http()
        ))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"category": "person_name"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let msgs = query_all(&mut c, "SELECT * FROM customers ORDER BY id").await;
    assert_no_leak("before any change", &msgs, &secrets);
    let before = rows(&msgs);
    assert_eq!(before.len(), ROWS);
    assert_eq!(before[0][0].as_deref(), Some("1"), "ids stay clear");
    assert_eq!(before[0][5].as_deref(), Some("10.50"), "amounts stay clear");

    // A view created through the gateway, read at once: its column names say nothing.
    let msgs = query_all(
        &mut c,
        "CREATE VIEW customer_labels AS SELECT id, display AS label, status FROM customers",
    )
    .await;
    assert_eq!(error_of(&msgs), None);
    for sql in [
        "SELECT * FROM customer_labels ORDER BY id",
        "SELECT label, upper(label) AS shout FROM customer_labels ORDER BY id",
        "SELECT l.* FROM customer_labels l ORDER BY id",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_eq!(rows(&msgs).len(), ROWS, "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
    }

    // Drop and create again through the gateway, in one transaction, and read inside it.
    let migration = format!(
        "BEGIN; DROP VIEW customer_labels; DROP TABLE customers;\n{}",
        create_customers(&cs)
    );
    let msgs = query_all(&mut c, &migration).await;
    assert_eq!(error_of(&msgs), None);
    for sql in [
        "SELECT * FROM customers ORDER BY id",
        "SELECT display, lower(display) FROM customers ORDER BY id",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(rows(&msgs).len(), ROWS, "{sql} in the migration");
        assert_no_leak(&format!("{sql} inside the migration"), &msgs, &secrets);
    }
    let msgs = query_all(&mut c, "COMMIT").await;
    assert_eq!(error_of(&msgs), None);
    let mut other = raw_agent(&f).await;
    for conn in [&mut c, &mut other] {
        let msgs = query_all(conn, "SELECT * FROM customers ORDER BY id").await;
        assert_eq!(rows(&msgs).len(), ROWS);
        assert_no_leak("after the migration", &msgs, &secrets);
    }

    // Directly upstream, as a superuser: the gateway sees nothing but a table it does not know.
    f.cluster
        .exec(
            "appdb",
            &format!(
                "SET ROLE app_owner; DROP TABLE customers;\n{}\
                 ALTER TABLE customers ADD COLUMN nickname text;\n\
                 COMMENT ON COLUMN customers.nickname IS 'customer fullname';\n\
                 UPDATE customers SET nickname = display;\nRESET ROLE;",
                create_customers(&cs)
            ),
        )
        .await;
    for sql in [
        "SELECT * FROM customers ORDER BY id",
        "SELECT id, display, nickname FROM customers ORDER BY id",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_eq!(rows(&msgs).len(), ROWS, "{sql}");
        assert_no_leak(&format!("{sql} after a change upstream"), &msgs, &secrets);
        // Ids and amounts are never touched, even while the table is unknown.
        let r = rows(&msgs);
        assert_eq!(r[1][0].as_deref(), Some("2"), "{sql}: {r:?}");
    }

    // Not a window the other way either: once the catalog has been read again, ordinary
    // columns of the new table come back clear, and the tagged one masked by its tag.
    let r = eventually(
        &mut c,
        "SELECT id, status, display, amount, nickname FROM customers ORDER BY id",
        10,
        &secrets,
        |r| r.len() == ROWS && r[0][1].as_deref() == Some("closed"),
    )
    .await;
    assert_eq!(r[0][3].as_deref(), Some("10.50"));
    let masked = r[0][2].clone().unwrap_or_default();
    assert!(
        masked.contains("***"),
        "display keeps its admin tag: {masked:?}"
    );

    // Ordinary tables made through the gateway read clear soon after, without a refresh call.
    let msgs = query_all(
        &mut c,
        "CREATE TABLE shipments (id int, carrier text, weight numeric); \
         INSERT INTO shipments VALUES (1, 'DHL', 2.5), (2, 'UPS', 1.25)",
    )
    .await;
    assert_eq!(error_of(&msgs), None);
    eventually(
        &mut c,
        "SELECT carrier, weight FROM shipments ORDER BY id",
        10,
        &secrets,
        |r| r.len() == 2 && r[0][0].as_deref() == Some("DHL") && r[1][1].as_deref() == Some("1.25"),
    )
    .await;
}

/// Issue 18, item 6: exemptions are checked at each statement, so an expired or deleted one
/// stops at once on connections already open, and a column exemption names one schema's
/// column only (`billing.customers.card_number` does not unmask `public.customers`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemptions_are_checked_at_each_statement_and_by_schema() {
    let helper_token = gatehouse_tests::random_token("gha_");
    let f = Fixture::start_with(|b| {
        b.user(ADMIN, ADMIN_PASSWORD, &["admins"])
            .service_account("helper", &helper_token, &["support"])
            .grant(&["support"], &[ENV])
    })
    .await;
    let cs = customers();
    let secrets = secrets(&cs);
    let billing: Vec<Customer> = customers()
        .into_iter()
        .map(|mut c| {
            c.card = luhn_card(c.id + 500);
            c
        })
        .collect();
    f.cluster
        .exec(
            "appdb",
            &format!(
                "SET ROLE app_owner;\n{}CREATE SCHEMA billing; SET search_path = billing;\n{}RESET ROLE;",
                create_customers(&cs),
                create_customers(&billing)
            ),
        )
        .await;
    let http = reqwest::Client::new();
    let base = f.gw.http();
    let admin = f.gw.login(ADMIN, ADMIN_PASSWORD).await;
    let exempt = |body: serde_json::Value| {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        async move {
            let r = http
                .post(format!("{base}/api/v1/exemptions"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
            r.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    exempt(serde_json::json!({"group": "support", "environment": ENV, "column": "billing.customers.card_number"})).await;
    // Emails for three seconds; national ids until deleted.
    exempt(serde_json::json!({"group": "support", "environment": ENV, "category": "email", "expires_in_seconds": 3})).await;
    let ssn_exemption = exempt(
        serde_json::json!({"group": "support", "environment": ENV, "category": "national_id"}),
    )
    .await;
    let mut c = RawConn::login("127.0.0.1", f.gw.pg_port, "helper", ENV, &helper_token).await;

    // The column exemption: billing's card numbers clear, public's masked.
    let msgs = query_all(
        &mut c,
        "SELECT card_number FROM billing.customers ORDER BY id",
    )
    .await;
    assert_eq!(
        rows(&msgs)[0][0].as_deref(),
        Some(billing[0].card.as_str()),
        "the exempt column reads clear"
    );
    let msgs = query_all(
        &mut c,
        "SELECT id, card_number FROM public.customers ORDER BY id",
    )
    .await;
    assert_eq!(rows(&msgs).len(), ROWS);
    assert_no_leak("public.customers.card_number", &msgs, &secrets);

    // The category exemptions work on this connection while they last.
    let msgs = query_all(
        &mut c,
        "SELECT email, ssn FROM public.customers ORDER BY id",
    )
    .await;
    let r = rows(&msgs);
    assert_eq!(r[0][0].as_deref(), Some(cs[0].email.as_str()));
    assert_eq!(r[0][1].as_deref(), Some(cs[0].ssn.as_str()));

    // Deleted: the next statement on the same connection is masked.
    let r = http
        .delete(format!("{base}/api/v1/exemptions/{ssn_exemption}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let msgs = query_all(&mut c, "SELECT ssn FROM public.customers ORDER BY id").await;
    assert_eq!(rows(&msgs).len(), ROWS);
    assert_no_leak("a deleted exemption", &msgs, &secrets);

    // Expired: the same.
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let msgs = query_all(&mut c, "SELECT email FROM public.customers ORDER BY id").await;
    assert_eq!(rows(&msgs).len(), ROWS);
    assert_no_leak("an expired exemption", &msgs, &secrets);
    // Also inside an error's detail.
    let msgs = query_all(
        &mut c,
        "INSERT INTO public.customers (id, email) SELECT 1000 + id, email FROM public.customers; \
         CREATE UNIQUE INDEX ON public.customers (email); INSERT INTO public.customers (id, email) SELECT 2000, email FROM public.customers WHERE id = 1",
    )
    .await;
    assert_no_leak("an error after expiry", &msgs, &secrets);
}

/// Every CopyData of one `COPY … TO STDOUT` (the stream up to ReadyForQuery).
async fn copy_out(c: &mut RawConn, sql: &str) -> Vec<Msg> {
    query_all(c, sql).await
}

/// Issue 18, COPY: the masking plan of a COPY holds all its options (a second COPY of the same
/// shape with another delimiter, quote or escape is masked too, and a delimiter inside a value
/// does not shift the columns); binary COPY is masked where it can be and refused only when a
/// column that needs masking cannot be masked in binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_is_masked_whatever_its_options() {
    let f = Fixture::start().await;
    let cs = customers();
    let mut secrets = secrets(&cs);
    secrets.extend([
        "Okafor, Ada".to_string(),
        "ada.okafor@example.net".to_string(),
    ]);
    f.cluster
        .exec(
            "appdb",
            &format!(
                "SET ROLE app_owner;\n{}\
                 INSERT INTO customers VALUES (99, 'Okafor, Ada', 'ada.okafor@example.net', '{}', '123-45-6789', 1.00, 'x;y|z\"w');\n\
                 COMMENT ON COLUMN customers.display IS 'customer fullname';\nRESET ROLE;",
                create_customers(&cs),
                luhn_card(99)
            ),
        )
        .await;
    secrets.push(luhn_card(99));
    let mut c = raw_agent(&f).await;
    for sql in [
        // One statement shape, two delimiters: the second must not reuse the first's plan.
        "COPY customers TO STDOUT (FORMAT csv, DELIMITER ',')",
        "COPY customers TO STDOUT (FORMAT csv, DELIMITER '|')",
        "COPY customers TO STDOUT",
        "COPY customers TO STDOUT (FORMAT csv)",
        "COPY customers TO STDOUT (FORMAT csv, DELIMITER ';')",
        "COPY customers TO STDOUT (FORMAT csv, DELIMITER '|', QUOTE '''')",
        "COPY customers TO STDOUT (FORMAT csv, QUOTE '\"', ESCAPE '\\', FORCE_QUOTE *)",
        "COPY customers TO STDOUT (DELIMITER ',')",
        "COPY customers TO STDOUT (DELIMITER '|', NULL 'none')",
        "COPY (SELECT id, display, email FROM customers) TO STDOUT (FORMAT csv, DELIMITER ',', HEADER)",
        "COPY (SELECT id, display, email FROM customers) TO STDOUT (FORMAT csv, DELIMITER ';', HEADER)",
        "COPY (SELECT email, display FROM customers) TO STDOUT WITH DELIMITER ','",
    ] {
        let msgs = copy_out(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        let data = msgs.iter().filter(|m| m.tag == b'd').count();
        assert!(data >= ROWS, "{sql}: {data} rows");
        assert_no_leak(sql, &msgs, &secrets);
        // Amounts and ordinary words stay as they are.
        let text = stream_text(&msgs);
        if sql.starts_with("COPY customers") {
            assert!(text.contains("120.50"), "{sql}: amounts kept:\n{text}");
            assert!(text.contains("closed"), "{sql}: statuses kept:\n{text}");
        }
    }

    // Binary COPY of values that hold nothing personal works.
    let msgs = copy_out(
        &mut c,
        "COPY (VALUES (1, 'hello')) TO STDOUT (FORMAT BINARY)",
    )
    .await;
    assert_eq!(error_of(&msgs), None);
    assert!(stream_text(&msgs).contains("hello"));
    let msgs = copy_out(
        &mut c,
        "COPY (SELECT id, amount, status FROM customers) TO STDOUT (FORMAT binary)",
    )
    .await;
    assert_eq!(error_of(&msgs), None);
    assert!(stream_text(&msgs).contains("closed"));
    // Personal text is masked in binary too; what cannot be masked there is refused.
    for sql in [
        "COPY (SELECT id, display, email, card_number FROM customers) TO STDOUT (FORMAT binary)",
        "COPY customers TO STDOUT (FORMAT binary)",
    ] {
        let msgs = copy_out(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert!(
            msgs.iter().filter(|m| m.tag == b'd').count() >= ROWS,
            "{sql}"
        );
        assert_no_leak(sql, &msgs, &secrets);
        // Masked in place: a table's own columns keep the mask's shape, a query's are whole.
        let text = stream_text(&msgs);
        assert!(
            text.contains("p***@example.net") || text.contains("***"),
            "{sql}: masked in place:\n{text}"
        );
    }
    // A table created a moment ago (through the gateway, or directly upstream) is read into
    // the catalog before its COPY runs: ids and amounts come back clear, names masked.
    let msgs = query_all(
        &mut c,
        "CREATE TABLE parcels AS SELECT id, display AS full_name, amount FROM customers",
    )
    .await;
    assert_eq!(error_of(&msgs), None);
    f.cluster
        .exec(
            "appdb",
            "SET ROLE app_owner; CREATE TABLE returns AS SELECT id, display AS sender, amount FROM customers; \
             COMMENT ON COLUMN returns.sender IS 'customer fullname'; RESET ROLE;",
        )
        .await;
    for sql in [
        "COPY parcels TO STDOUT",
        "COPY returns TO STDOUT (FORMAT csv)",
    ] {
        let msgs = copy_out(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
        let text = stream_text(&msgs);
        assert!(text.contains("120.50"), "{sql}: amounts clear:\n{text}");
    }
    // A temporary table never is: its COPY is refused with a reason, its SELECT masked.
    let msgs = query_all(
        &mut c,
        "CREATE TEMP TABLE scratch AS SELECT id, display FROM customers",
    )
    .await;
    assert_eq!(error_of(&msgs), None);
    let msgs = copy_out(&mut c, "COPY scratch TO STDOUT").await;
    assert_no_leak("COPY scratch", &msgs, &secrets);
    let refusal = msgs.iter().find(|m| m.tag == b'E').expect("refused");
    assert_eq!(refusal.field(b'C').as_deref(), Some("42501"));
    let msgs = query_all(&mut c, "SELECT id, display FROM scratch ORDER BY id").await;
    assert_no_leak("SELECT scratch", &msgs, &secrets);
    assert_eq!(rows(&msgs)[0][0].as_deref(), Some("1"));

    // An expression's binary form is unknown: it cannot carry a mask, so the COPY is refused.
    let sql = "COPY (SELECT upper(display), email || '' FROM customers) TO STDOUT (FORMAT binary)";
    let msgs = copy_out(&mut c, sql).await;
    assert_no_leak(sql, &msgs, &secrets);
    let refusal = msgs.iter().find(|m| m.tag == b'E').expect("refused");
    assert_eq!(refusal.field(b'C').as_deref(), Some("42501"));
}

/// Issue 18, item 4: a JSON value built from a sensitive column is masked whatever its key;
/// keys are trusted only where PostgreSQL wrote them from a table's own columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_built_from_personal_data_is_masked_whatever_its_keys() {
    let f = Fixture::start().await;
    let cs = customers();
    let mut secrets = secrets(&cs);
    secrets.extend(cs.iter().map(|c| c.ssn.replace('-', "")));
    f.cluster
        .exec(
            "appdb",
            &format!(
                "SET ROLE app_owner;\n{}COMMENT ON COLUMN customers.display IS 'customer fullname';\nRESET ROLE;",
                create_customers(&cs)
            ),
        )
        .await;
    let mut c = raw_agent(&f).await;
    for sql in [
        "SELECT json_build_object('id', display) FROM customers",
        "SELECT json_build_object('id', email, 'status', ssn, 'amount', card_number) FROM customers",
        "SELECT jsonb_build_object('status', display, 'id', id) FROM customers",
        "SELECT json_build_array(display, email) FROM customers",
        "SELECT json_object_agg('status', display) FROM customers",
        "SELECT json_build_object('n', replace(ssn, '-', '')::bigint) FROM customers",
        "SELECT row_to_json(x) FROM (SELECT display AS status, email AS id FROM customers) x",
        "WITH customers AS (SELECT display AS status FROM public.customers) SELECT to_jsonb(customers) FROM customers",
        "SELECT json_build_object('id', display)::text FROM customers",
        "SELECT to_jsonb(c) || jsonb_build_object('status', c.display) FROM customers c",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert!(!rows(&msgs).is_empty(), "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
        for r in rows(&msgs) {
            if let Some(v) = &r[0] {
                let parsed: Result<serde_json::Value, _> = serde_json::from_str(v);
                assert!(parsed.is_ok(), "{sql}: not JSON any more: {v}");
            }
        }
    }
    // A table's own row: its keys are its columns, so what is not personal stays.
    let msgs = query_all(
        &mut c,
        "SELECT row_to_json(c) FROM customers c ORDER BY id LIMIT 1",
    )
    .await;
    assert_no_leak("row_to_json(c)", &msgs, &secrets);
    let v: serde_json::Value =
        serde_json::from_str(rows(&msgs)[0][0].as_deref().unwrap_or("")).expect("JSON");
    assert_eq!(v["id"], 1);
    assert_eq!(v["status"], "closed");
    assert_eq!(v["amount"], 10.5);
}

/// Issue 18, item 7: a plain hash of a value from a small space (a national id, a card, a
/// phone, a date of birth) is reversed offline in seconds; it comes back as the gateway's
/// keyed hash instead (equal values still equal). Hashes of emails and names pass as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_of_low_entropy_values_are_keyed() {
    let f = Fixture::start().await;
    let cs = customers();
    let secrets = secrets(&cs);
    f.cluster
        .exec(
            "appdb",
            &format!("SET ROLE app_owner;\n{}RESET ROLE;", create_customers(&cs)),
        )
        .await;
    let direct = f.cluster.client("appdb").await;
    let mut c = raw_agent(&f).await;
    let low = [
        "SELECT md5(ssn) FROM customers ORDER BY id",
        "SELECT md5(replace(ssn, '-', '')) AS h FROM customers ORDER BY id",
        "SELECT sha256(card_number::bytea) FROM customers ORDER BY id",
        "SELECT encode(sha256(convert_to(card_number, 'UTF8')), 'hex') FROM customers ORDER BY id",
        "SELECT x FROM (SELECT md5(ssn) AS x FROM customers) s ORDER BY x",
        "WITH s AS (SELECT ssn AS v, id FROM customers) SELECT md5(v) FROM s ORDER BY id",
    ];
    for sql in low {
        let clear: Vec<String> = direct
            .simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect();
        assert_eq!(clear.len(), ROWS, "{sql}");
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        let mut hashes = secrets.clone();
        hashes.extend(clear.iter().cloned());
        assert_no_leak(sql, &msgs, &hashes);
        let got = rows(&msgs);
        assert_eq!(got.len(), ROWS, "{sql}");
        // Distinct values stay distinct (keyed, not blanked).
        let distinct: std::collections::BTreeSet<_> = got.iter().map(|r| r[0].clone()).collect();
        assert_eq!(distinct.len(), ROWS, "{sql}: {got:?}");
    }
    // In COPY too: the hash of a card never leaves clear, and what does is a valid bytea
    // (escaped hex, or NULL), so the rows load again.
    let copied = copy_out(
        &mut c,
        "COPY (SELECT id, sha256(card_number::bytea) FROM customers ORDER BY id) TO STDOUT",
    )
    .await;
    let clear: Vec<String> = direct
        .simple_query("SELECT encode(sha256(card_number::bytea), 'hex') FROM customers")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_no_leak("COPY of a hash", &copied, &clear);
    let lines: Vec<String> = copied
        .iter()
        .filter(|m| m.tag == b'd')
        .map(|m| String::from_utf8_lossy(&m.body).trim_end().to_string())
        .collect();
    assert_eq!(lines.len(), ROWS);
    for l in &lines {
        let value = l.split('\t').nth(1).expect("two columns");
        assert!(
            value == "\\N"
                || (value.starts_with("\\\\x")
                    && value[3..].chars().all(|ch| ch.is_ascii_hexdigit())),
            "not a bytea in COPY text: {l:?}"
        );
    }
    // A keyed hash is stable: the same value gives the same token on another connection.
    let mut other = raw_agent(&f).await;
    let a = rows(&query_all(&mut c, low[0]).await);
    let b = rows(&query_all(&mut other, low[0]).await);
    assert_eq!(a, b);
    // Emails and names are no small space: their hashes pass, as the database computed them.
    let sql = "SELECT md5(email), md5(display), count(DISTINCT ssn) FROM customers GROUP BY email, display ORDER BY 1";
    let clear: Vec<Vec<Option<String>>> = direct
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(rows(&query_all(&mut c, sql).await), clear);
}

/// The rows of a simple query run directly upstream (the clear values), NULL as None.
async fn direct_rows(c: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// Issue 18, items 1 and 2: a value that may derive from a sensitive column is masked whole,
/// whatever the functions in between (a short substring, a translation, a comparison), and
/// lineage follows `*` through CTEs and derived tables, prepared statements and temporary
/// tables. Each value is compared with what the database computes: none may come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_masks_cannot_be_rebuilt_and_lineage_never_guesses() {
    let (f, secrets) = seeded().await;
    let direct = f.cluster.client("appdb").await;
    let mut c = raw_agent(&f).await;
    let derived = [
        "SELECT left(ssn, 3), substr(card_number, 6, 4), right(email, 4), substr(display, 1, 2) FROM customers ORDER BY id",
        "SELECT translate(ssn, '0123456789', '!@#$%^&*()'), translate(display, 'aeiou', '.....') FROM customers ORDER BY id",
        "SELECT substr(ssn, 1, 1) = '2', ssn LIKE '20%', position('1' in card_number) FROM customers ORDER BY id",
        "SELECT split_part(email, '@', 2) || '@' || split_part(email, '@', 1) FROM customers ORDER BY id",
        "SELECT regexp_replace(display, '(.)', '\\1 ', 'g') FROM customers ORDER BY id",
        "SELECT * FROM (SELECT upper(display) AS x, lower(email) AS y FROM customers ORDER BY id) s",
        "WITH c AS (SELECT display || '' AS x, email AS y FROM customers ORDER BY id) SELECT * FROM c",
        "SELECT ascii(substr(ssn, 5, 1)), length(display) FROM customers ORDER BY id",
    ];
    for sql in derived {
        let clear = direct_rows(&direct, sql).await;
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
        let got = rows(&msgs);
        assert_eq!(got.len(), clear.len(), "{sql}");
        for (g, d) in got.iter().zip(&clear) {
            for (j, (gv, dv)) in g.iter().zip(d).enumerate() {
                if dv.is_some() {
                    assert_ne!(gv, dv, "{sql}: column {j} came back as computed");
                }
            }
        }
    }

    // PREPARE/EXECUTE, and a temporary table filled from customers.
    for (setup, sql) in [
        (
            "PREPARE p AS SELECT upper(display), email || '' FROM customers ORDER BY id",
            "EXECUTE p",
        ),
        (
            "CREATE TEMP TABLE t AS SELECT id, display AS x, email AS y FROM customers",
            "SELECT x, y, upper(x) FROM t ORDER BY id",
        ),
    ] {
        let msgs = query_all(&mut c, setup).await;
        assert_eq!(error_of(&msgs), None, "{setup}");
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_eq!(rows(&msgs).len(), ROWS, "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
    }

    // Over-masking: what reveals nothing stays as it is, also under the `SELECT * FROM (…)`
    // that reporting tools wrap every query in.
    for sql in [
        "SELECT id, amount, status, count(*) OVER (), count(email) OVER () FROM customers ORDER BY id",
        "SELECT * FROM (SELECT status, count(*) AS n, max(amount) AS top, count(DISTINCT email) AS people FROM customers GROUP BY status) s ORDER BY status",
        "WITH t AS (SELECT status, sum(amount) AS total FROM customers GROUP BY status) SELECT * FROM t ORDER BY status",
    ] {
        let clear = direct_rows(&direct, sql).await;
        assert_eq!(rows(&query_all(&mut c, sql).await), clear, "{sql}");
    }
}

/// Issue 18, items 8 and 9: a table of random values of the kind drivers' own test suites
/// generate — nothing personal by name or tag — comes back as the database has it, or, where
/// value detection fires, as a valid value of the column's type (NULL for types that cannot
/// carry a mask): timestamps, big integers and numbers untouched, JSON still parses, bytea
/// still hex. Checked in text (simple protocol) and through COPY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_values_stay_valid_for_their_types() {
    let f = Fixture::start().await;
    let mut sql = String::from(
        "SET ROLE app_owner; CREATE TABLE randoms (id bigint, ts timestamptz, big bigint, net cidr, addr inet, \
         doc jsonb, js json, num numeric, blob bytea, words text[]);\n",
    );
    for i in 0..20u64 {
        // A 16-digit bigint that passes Luhn, a timestamp, a cidr and an inet, JSON with a
        // Luhn-valid number, a bytea whose hex has long digit runs.
        let luhn = luhn_card(i as usize).replace(' ', "");
        sql.push_str(&format!(
            "INSERT INTO randoms VALUES ({i}, '2024-05-0{d} 10:27:57+00', {luhn}, '188.100.2{i:02}.0/26', '10.100.200.{i}', \
             '{{\"n\": {luhn}, \"at\": \"2024-05-01\"}}', '[{luhn}, \"x\"]', {luhn}.25, '\\xab{luhn}cd', ARRAY['a{i}', 'b']);\n",
            d = 1 + i % 9
        ));
    }
    sql.push_str("RESET ROLE;");
    // Connected first: the table is new to the catalog (value detection alone, then the
    // catalog's sampled tags, are judged in turn).
    let mut c = raw_agent(&f).await;
    f.cluster.exec("appdb", &sql).await;
    let direct = f.cluster.client("appdb").await;
    let q = "SELECT id, ts, big, net, addr, doc, js, num, blob, words FROM randoms ORDER BY id";
    for pass in 0..2 {
        let clear = direct_rows(&direct, q).await;
        let msgs = query_all(&mut c, q).await;
        assert_eq!(error_of(&msgs), None);
        let got = rows(&msgs);
        assert_eq!(got.len(), clear.len());
        for (g, d) in got.iter().zip(&clear) {
            for (j, name) in ["id", "ts", "big", "num"].iter().enumerate() {
                let k = [0, 1, 2, 7][j];
                assert_eq!(g[k], d[k], "{name} must come back as it is");
            }
            // Text of a table the catalog has not read yet is masked whole; once read, the
            // words (nothing personal) come back as they are.
            if pass == 1 {
                assert_eq!(g[9], d[9], "words, once the catalog is read");
            }
            for k in [3, 4] {
                assert!(
                    g[k].is_none() || g[k] == d[k],
                    "inet/cidr valid or NULL: {:?}",
                    g[k]
                );
            }
            for k in [5, 6] {
                let v = g[k].as_deref().unwrap_or("null");
                assert!(
                    serde_json::from_str::<serde_json::Value>(v).is_ok(),
                    "JSON still parses: {v}"
                );
            }
            let blob = g[8].as_deref().unwrap_or("\\x");
            assert!(
                blob.starts_with("\\x") && blob[2..].bytes().all(|b| b.is_ascii_hexdigit()),
                "bytea still hex: {blob}"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    // COPY out and back in through the gateway loads.
    let msgs = copy_out(&mut c, "COPY randoms TO STDOUT").await;
    assert_eq!(error_of(&msgs), None);
    let data: Vec<u8> = msgs
        .iter()
        .filter(|m| m.tag == b'd')
        .flat_map(|m| m.body.clone())
        .collect();
    let text = String::from_utf8_lossy(&data);
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 10, "{line}");
        assert!(!fields[2].contains('*'), "bigint untouched: {line}");
        assert!(!fields[1].contains('*'), "timestamp untouched: {line}");
        assert!(!fields[8].contains('*'), "bytea untouched or NULL: {line}");
        assert!(!fields[3].contains('*'), "cidr untouched or NULL: {line}");
        assert!(!fields[4].contains('*'), "inet untouched or NULL: {line}");
        for k in [5, 6] {
            assert!(
                fields[k] == "\\N" || serde_json::from_str::<serde_json::Value>(fields[k]).is_ok(),
                "JSON still parses: {line}"
            );
        }
    }
}

/// Issue 18, side channels: a custom setting filled from personal data and read back
/// (`current_setting`, `SHOW`) is of unknown origin, so it is masked whole; the settings
/// drivers read (`server_version`, `search_path`…) stay as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_settings_read_back_are_masked() {
    let (f, secrets) = seeded().await;
    let mut c = raw_agent(&f).await;
    let msgs = query_all(
        &mut c,
        "SELECT set_config('my.who', (SELECT string_agg(display, ',') FROM customers), false)",
    )
    .await;
    assert_eq!(error_of(&msgs), None);
    assert_no_leak("set_config", &msgs, &secrets);
    for sql in [
        "SELECT current_setting('my.who')",
        "SELECT upper(current_setting('my.who', true)) AS x",
        "SHOW my.who",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_eq!(rows(&msgs).len(), 1, "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
    }
    // A reported parameter set from row data: its ParameterStatus is masked whole.
    let msgs = query_all(
        &mut c,
        "SELECT set_config('application_name', (SELECT display FROM customers ORDER BY id LIMIT 1), false)",
    )
    .await;
    assert_eq!(error_of(&msgs), None);
    assert!(msgs.iter().any(|m| m.tag == b'S'), "the change is reported");
    assert_no_leak("ParameterStatus", &msgs, &secrets);
    let msgs = query_all(&mut c, "SET application_name = 'report-runner'").await;
    let reported = msgs
        .iter()
        .find(|m| m.tag == b'S')
        .map(|m| String::from_utf8_lossy(&m.body).into_owned());
    assert!(
        reported
            .as_deref()
            .is_some_and(|r| r.contains("report-runner")),
        "a literal is reported as it is: {reported:?}"
    );
    for (sql, expected) in [
        ("SHOW search_path", "\"$user\", public"),
        ("SELECT current_setting('DateStyle')", "ISO, MDY"),
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(rows(&msgs)[0][0].as_deref(), Some(expected), "{sql}");
    }
}

/// Issue 18, item 2: a relation filled through the gateway from tagged columns (`CREATE TABLE
/// … AS`, `INSERT INTO … SELECT`, also by way of a temporary table) keeps their tags, whatever
/// its columns are called; its ids stay clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_filled_from_personal_data_stay_personal() {
    let f = Fixture::start().await;
    let cs = customers();
    let secrets = secrets(&cs);
    f.cluster
        .exec(
            "appdb",
            &format!(
                "SET ROLE app_owner;\n{}COMMENT ON COLUMN customers.display IS 'customer fullname';\n\
                 CREATE TABLE notes_tbl (id int, body text);\nRESET ROLE;",
                create_customers(&cs)
            ),
        )
        .await;
    let mut c = raw_agent(&f).await;
    for setup in [
        "CREATE TABLE archive AS SELECT id, display AS label, email AS contact_note FROM customers",
        "INSERT INTO notes_tbl SELECT id, display FROM customers",
        "CREATE TEMP TABLE tt AS SELECT id, display AS x FROM customers",
        "CREATE TABLE from_temp AS SELECT id, x AS y FROM tt",
        "SELECT id, display AS z INTO into_tbl FROM customers",
    ] {
        let msgs = query_all(&mut c, setup).await;
        assert_eq!(error_of(&msgs), None, "{setup}");
    }
    for sql in [
        "SELECT * FROM archive ORDER BY id",
        "SELECT id, body FROM notes_tbl ORDER BY id",
        "SELECT * FROM from_temp ORDER BY id",
        "SELECT * FROM into_tbl ORDER BY id",
    ] {
        // At once (the new relations are not in the catalog yet) and once it has been read.
        let r = eventually(&mut c, sql, 10, &secrets, |r| {
            r.len() == ROWS && r[0][0].as_deref() == Some("1")
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let again = rows(&query_all(&mut c, sql).await);
        assert_eq!(again.len(), r.len());
        let msgs = query_all(&mut c, sql).await;
        assert_no_leak(&format!("{sql}, after the catalog read"), &msgs, &secrets);
        assert_eq!(
            rows(&msgs)[0][0].as_deref(),
            Some("1"),
            "{sql}: ids stay clear"
        );
    }
}

/// Issue 18, lineage: functions that read a table or run SQL text given as a string
/// (`table_to_xml('customers', …)`, `query_to_xml('SELECT …')`) and large objects read back
/// (`lo_get`) return values of unknown origin: masked whole, whatever the query around them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_read_by_name_and_large_objects_are_of_unknown_origin() {
    let (f, secrets) = seeded().await;
    let mut c = raw_agent(&f).await;
    for sql in [
        "SELECT table_to_xml('customers', true, false, '')",
        "SELECT table_to_xml('public.customers'::regclass, false, true, '')::text AS x",
        "SELECT query_to_xml('SELECT display, ssn FROM customers', true, false, '')",
        "SELECT database_to_xml(true, false, '')",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
    }
    // A large object written from customers in one statement and read back in another.
    let msgs = query_all(
        &mut c,
        "SELECT lo_from_bytea(4242, convert_to((SELECT string_agg(display || ' ' || ssn, ',') FROM customers), 'UTF8'))",
    )
    .await;
    assert_eq!(error_of(&msgs), None);
    for sql in [
        "SELECT convert_from(lo_get(4242), 'UTF8')",
        "SELECT encode(lo_get(4242), 'base64') AS b",
        "SELECT lo_get(4242, 0, 100000)",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_eq!(rows(&msgs).len(), 1, "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
    }
    // The planner's statistics hold sampled values of every column.
    f.cluster.exec("appdb", "ANALYZE customers").await;
    for sql in [
        "SELECT attname, most_common_vals, histogram_bounds FROM pg_stats WHERE tablename = 'customers'",
        "SELECT histogram_bounds::text AS h FROM pg_catalog.pg_stats WHERE tablename = 'customers'",
        "SELECT unnest(histogram_bounds::text::text[]) FROM pg_stats WHERE tablename = 'customers'",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert!(!rows(&msgs).is_empty(), "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
    }
    // What other sessions run, literals included: a name typed into someone else's statement.
    let mut busy = raw_agent(&f).await;
    busy.send(&ext::query(
        format!("SELECT pg_sleep(2), '{}' AS who", secrets[0]).as_bytes(),
    ))
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for sql in [
        "SELECT pid, query FROM pg_stat_activity WHERE query LIKE '%pg_sleep(2)%' AND pid <> pg_backend_pid()",
        "SELECT upper(query) AS q FROM pg_stat_activity WHERE query LIKE '%pg_sleep(2)%' AND pid <> pg_backend_pid()",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_eq!(rows(&msgs).len(), 1, "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
    }
    let msgs = query_all(
        &mut c,
        "SELECT query FROM pg_stat_activity WHERE query LIKE '%pg_sleep(2)%' AND pid <> pg_backend_pid()",
    )
    .await;
    assert_eq!(
        rows(&msgs)[0][0].as_deref(),
        Some("SELECT pg_sleep(2), '***' AS who"),
        "the statement's shape stays for whoever watches what runs"
    );
    busy.read_until_ready().await;
    // Bytes of unknown origin: a name in hex is still a name.
    let hex_secrets: Vec<String> = secrets.iter().map(hex::encode).collect();
    let msgs = query_all(
        &mut c,
        "CREATE TEMP TABLE roster AS SELECT display, ssn FROM customers",
    )
    .await;
    assert_eq!(error_of(&msgs), None);
    for sql in [
        "SELECT lo_get(4242)",
        "SELECT convert_to(display, 'UTF8') FROM roster",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_no_leak(sql, &msgs, &hex_secrets);
    }
    // A whole row of a temporary table filled from customers.
    for sql in [
        "SELECT r FROM roster r",
        "SELECT row(r.*)::text FROM roster r",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
    }
    // The large-object API (PgJDBC's) reads the object written from customers: masked whole.
    assert_eq!(error_of(&query_all(&mut c, "BEGIN").await), None);
    c.send(&ext::function_call(
        952, // lo_open
        &[&4242u32.to_be_bytes(), &0x40000i32.to_be_bytes()],
    ))
    .await;
    let reply = c.read_until_ready().await;
    let fd = reply
        .iter()
        .find(|m| m.tag == b'V')
        .map(|v| v.body[4..8].to_vec())
        .expect("lo_open result");
    c.send(&ext::function_call(954, &[&fd, &100_000i32.to_be_bytes()])) // loread
        .await;
    let reply = c.read_until_ready().await;
    let v = reply.iter().find(|m| m.tag == b'V').expect("loread result");
    assert_eq!(&v.body[4..], b"***");
    assert_eq!(error_of(&query_all(&mut c, "COMMIT").await), None);
    // What reads no table stays clear.
    let msgs = query_all(
        &mut c,
        "SELECT query_to_xml('SELECT 1 AS one', true, false, '') IS NOT NULL, 7 AS n",
    )
    .await;
    assert_eq!(rows(&msgs)[0][1].as_deref(), Some("7"));
}

/// Issue 18, lineage: the text is read as PostgreSQL's scanner reads it. A bare carriage
/// return ends a `--` comment there, so what follows it is part of the statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_ends_where_postgresql_ends_it() {
    let (f, secrets) = seeded().await;
    let mut c = raw_agent(&f).await;
    for sql in [
        // Expressions: the RowDescription names no column, so only the lineage can tell.
        "SELECT 1 AS one --x\r, upper(display) AS note FROM customers",
        "SELECT 1 AS one /* a */ --x\r, ssn || '' AS note FROM customers",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql:?}");
        assert_eq!(rows(&msgs).len(), ROWS, "{sql:?}");
        assert_no_leak(sql, &msgs, &secrets);
    }
}

/// Issue 18, lineage: a function of the database's own returns whatever it reads, under any
/// name — a new one, one qualified with `pg_temp`, or a built-in's (`count(text)` is picked
/// over `count("any")` for a text argument). Its results are of unknown origin; PostgreSQL's
/// own functions keep their meaning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_of_the_database_are_not_taken_at_their_word() {
    let (f, secrets) = seeded().await;
    f.cluster
        .exec(
            "appdb",
            "SET ROLE app_owner;\n\
             CREATE FUNCTION public.count(text) RETURNS text AS 'SELECT $1' LANGUAGE sql;\n\
             CREATE FUNCTION public.roster() RETURNS text AS \
             $$SELECT string_agg(display || ' ' || ssn, ',') FROM customers$$ LANGUAGE sql;\n\
             CREATE VIEW public.roster_view AS SELECT 1 AS id, roster() AS names;\n\
             RESET ROLE;",
        )
        .await;
    let mut c = raw_agent(&f).await;
    for sql in [
        "SELECT count(display) FROM customers",
        "SELECT roster()",
        "SELECT r FROM (SELECT roster() AS r) s",
        "SELECT * FROM roster_view",
        // Created through the gateway, in this session: no catalog read has seen them yet.
        "CREATE FUNCTION pg_temp.lower(text) RETURNS text AS 'SELECT $1' LANGUAGE sql",
        "SELECT pg_temp.lower(display) FROM customers",
        "CREATE FUNCTION pg_temp.rows() RETURNS text AS \
         $$SELECT string_agg(display, ',') FROM customers$$ LANGUAGE sql",
        "SELECT pg_temp.rows()",
        "BEGIN",
        "CREATE FUNCTION public.num_nulls(text) RETURNS text AS 'SELECT $1' LANGUAGE sql",
        "SELECT num_nulls(display) FROM customers",
        "ROLLBACK",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_eq!(error_of(&msgs), None, "{sql}");
        assert_no_leak(sql, &msgs, &secrets);
    }
    // PostgreSQL's own functions keep their meaning: counts and untagged text stay clear.
    let msgs = query_all(
        &mut c,
        "SELECT pg_catalog.count(display) AS n, upper(status) AS s FROM customers GROUP BY 2 ORDER BY 2",
    )
    .await;
    assert_eq!(
        rows(&msgs),
        vec![
            vec![Some("6".into()), Some("ACTIVE".into())],
            vec![Some("6".into()), Some("CLOSED".into())]
        ]
    );
}

/// Issue 18, side channels: what PostgreSQL quotes in an error, what code raises, and what a
/// notification carries may be row data. Judged on every byte; ordinary messages stay useful.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_notices_and_notifications_carry_no_personal_data() {
    let (f, secrets) = seeded().await;
    f.cluster
        .exec(
            "appdb",
            "SET ROLE app_owner;\n\
             CREATE TABLE events (id int, note text);\n\
             CREATE FUNCTION public.events_trg() RETURNS trigger AS $$BEGIN \
             RAISE NOTICE 'saw %', (SELECT string_agg(display, ',') FROM customers); \
             RETURN NEW; END$$ LANGUAGE plpgsql;\n\
             CREATE TRIGGER events_t BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_trg();\n\
             CREATE FUNCTION public.events_ntf() RETURNS trigger AS $$BEGIN \
             PERFORM pg_notify('ch', (SELECT string_agg(ssn, ',') FROM customers)); \
             RETURN NEW; END$$ LANGUAGE plpgsql;\n\
             CREATE TRIGGER events_n AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_ntf();\n\
             RESET ROLE;",
        )
        .await;
    let mut c = raw_agent(&f).await;
    let mut listener = raw_agent(&f).await;
    assert_eq!(error_of(&query_all(&mut listener, "LISTEN ch").await), None);
    assert_eq!(error_of(&query_all(&mut c, "LISTEN ch").await), None);
    for sql in [
        // Values PostgreSQL quotes when it cannot use them.
        "SELECT string_agg(display, '|')::int FROM customers",
        "SELECT (SELECT display FROM customers WHERE id = 1)::regclass",
        "SELECT current_setting((SELECT display FROM customers WHERE id = 2))",
        "SELECT to_date(display, 'YYYY') FROM customers",
        // What code raises: a DO block reading customers, its dynamic SQL, a trigger.
        "DO $$ BEGIN RAISE NOTICE '%', (SELECT string_agg(display, ',') FROM customers); END $$",
        "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '42P01', MESSAGE = (SELECT string_agg(ssn, ',') FROM customers); END $$",
        "DO $$ BEGIN EXECUTE 'SELECT ' || quote_literal((SELECT display FROM customers WHERE id = 3)) || '::int'; END $$",
        // Notifications, to this session and to another.
        "SELECT pg_notify('ch', (SELECT string_agg(display, ',') FROM customers))",
        "SELECT pg_notify('ch', (SELECT json_build_object('id', 1, 'who', display)::text FROM customers WHERE id = 4))",
    ] {
        let msgs = query_all(&mut c, sql).await;
        assert_no_leak(sql, &msgs, &secrets);
    }
    // A write from a session that read nothing: its table's triggers raise and notify.
    let mut writer = raw_agent(&f).await;
    let msgs = query_all(&mut writer, "INSERT INTO events VALUES (1, 'x')").await;
    assert_eq!(error_of(&msgs), None);
    assert_no_leak("a trigger's notice", &msgs, &secrets);
    let heard = listener
        .read_within(std::time::Duration::from_secs(2))
        .await;
    let mut got = Vec::new();
    if let Some(m) = heard {
        got.push(m);
    }
    while let Some(m) = listener
        .read_within(std::time::Duration::from_millis(300))
        .await
    {
        got.push(m);
    }
    assert!(
        got.iter().filter(|m| m.tag == b'A').count() >= 3,
        "the listener heard both notifications: {got:?}"
    );
    assert_no_leak("notifications to another session", &got, &secrets);
    // Messages that say nothing of anyone stay as they are.
    let msgs = query_all(&mut c, "SELECT 'abc'::int").await;
    assert_eq!(
        error_of(&msgs).as_deref(),
        Some("invalid input syntax for type integer: \"abc\"")
    );
    let msgs = query_all(&mut c, "SELECT * FROM no_such_table").await;
    assert_eq!(
        error_of(&msgs).as_deref(),
        Some("relation \"no_such_table\" does not exist")
    );
    let msgs = query_all(&mut c, "DO $$ BEGIN RAISE NOTICE 'rows: %', 3; END $$").await;
    let notice = msgs
        .iter()
        .find(|m| m.tag == b'N')
        .and_then(|m| m.field(b'M'));
    assert_eq!(notice.as_deref(), Some("rows: 3"));
    // A session whose statements read nothing personal notifies in clear; one that does not
    // go through the gateway is an unknown sender.
    let mut clean = raw_agent(&f).await;
    assert_eq!(
        error_of(&query_all(&mut clean, "NOTIFY ch, 'cache refreshed'").await),
        None
    );
    f.cluster.exec("appdb", "NOTIFY ch, 'from outside'").await;
    let mut heard = Vec::new();
    while let Some(m) = listener
        .read_within(std::time::Duration::from_millis(500))
        .await
    {
        heard.push(String::from_utf8_lossy(&m.body).into_owned());
    }
    assert!(
        heard.iter().any(|b| b.ends_with("ch\0cache refreshed\0")),
        "{heard:?}"
    );
    assert!(heard.iter().any(|b| b.ends_with("ch\0***\0")), "{heard:?}");
    assert!(
        !heard.iter().any(|b| b.contains("from outside")),
        "{heard:?}"
    );
    let msgs = query_all(&mut c, "SELECT pg_notify('ch', '{\"id\": 42}')").await;
    let notes: Vec<String> = msgs
        .iter()
        .filter(|m| m.tag == b'A')
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("{\"id\": 42}") || n.contains("{\"id\":42}")),
        "ids in a notification stay: {notes:?}"
    );
}

/// Issue 18, item 8: what value detection masks in a column no tag marks is reported in the
/// statement's audit record (column and category), and a result it left alone reports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_detection_masks_is_in_the_audit_record() {
    let f = Fixture::start_with(|b| b.user(ADMIN, ADMIN_PASSWORD, &["admins"])).await;
    let mut c = raw_agent(&f).await;
    let msgs = query_all(
        &mut c,
        "SELECT 'write to zed.example@example.org' AS note, 7 AS n, 'plain words' AS other",
    )
    .await;
    assert!(!stream_text(&msgs).contains("zed.example@example.org"));
    let msgs = query_all(&mut c, "SELECT 'nothing here' AS note").await;
    assert_eq!(rows(&msgs), vec![vec![Some("nothing here".into())]]);
    let find = |items: &[serde_json::Value], q: &str| {
        items
            .iter()
            .find(|r| r["statement"].as_str().is_some_and(|s| s.contains(q)))
            .cloned()
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (masked, clear) = loop {
        let items = f.agent_statements(None).await;
        if let (Some(a), Some(b)) = (find(&items, "AS other"), find(&items, "nothing here")) {
            break (a, b);
        }
        assert!(
            std::time::Instant::now() < until,
            "records missing: {items:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        masked["details"]["masked_by_detection"],
        serde_json::json!({ "note": ["email"] }),
        "{masked}"
    );
    assert!(clear["details"]["masked_by_detection"].is_null(), "{clear}");
}
