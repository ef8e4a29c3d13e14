//! The HTTP API: health, discovery, the OpenAPI document, login, environments filtered by grants, whoami.

use gatehouse_tests::{Api, Fixture};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_environments_whoami_and_openapi() {
    let f = Fixture::start_with(|b| {
        b.environment(
            "hidden",
            "staging",
            "postgresql://x@127.0.0.1:1/x?sslmode=disable",
            None,
        )
        .user("root", "pw", &["admins"])
        .grant(&["admins"], &["*"])
    })
    .await;
    let http = reqwest::Client::new();
    let base = f.gw.http();
    let api = Api::new(&base);

    let (_, health) = api.get_anonymous("/healthz").await;
    assert_eq!(health["status"], "ok");

    // Discovery, before any login: where PostgreSQL is (the public URL's host, the listener's
    // port) and that this gateway has no SSO.
    let (status, info) = api.get_anonymous("/api/v1/info").await;
    assert_eq!(status, 200);
    assert_eq!(
        info["postgres_address"],
        format!("127.0.0.1:{}", f.gw.pg_port)
    );
    assert_eq!(info["sso"], false);

    let (_, doc) = api.get_anonymous("/api/v1/openapi.json").await;
    for path in [
        "/api/v1/info",
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/environments",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }

    // No token, a bad token: 401 with a JSON body that says what to do.
    let (status, body) = api.get_anonymous("/api/v1/environments").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(api.get("/api/v1/environments", "gha_nope").await.0, 401);

    // The agent sees only what it is granted.
    let (_, envs) = api.get("/api/v1/environments", &f.token).await;
    let names: Vec<&str> = envs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["app"]);
    assert_eq!(envs["items"][0]["tier"], "staging");

    // An admin logged in with a password sees everything.
    let credentials = serde_json::json!({"username": "root", "password": "pw"});
    let (_, login) = api
        .send(Method::POST, "/api/v1/auth/login", None, Some(credentials))
        .await;
    let token = login["token"].as_str().unwrap();
    assert!(token.starts_with("ghs_"));
    let (_, envs) = api.get("/api/v1/environments", token).await;
    assert_eq!(envs["items"].as_array().unwrap().len(), 2);
    let (_, me) = api.get("/api/v1/whoami", token).await;
    assert_eq!(
        (
            me["name"].as_str(),
            me["kind"].as_str(),
            me["admin"].as_bool()
        ),
        (Some("root"), Some("human"), Some(true))
    );
    let (_, me) = api.get("/api/v1/whoami", &f.token).await;
    assert_eq!(
        (me["kind"].as_str(), me["admin"].as_bool()),
        (Some("agent"), Some(false))
    );

    // Malformed JSON is a 4xx, not a crash.
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(api.get_anonymous("/api/v1/nope").await.0, 404);
}

/// One HTTP/1.1 response read off a raw connection: status, lower-cased headers, body.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one whole response (`content-length` framed) from `buf` + `conn`; None on EOF.
async fn read_response(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<RawResponse> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                buf.drain(..end + 4 + len);
                return Some(RawResponse { status, headers });
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("no answer within 10 s")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A request refused before its body was read (no token, say) must not break the client's
/// next request on the same kept-alive connection: either the gateway reads the body and
/// keeps the connection, or it says `connection: close`. Found as an MCP SDK client's
/// "server disconnected without sending a response" after a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_before_its_body_arrives_leaves_the_connection_usable() {
    use tokio::io::AsyncWriteExt;
    let f = Fixture::start().await;
    let addr = f.gw.http().trim_start_matches("http://").to_string();
    let body = r#"{"jsonrpc":"2.0","id":1}"#;
    for path in ["/mcp", "/api/v1/grants"] {
        // The body comes a moment after the head, as from a client that writes them apart.
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             accept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        conn.write_all(format!("{body}GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let first = read_response(&mut conn, &mut buf)
            .await
            .expect("an answer to the refused request");
        assert_eq!(first.status, 401, "{path}");
        if first.header("connection") != Some("close") {
            let second = read_response(&mut conn, &mut buf).await;
            assert_eq!(
                second.map(|r| r.status),
                Some(200),
                "{path}: the connection was kept alive but the next request got no answer"
            );
        }

        // A body that never comes: the answer still comes, and says the connection closes.
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let first = read_response(&mut conn, &mut buf).await.expect("an answer");
        assert_eq!(first.status, 401, "{path}");
        assert_eq!(first.header("connection"), Some("close"), "{path}");

        // `Expect: 100-continue`: refused at once, no `100 Continue` asked the body for.
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let expecting = head.replacen("\r\n\r\n", "\r\nexpect: 100-continue\r\n\r\n", 1);
        conn.write_all(expecting.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let first = read_response(&mut conn, &mut buf).await.expect("an answer");
        assert_eq!(first.status, 401, "{path}");
        assert_eq!(first.header("connection"), Some("close"), "{path}");
    }
}
