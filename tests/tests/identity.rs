//! Identity administration over the API against a running gateway: grants that take effect for
//! new connections at once, a deleted grant ending the open connections it alone let in (or
//! whose upstream role it chose), service-account rotation, refresh tokens, local-user lockout,
//! admin endpoints closed to non-admins, the OpenAPI document naming every new endpoint; grants
//! that expire (their connections end, the gateway audits it) and connections that end with
//! the session they were opened with.

use gatehouse_tests::{
    app_database, ended_with, random_token, sqlstate, two_environments, Api, Fixture, ADMIN,
    ADMIN_PASSWORD, AGENT, ENV, OTHER_ENV,
};
use reqwest::Method;
use serde_json::{json, Value};

async fn login(http: &reqwest::Client, base: &str, user: &str, pw: &str) -> reqwest::Response {
    http.post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_service_accounts_refresh_and_lockout() {
    let f = Fixture::start_with(|b| {
        b.user("root", "root-pw", &["admins"])
            .user("dana", "dana-pw", &["analysts"])
            .server("login_max_failures = 3\nlogin_lockout_seconds = 60")
    })
    .await;
    let http = reqwest::Client::new();
    let base = f.gw.http();
    let api = Api::new(&base);
    let admin: Value = login(&http, &base, "root", "root-pw")
        .await
        .json()
        .await
        .unwrap();
    let admin = admin["token"].as_str().unwrap().to_string();
    let dana: Value = login(&http, &base, "dana", "dana-pw")
        .await
        .json()
        .await
        .unwrap();
    let dana_token = dana["token"].as_str().unwrap().to_string();

    // Non-admins are turned away from every admin endpoint.
    for path in [
        "/api/v1/sessions",
        "/api/v1/grants",
        "/api/v1/service-accounts",
    ] {
        assert_eq!(api.get(path, &dana_token).await.0, 403, "{path}");
    }

    // No grant yet: dana cannot connect. An API grant lets her in at once; removing it shuts
    // the door again for new connections.
    let e =
        f.gw.connect(ENV, "dana", &dana_token)
            .await
            .expect_err("refused");
    assert_eq!(sqlstate(&e), "28000");
    let (status, _) = api
        .post(
            "/api/v1/grants",
            &admin,
            json!({"groups": ["analysts"], "environments": ["nope"]}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, grant) = api
        .post(
            "/api/v1/grants",
            &admin,
            json!({"groups": ["analysts"], "environments": [ENV], "upstream_role": "app_readonly"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(grant["created_by"], "root");
    let (_, list) = api.get("/api/v1/grants", &admin).await;
    let sources: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["config", "api"]);
    // The API grant's role is the one the connection runs as.
    f.cluster
        .exec(
            "appdb",
            "CREATE ROLE app_readonly NOLOGIN; GRANT app_readonly TO app_owner",
        )
        .await;
    let granted =
        f.gw.connect(ENV, "dana", &dana_token)
            .await
            .expect("granted");
    let role: String = granted
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "app_readonly");
    let grant_path = format!("/api/v1/grants/{}", grant["id"].as_str().unwrap());
    assert_eq!(api.delete(&grant_path, &admin).await.0, 204);
    assert!(f.gw.connect(ENV, "dana", &dana_token).await.is_err());
    // Config grants are not the API's to delete.
    assert_eq!(api.delete("/api/v1/grants/config:0", &admin).await.0, 404);

    // Service accounts: rotation ends the old token; expiry in the past is refused.
    let accounts = "/api/v1/service-accounts";
    let (status, created) = api
        .post(
            accounts,
            &admin,
            json!({"name": "ci", "kind": "human", "groups": ["agents"]}),
        )
        .await;
    assert_eq!(status, 201);
    let (id, old) = (
        created["service_account"]["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    assert_eq!(created["service_account"]["kind"], "human");
    let (status, _) = api
        .post(accounts, &admin, json!({"name": "ci", "groups": []}))
        .await;
    assert_eq!(status, 409);
    let (status, _) = api
        .post(
            accounts,
            &admin,
            json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 400);
    let c =
        f.gw.connect(ENV, "ci", old)
            .await
            .expect("service account connects");
    let rotate = format!("{accounts}/{id}/rotate");
    let (status, rotated) = api.send(Method::POST, &rotate, Some(&admin), None).await;
    assert_eq!(status, 200);
    let new = rotated["token"].as_str().unwrap();
    assert!(
        c.simple_query("SELECT 1").await.is_err(),
        "rotation closes the old token's connections"
    );
    assert!(f.gw.connect(ENV, "ci", old).await.is_err());
    f.gw.connect(ENV, "ci", new)
        .await
        .expect("the new token connects");

    // Refresh: a new pair for the same session; the old refresh token is spent.
    let refresh = dana["refresh_token"].as_str().unwrap();
    let refresh_body = json!({"refresh_token": refresh});
    let (status, renewed) = api
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(refresh_body.clone()),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(refresh_body),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        api.get("/api/v1/whoami", &dana_token).await.0,
        401,
        "the old access token stops working"
    );
    let renewed_token = renewed["token"].as_str().unwrap();
    assert_eq!(api.get("/api/v1/whoami", renewed_token).await.0, 200);

    // Lockout: after three failures even the right password is refused, with Retry-After.
    for _ in 0..2 {
        assert_eq!(login(&http, &base, "dana", "wrong").await.status(), 401);
    }
    assert_eq!(login(&http, &base, "dana", "wrong").await.status(), 429);
    let r = login(&http, &base, "dana", "dana-pw").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(login(&http, &base, "root", "root-pw").await.status(), 200);

    // Every new endpoint is in the OpenAPI document.
    let (_, doc) = api.get_anonymous("/api/v1/openapi.json").await;
    for path in [
        "/auth/oidc/start",
        "/auth/oidc/callback",
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/sessions",
        "/api/v1/sessions/{id}",
        "/api/v1/grants",
        "/api/v1/grants/{id}",
        "/api/v1/service-accounts",
        "/api/v1/service-accounts/{id}",
        "/api/v1/service-accounts/{id}/rotate",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_grant_ends_the_connections_that_lost_access() {
    let (cluster, upstream_password) = app_database().await;
    cluster
        .exec(
            "appdb",
            "CREATE ROLE app_readonly NOLOGIN; GRANT app_readonly TO app_owner",
        )
        .await;
    let agent_token = random_token("gha_");
    let gw = two_environments(&cluster, &upstream_password, &agent_token)
        .user("erin", "erin-pw", &["auditors"])
        .user("fred", "fred-pw", &["auditors", "finance"])
        .user("gina", "gina-pw", &["writers", "readers"])
        .user("olga", "olga-pw", &["auditors", "others"])
        .start()
        .await;
    let api = Api::new(gw.http());
    let root = gw.login("root", "root-pw").await;
    let mut grant_ids = Vec::new();
    // API grants, oldest first: the first that matches picks the upstream role.
    for body in [
        json!({"groups": ["auditors"], "environments": [ENV]}),
        json!({"groups": ["finance"], "environments": [ENV]}),
        json!({"groups": ["writers"], "environments": [ENV]}),
        json!({"groups": ["readers"], "environments": [ENV], "upstream_role": "app_readonly"}),
    ] {
        let (status, g) = api.post("/api/v1/grants", &root, body).await;
        assert_eq!(status, 201, "{g}");
        grant_ids.push(format!("/api/v1/grants/{}", g["id"].as_str().unwrap()));
    }
    let erin = gw.login("erin", "erin-pw").await;
    let fred = gw.login("fred", "fred-pw").await;
    let gina = gw.login("gina", "gina-pw").await;
    let olga = gw.login("olga", "olga-pw").await;
    let (erin_c, erin_end) = gw.connect_watched(ENV, "erin", &erin).await;
    let (fred_c, fred_end) = gw.connect_watched(ENV, "fred", &fred).await;
    let (gina_c, gina_end) = gw.connect_watched(ENV, "gina", &gina).await;
    let (olga_c, olga_end) = gw.connect_watched(OTHER_ENV, "olga", &olga).await;
    let (agent_c, agent_end) = gw.connect_watched(ENV, AGENT, &agent_token).await;
    for c in [&erin_c, &fred_c, &gina_c, &olga_c, &agent_c] {
        c.simple_query("SELECT 1").await.expect("connected");
    }

    // Deleting the auditors' grant ends erin's connection: nothing else lets her in. fred
    // keeps his through the finance grant; olga's auditors membership never concerned her
    // connection to another environment; gina and the agent are other grants' business.
    assert_eq!(api.delete(&grant_ids[0], &root).await.0, 204);
    let (code, m) = ended_with(erin_end).await;
    assert_eq!(code, "57P01", "{m}");
    assert_eq!(
        m,
        "access to environment \"app\" was revoked by administrator \"root\""
    );
    assert!(
        erin_c.simple_query("SELECT 1").await.is_err(),
        "the next statement fails"
    );
    let e = gw.connect(ENV, "erin", &erin).await.expect_err("refused");
    assert_eq!(sqlstate(&e), "28000");
    for c in [&fred_c, &gina_c, &olga_c, &agent_c] {
        let row = c.query_one("SELECT 2", &[]).await.expect("still open");
        assert_eq!(row.get::<_, i32>(0), 2);
    }
    for end in [&fred_end, &gina_end, &olga_end, &agent_end] {
        assert!(!end.is_finished());
    }

    // gina runs as the environment's user under the writers' grant. Once it is gone the
    // readers' grant still lets her in, but as `app_readonly`: the connection opened with more
    // than that ends, and her next one runs as the read-only role.
    assert_eq!(current_user(&gina_c).await, "app_owner");
    assert_eq!(api.delete(&grant_ids[2], &root).await.0, 204);
    let (code, m) = ended_with(gina_end).await;
    assert_eq!(code, "57P01", "{m}");
    assert_eq!(
        m,
        "access to environment \"app\" was changed by administrator \"root\": connections now run as upstream role \"app_readonly\"; reconnect to continue"
    );
    let again = gw.connect(ENV, "gina", &gina).await.expect("reconnects");
    drop(gina_c);
    assert_eq!(current_user(&again).await, "app_readonly");
    for c in [&fred_c, &olga_c, &agent_c] {
        c.simple_query("SELECT 3").await.expect("still open");
    }

    // The audit: each ended connection's close with its reason; each deletion with its count.
    let closes = gw
        .audit(&root, "event=connection.close&identity=erin")
        .await;
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert_eq!(
        closes[0]["details"]["reason"],
        "terminated: access to environment \"app\" was revoked by administrator \"root\""
    );
    let deletions = gw.audit(&root, "event=admin.grant.delete").await;
    let counts: Vec<u64> = deletions
        .iter()
        .map(|r| r["details"]["connections_closed"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 1], "{deletions:?}");
    let verify = gw.verify_audit();
    assert_eq!(verify.status, 0, "{}", verify.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_grant_ends_its_connections_when_it_expires() {
    let f = Fixture::start_with(|b| {
        b.user("root", "root-pw", &["admins"])
            .user("bob", "bob-pw", &["oncall"])
            .user("carol", "carol-pw", &["eng"])
            .user("dave", "dave-pw", &["contractors"])
    })
    .await;
    let gw = &f.gw;
    let api = Api::new(gw.http());
    let root = gw.login("root", "root-pw").await;

    // Bad input is refused, naming the field; nothing is created.
    for (body, field) in [
        (json!({"expires_in_seconds": -5}), "`expires_in_seconds`"),
        (
            json!({"expires_in_seconds": 60, "expires_at": "2099-01-01T00:00:00Z"}),
            "`expires_at` or `expires_in_seconds`",
        ),
        (
            json!({"expires_at": "2020-01-01T00:00:00Z"}),
            "`expires_at`",
        ),
        (json!({"expires_at": "next tuesday"}), "`expires_at`"),
    ] {
        let mut b = json!({"groups": ["oncall"], "environments": [ENV]});
        for (k, v) in body.as_object().unwrap() {
            b[k] = v.clone();
        }
        let (status, e) = api.post("/api/v1/grants", &root, b).await;
        assert_eq!(status, 400, "{body}: {e}");
        let m = e["message"].as_str().unwrap_or_default();
        assert!(m.contains(field), "{body}: {e}");
    }

    // Logins first (argon2 takes its time in a debug build): bob's grant lasts three seconds.
    let bob = gw.login("bob", "bob-pw").await;
    let carol = gw.login("carol", "carol-pw").await;
    // The OpenAPI document describes both ways of giving an expiry, and the listed one.
    let (_, doc) = api.get_anonymous("/api/v1/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    for field in ["expires_at", "expires_in_seconds"] {
        assert!(
            schemas["GrantRequest"]["properties"][field].is_object(),
            "GrantRequest.{field}"
        );
    }
    assert!(schemas["GrantItem"]["properties"]["expires_at"].is_object());

    // carol's grant never expires; bob's lasts three seconds.
    let (status, carol_grant) = api
        .post(
            "/api/v1/grants",
            &root,
            json!({"groups": ["eng"], "environments": [ENV]}),
        )
        .await;
    assert_eq!(status, 201, "{carol_grant}");
    assert_eq!(carol_grant["expires_at"], Value::Null);
    let (status, bob_grant) = api
        .post(
            "/api/v1/grants",
            &root,
            json!({"groups": ["oncall"], "environments": [ENV], "expires_in_seconds": 3}),
        )
        .await;
    assert_eq!(status, 201, "{bob_grant}");
    let bob_grant_id = bob_grant["id"].as_str().unwrap().to_string();
    let expires_at = bob_grant["expires_at"]
        .as_str()
        .expect("an expiry")
        .to_string();
    let (_, list) = api.get("/api/v1/grants", &root).await;
    let listed = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == bob_grant["id"])
        .cloned()
        .expect("listed");
    assert_eq!(listed["expires_at"], expires_at.as_str());
    // dave's grant expires at the same second as bob's: one sweep ends both, and each grant's
    // record counts the connection it let in.
    let (status, dave_grant) = api
        .post(
            "/api/v1/grants",
            &root,
            json!({"groups": ["contractors"], "environments": [ENV], "expires_at": expires_at}),
        )
        .await;
    assert_eq!(status, 201, "{dave_grant}");
    let dave = gw.login("dave", "dave-pw").await;
    let (_dave_c, dave_end) = gw.connect_watched(ENV, "dave", &dave).await;

    let (bob_c, bob_end) = gw.connect_watched(ENV, "bob", &bob).await;
    let (carol_c, carol_end) = gw.connect_watched(ENV, "carol", &carol).await;
    for c in [&bob_c, &carol_c] {
        c.simple_query("SELECT 1").await.expect("connected");
    }

    // The grant expires: bob's open connection ends, saying so, within the sweep's interval.
    let (code, m) = ended_with(bob_end).await;
    assert_eq!(code, "57P01", "{m}");
    assert_eq!(
        m,
        format!("access to environment \"app\" expired at {expires_at}: the grant that allowed it ended; ask an administrator for access again")
    );
    let e = gw.connect(ENV, "bob", &bob).await.expect_err("refused");
    assert_eq!(sqlstate(&e), "28000");
    assert_eq!(ended_with(dave_end).await.0, "57P01");
    let row = carol_c
        .query_one("SELECT 2", &[])
        .await
        .expect("still open");
    assert_eq!(row.get::<_, i32>(0), 2);
    assert!(!carol_end.is_finished());
    gw.connect(ENV, "carol", &carol)
        .await
        .expect("carol still gets in");

    // The grant is gone from the list and from the store (a delete finds nothing).
    let (_, list) = api.get("/api/v1/grants", &root).await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["id"].as_str())
        .collect();
    assert!(!ids.contains(&bob_grant_id.as_str()), "{list}");
    assert!(ids.contains(&carol_grant["id"].as_str().unwrap()), "{list}");
    assert_eq!(
        api.delete(&format!("/api/v1/grants/{bob_grant_id}"), &root)
            .await
            .0,
        404
    );

    // The audit: the gateway itself recorded the expiry, with the connection it ended.
    let expired = gw.audit(&root, "event=admin.grant.expired").await;
    assert_eq!(expired.len(), 2, "{expired:?}");
    let dave_record = expired
        .iter()
        .find(|r| r["details"]["grant_id"] == dave_grant["id"])
        .expect("dave's grant's record");
    assert_eq!(
        dave_record["details"]["connections_closed"], 1,
        "{dave_record}"
    );
    let r = expired
        .iter()
        .find(|r| r["details"]["grant_id"] == bob_grant_id.as_str())
        .expect("bob's grant's record");
    assert_eq!(r["identity"], "gatehouse", "{r}");
    assert_eq!(r["identity_kind"], "gateway", "{r}");
    assert_eq!(r["details"]["grant_id"], bob_grant_id.as_str(), "{r}");
    assert_eq!(r["details"]["groups"], json!(["oncall"]), "{r}");
    assert_eq!(r["details"]["environments"], json!([ENV]), "{r}");
    assert_eq!(r["details"]["connections_closed"], 1, "{r}");
    let closes = gw.audit(&root, "event=connection.close&identity=bob").await;
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert_eq!(closes[0]["details"]["reason"], format!("terminated: {m}"));
    let verify = gw.verify_audit();
    assert_eq!(verify.status, 0, "{}", verify.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ends_when_its_session_or_service_account_token_ends() {
    // Access tokens last 2 s, the session (its refresh token) 6 s.
    let f = Fixture::start_with(|b| {
        b.user("dana", "dana-pw", &["analysts"])
            .user(ADMIN, ADMIN_PASSWORD, &["admins"])
            .grant(&["analysts"], &[ENV])
            .server("session_ttl_seconds = 2\nrefresh_ttl_seconds = 6")
    })
    .await;
    let gw = &f.gw;
    let api = Api::new(gw.http());
    let (status, login) = api
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "dana", "password": "dana-pw"})),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap().to_string();
    let session_end = login["refresh_expires_at"]
        .as_str()
        .expect("a refresh token")
        .to_string();
    // An API service account that expires when dana's session ends.
    let admin = gw.login(ADMIN, ADMIN_PASSWORD).await;
    let (status, nightly) = api
        .post(
            "/api/v1/service-accounts",
            &admin,
            json!({"name": "nightly", "groups": ["analysts"], "expires_at": session_end}),
        )
        .await;
    assert_eq!(status, 201, "{nightly}");
    let nightly_token = nightly["token"].as_str().unwrap().to_string();
    let (dana_c, dana_end) = gw.connect_watched(ENV, "dana", &token).await;
    let (agent_c, agent_end) = gw.connect_watched(ENV, AGENT, &f.token).await;
    let (nightly_c, nightly_end) = gw.connect_watched(ENV, "nightly", &nightly_token).await;
    for c in [&dana_c, &agent_c, &nightly_c] {
        c.simple_query("SELECT 1").await.expect("connected");
    }

    // A refresh renews the access token, not the session: the connection outlives the first
    // access token (expired after 2 s) and ends at the session's end.
    let (status, renewed) = api
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": login["refresh_token"]})),
        )
        .await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["refresh_expires_at"], session_end.as_str());
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    let e = gw
        .connect(ENV, "dana", &token)
        .await
        .expect_err("the first access token no longer works");
    assert_eq!(sqlstate(&e), "28P01");
    dana_c
        .simple_query("SELECT 2")
        .await
        .expect("open past the access token's expiry");
    assert!(!dana_end.is_finished());

    let (code, m) = ended_with(dana_end).await;
    assert_eq!(code, "57P01", "{m}");
    assert_eq!(
        m,
        format!("your Gatehouse session ended at {session_end}; log in again")
    );
    // The expiring service account's connection ends at its expiry, saying so.
    let (code, m) = ended_with(nightly_end).await;
    assert_eq!(code, "57P01", "{m}");
    assert_eq!(
        m,
        format!("the service account token of \"nightly\" expired at {session_end}; an administrator can rotate it for a new one")
    );
    // The config service account's connection, opened at the same time, never expires.
    let row = agent_c
        .query_one("SELECT 3", &[])
        .await
        .expect("still open");
    assert_eq!(row.get::<_, i32>(0), 3);
    assert!(!agent_end.is_finished());
}

/// The upstream role a connection runs as. A simple query: an extended one leaves tokio-postgres
/// closing its statement in the background, and a termination arriving meanwhile would answer
/// that close instead of ending the connection with the gateway's reason.
async fn current_user(c: &tokio_postgres::Client) -> String {
    let rows = c
        .simple_query("SELECT current_user")
        .await
        .expect("current_user");
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .expect("a row")
}
