//! The gateway authenticates to upstreams as libpq would: SCRAM or md5 passwords, and TLS per
//! `sslmode` (require encrypts; verify-ca also checks the certificate against `sslrootcert`;
//! verify-full checks the host name as well).

use gatehouse_tests::{message, random_token, sqlstate, Cluster, Gateway, GatewayBuilder};

/// Connects to `env` as the service account and asserts the gateway's own upstream connection
/// is encrypted.
async fn assert_encrypted_upstream(gw: &Gateway, env: &str, token: &str) {
    let client = gw
        .connect(env, "agent", token)
        .await
        .unwrap_or_else(|e| panic!("{env}: {e}\n{}", gw.log()));
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "{env}: the upstream connection is encrypted");
}

/// Asserts that connecting to `env` fails as the gateway reports a refused upstream certificate.
async fn assert_certificate_refused(gw: &Gateway, env: &str, token: &str) {
    let e = gw
        .connect(env, "agent", token)
        .await
        .map(|_| ())
        .expect_err(env);
    assert_eq!(sqlstate(&e), "08001", "{env}: {e}");
    assert!(message(&e).contains("TLS"), "{env}: {}", message(&e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_scram_and_tls_modes() {
    let mut c = Cluster::start().await;
    let cert = c.enable_ssl();
    c.exec(
        "postgres",
        "SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD 'md5pw'",
    )
    .await;
    c.exec("postgres", "CREATE ROLE tls_user LOGIN PASSWORD 'tlspw'")
        .await;
    // md5_user may only use md5; tls_user only TLS.
    c.prepend_hba("host all md5_user 127.0.0.1/32 md5").await;
    c.prepend_hba("hostnossl all tls_user 127.0.0.1/32 reject")
        .await;
    c.prepend_hba("hostssl all tls_user 127.0.0.1/32 scram-sha-256")
        .await;
    // Another cluster's certificate: valid, but not the one this upstream presents.
    let mut other = Cluster::start().await;
    let other_cert = other.enable_ssl();

    let port = c.port;
    let url =
        |user: &str, query: &str| format!("postgresql://{user}@127.0.0.1:{port}/postgres?{query}");
    let token = random_token("gha_");
    let gw = GatewayBuilder::new()
        .environment(
            "md5",
            "development",
            &url("md5_user", "sslmode=disable"),
            Some("md5pw"),
        )
        .environment(
            "tls",
            "production",
            &url("tls_user", "sslmode=require"),
            Some("tlspw"),
        )
        .environment(
            "verified",
            "production",
            &url(
                "tls_user",
                &format!("sslmode=verify-full&sslrootcert={}", cert.display()),
            ),
            Some("tlspw"),
        )
        .environment(
            "forged",
            "production",
            &url(
                "tls_user",
                &format!("sslmode=verify-full&sslrootcert={}", other_cert.display()),
            ),
            Some("tlspw"),
        )
        .environment(
            "plain",
            "production",
            &url("tls_user", "sslmode=disable"),
            Some("tlspw"),
        )
        .service_account("agent", &token, &["eng"])
        .grant(&["eng"], &["*"])
        .start()
        .await;

    let md5 = gw
        .connect("md5", "agent", &token)
        .await
        .expect("md5 upstream");
    let (user, ssl): (String, bool) = {
        let r = md5
            .query_one(
                "SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((user.as_str(), ssl), ("md5_user", false));

    for env in ["tls", "verified"] {
        assert_encrypted_upstream(&gw, env, &token).await;
    }
    // A certificate that does not chain to sslrootcert is refused.
    assert_certificate_refused(&gw, "forged", &token).await;

    // The upstream's own refusal (pg_hba reject) is the operator's problem, reported as such.
    let e = gw
        .connect("plain", "agent", &token)
        .await
        .map(|_| ())
        .expect_err("rejected by pg_hba");
    assert_eq!(sqlstate(&e), "08004", "{e}");
}

/// verify-ca trusts a certificate that chains to `sslrootcert` whatever names it carries, and
/// still refuses one that does not chain; verify-full refuses the same certificate for its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_checks_the_chain_but_not_the_name() {
    let mut c = Cluster::start().await;
    // Valid for another host only: the gateway reaches it as 127.0.0.1.
    let ca = c.enable_ssl_for("DNS:db.example.internal");
    let mut other = Cluster::start().await;
    let other_ca = other.enable_ssl();
    let url = |mode: &str, root: &std::path::Path| {
        format!(
            "postgresql://postgres@127.0.0.1:{}/postgres?sslmode={mode}&sslrootcert={}",
            c.port,
            root.display()
        )
    };
    let token = random_token("gha_");
    let gw = GatewayBuilder::new()
        .environment(
            "ca",
            "production",
            &url("verify-ca", &ca),
            Some(&c.password),
        )
        .environment(
            "full",
            "production",
            &url("verify-full", &ca),
            Some(&c.password),
        )
        .environment(
            "forged",
            "production",
            &url("verify-ca", &other_ca),
            Some(&c.password),
        )
        .service_account("agent", &token, &["eng"])
        .grant(&["eng"], &["*"])
        .start()
        .await;

    assert_encrypted_upstream(&gw, "ca", &token).await;
    // verify-full: the name; verify-ca with another CA: the chain.
    for env in ["full", "forged"] {
        assert_certificate_refused(&gw, env, &token).await;
    }
}
