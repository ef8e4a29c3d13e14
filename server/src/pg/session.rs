//! One client connection from accept to close: handshake, authentication (token → identity),
//! authorization (environment and grant), the upstream connection, then the relay. Every step
//! runs inside a tracing span that carries the session id, the peer, and once known the identity
//! and environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pgwire::messages::response::{ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{Authentication, BackendKeyData, SecretKey};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{field, Instrument};

use super::access;
use super::cancel::CancelKey;
use super::codec;
use super::connections::ConnectionInfo;
use super::encoding::ClientEncoding;
use super::error::{PgError, SqlState};
use super::gate::Observer;
use super::handshake::{self, HandshakeError, Opening};
use super::relay::{self, Limits};
use super::startup_options;
use super::stream::PgStream;
use super::upstream;
use crate::audit::{AuditRecord, ConnectionMeta, Pending};
use crate::gateway::{Environment, Gateway};
use crate::identity::{AuthError, Identity};

/// Startup parameters passed on to the upstream as the client sent them. Anything else is
/// dropped (it could change who the upstream thinks we are, e.g. `role` via `options`).
const FORWARDED_PARAMS: &[&str] = &[
    "client_encoding",
    "datestyle",
    "timezone",
    "extra_float_digits",
    "intervalstyle",
    "search_path",
    "lc_messages",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "default_transaction_read_only",
    "options",
];

/// Startup parameter naming the person an agent acts for (honoured for agents only; see
/// [`Identity::acting_for`]). The MCP server sets it for callers that name one.
pub const ON_BEHALF_OF_PARAM: &str = "gatehouse.on_behalf_of";
/// Startup parameter shortening the approval hold for this connection (seconds; never longer
/// than `server.approval_window_seconds`). A client that follows approvals itself sets 0.
pub const APPROVAL_WAIT_PARAM: &str = "gatehouse.approval_wait";
/// `application_name` of the MCP server's own connections (audit `via = "mcp"`).
pub const MCP_APPLICATION: &str = "gatehouse-mcp";

/// Serves one accepted connection to completion.
pub async fn serve(gw: Arc<Gateway>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let conn_id = crate::identity::tokens::random_id();
    let span = tracing::info_span!(
        "session",
        id = %conn_id,
        %peer,
        identity = field::Empty,
        env = field::Empty,
        replica = field::Empty,
    );
    // Replicas sharing a store: which one served the connection is in its every log line.
    if gw.store.is_shared() {
        span.record("replica", gw.replica_id.as_str());
    }
    serve_inner(gw, tcp, peer, conn_id).instrument(span).await
}

async fn serve_inner(gw: Arc<Gateway>, tcp: TcpStream, peer: SocketAddr, conn_id: String) {
    let limits = &gw.config.server;
    let deadline = Instant::now() + Duration::from_secs(limits.handshake_timeout_seconds.max(1));
    let opening = match handshake::open(tcp, gw.tls.as_ref(), deadline).await {
        Ok(o) => o,
        Err(HandshakeError::Closed) => return,
        Err(e) => {
            tracing::info!(error = %e, "handshake failed");
            return;
        }
    };
    let (mut stream, params) = match opening {
        Opening::Cancel { pid, secret } => {
            let timeout = Duration::from_secs(gw.config.server.upstream_connect_timeout_seconds);
            // A key another replica issued: the load balancer sent the cancel's new
            // connection here. That replica forwards it (`replicas::apply`).
            if gw.store.is_shared() && !gw.cancels.knows(pid, secret) {
                let relayed = crate::replicas::relay_cancel(&gw, pid, secret);
                tracing::info!(relayed, "cancel request for another replica's key");
                return;
            }
            let forwarded = gw.cancels.cancel(pid, secret, timeout).await;
            tracing::info!(forwarded, "cancel request");
            return;
        }
        Opening::Startup { stream, params } => (stream, params),
    };

    let established = match establish(&gw, &mut stream, &params, peer, deadline).await {
        Ok(e) => e,
        Err(SetupError::Quiet) => return,
        Err(SetupError::Client(e)) => {
            tracing::info!(code = e.code.code(), reason = %e.message, "connection refused");
            metrics::counter!("gatehouse_connections_refused_total").increment(1);
            let mut r = AuditRecord::new("connection.refused");
            r.client_addr = Some(peer.to_string());
            r.connection_id = Some(conn_id.clone());
            r.application_name = params.get("application_name").cloned();
            r.sqlstate = Some(e.code.to_string());
            r.error = Some(e.message.clone());
            // The name is only claimed here, not proven, so it is not the record's identity.
            r.details = Some(serde_json::json!({
                "claimed_user": params.get("user"),
                "database": params.get("database"),
            }));
            gw.audit.record(Pending::Record(Box::new(r))).await;
            handshake::send_error(&mut stream, &e).await;
            return;
        }
    };
    let Established {
        identity,
        token_groups,
        token_ends_at,
        env,
        database,
        upstream,
        pinned_role,
        _cancel_key,
        hello,
    } = established;
    let meta = Arc::new(ConnectionMeta {
        connection_id: conn_id.clone(),
        identity: identity.name.clone(),
        identity_kind: identity.kind.as_str(),
        on_behalf_of: identity.on_behalf_of.clone(),
        client_addr: peer.to_string(),
        application_name: params.get("application_name").cloned(),
        environment: env.name.clone(),
        database: database.clone(),
        via: match params.get("application_name") {
            Some(a) if a.starts_with("gatehouse-tunnel") => "tunnel",
            Some(a) if a == MCP_APPLICATION => "mcp",
            _ => "direct",
        },
    });
    let mut open_record = meta.record("connection.open");
    open_record.details = Some(serde_json::json!({ "tls": stream.is_tls() }));
    gw.audit
        .record(Pending::Record(Box::new(open_record)))
        .await;
    let observer = Observer {
        gw: gw.clone(),
        meta: meta.clone(),
        identity: identity.clone(),
        env: env.clone(),
        pinned_role: pinned_role.clone(),
        approval_window_seconds: approval_window(&gw, &params),
        refusals: params
            .get(super::refusal_board::REFUSALS_PARAM)
            .and_then(|ticket| gw.refusals.claim(ticket)),
    };
    let info = ConnectionInfo {
        id: conn_id.clone(),
        identity: identity.name.clone(),
        identity_kind: identity.kind.as_str().to_string(),
        session_id: identity.session_id.clone(),
        environment: env.name.clone(),
        database,
        client_addr: peer.to_string(),
        application_name: params.get("application_name").cloned(),
        tls: stream.is_tls(),
        started_at: crate::identity::now(),
        upstream_role: pinned_role,
        token_groups,
        token_ends_at,
    };
    let registration = gw.connections.register(info.clone());
    // An administrator may have taken access away between the grant check in `establish` and
    // this registration, when the sweep that follows such a change could not see us yet; ask
    // the grants once more now that any later sweep will. The relay then ends at once.
    if let Some(why) = access::access_withdrawn(&gw, &info, &access::Cause::Admin(None)) {
        gw.connections.terminate(&conn_id, why);
    }
    if stream.write_all(&hello).await.is_err() || stream.flush().await.is_err() {
        let mut close = meta.record("connection.close");
        close.details = Some(serde_json::json!({
            "reason": "the client left before its session started",
        }));
        gw.audit.record(Pending::Record(Box::new(close))).await;
        return;
    }
    tracing::info!(
        kind = identity.kind.as_str(),
        tls = stream.is_tls(),
        "session started"
    );
    let opened = std::time::Instant::now();
    metrics::counter!("gatehouse_connections_total").increment(1);
    let relay_limits = Limits {
        max_client_message: gw.config.server.max_message_bytes,
        idle_timeout: match gw.config.server.idle_timeout_seconds {
            0 => None,
            s => Some(Duration::from_secs(s)),
        },
    };
    let (end, mut client_w, at_boundary, traffic) = relay::run(
        stream,
        upstream.stream,
        relay_limits,
        relay::Start {
            status: upstream.ready_status,
            encoding: upstream
                .client_encoding
                .as_deref()
                .and_then(|n| ClientEncoding::from_name(n).ok())
                .unwrap_or_default(),
            strings: upstream
                .standard_conforming_strings
                .as_deref()
                .and_then(super::tracker::strings_reading),
            search_path_changed: startup_sets_search_path(&params),
            upstream_pid: upstream.pid,
        },
        registration.stop.clone(),
        &observer,
    )
    .await;
    let mut close = meta.record("connection.close");
    close.duration_ms = Some((opened.elapsed().as_secs_f64() * 1e6).round() / 1e3);
    close.details = Some(serde_json::json!({
        "client_bytes": traffic.client_bytes,
        "upstream_bytes": traffic.upstream_bytes,
        "statements": traffic.statements,
        "reason": end.summary(),
    }));
    gw.audit.record(Pending::Record(Box::new(close))).await;
    if let (Some(e), true) = (end.client_error(&env.name), at_boundary) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            client_w.write_all(&e.to_bytes()).await?;
            client_w.flush().await
        })
        .await;
    }
    let _ = client_w.shutdown().await;
    tracing::info!(
        reason = ?end,
        client_bytes = traffic.client_bytes,
        upstream_bytes = traffic.upstream_bytes,
        "session ended"
    );
}

enum SetupError {
    /// The client left; nothing to say.
    Quiet,
    Client(PgError),
}

impl From<PgError> for SetupError {
    fn from(e: PgError) -> Self {
        SetupError::Client(e)
    }
}

struct Established {
    identity: Identity,
    /// The groups the token itself carries (see [`ConnectionInfo::token_groups`]).
    token_groups: Vec<String>,
    /// See [`ConnectionInfo::token_ends_at`].
    token_ends_at: Option<i64>,
    env: Arc<Environment>,
    database: String,
    pinned_role: Option<String>,
    upstream: upstream::Upstream,
    _cancel_key: CancelKey,
    /// AuthenticationOk, the upstream's startup frames, BackendKeyData and ReadyForQuery: sent
    /// once the connection is registered, so a client that may send statements is always
    /// listed (and can be terminated).
    hello: BytesMut,
}

fn auth_failed(user: &str) -> PgError {
    PgError::fatal(SqlState::InvalidPassword, format!("password authentication failed for user \"{user}\""))
        .with_hint("Use a Gatehouse token as the password: a service-account token, or a session token from `gatehouse login`.")
}

async fn establish(
    gw: &Gateway,
    stream: &mut PgStream,
    params: &BTreeMap<String, String>,
    peer: SocketAddr,
    deadline: Instant,
) -> Result<Established, SetupError> {
    if params.contains_key("replication") {
        return Err(PgError::fatal(
            SqlState::FeatureNotSupported,
            "replication connections are not supported through the gateway",
        )
        .into());
    }
    if !stream.is_tls() && (gw.config.server.require_tls || !peer.ip().is_loopback()) {
        return Err(PgError::fatal(
            SqlState::InvalidAuthorization,
            format!("connections from {} must use TLS: tokens are only accepted over TLS or from the gateway's own machine", peer.ip()),
        )
        .with_hint("Connect with sslmode=require, or through `gatehouse connect`.")
        .into());
    }
    let user = params
        .get("user")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            PgError::fatal(
                SqlState::InvalidAuthorization,
                "no user name was given in the startup message",
            )
        })?
        .clone();
    let token = match handshake::read_password(stream, deadline).await {
        Ok(t) => t,
        // psql hangs up here to prompt for a password, then reconnects.
        Err(HandshakeError::Closed) => return Err(SetupError::Quiet),
        Err(HandshakeError::Client(e)) => return Err(e.into()),
        Err(e) => {
            tracing::debug!(error = %e, "password exchange failed");
            return Err(SetupError::Quiet);
        }
    };
    let (token_identity, token_ends_at) = match gw.auth.token_identity_until(&token).await {
        Ok((i, end)) if i.name == user => (i, end),
        Ok(_) | Err(AuthError::InvalidCredentials) => return Err(auth_failed(&user).into()),
        Err(AuthError::Expired) => {
            return Err(PgError::fatal(
                SqlState::InvalidPassword,
                format!("the session token for user \"{user}\" has expired"),
            )
            .with_hint("Log in again (`gatehouse login`) and use the new token.")
            .into())
        }
        Err(AuthError::Revoked) => {
            return Err(PgError::fatal(
                SqlState::InvalidPassword,
                format!("the session token for user \"{user}\" has been revoked"),
            )
            .with_hint("Log in again (`gatehouse login`) and use the new token.")
            .into())
        }
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %e, "credential store unavailable");
            return Err(PgError::fatal(
                SqlState::RejectedConnection,
                "the gateway cannot verify credentials right now",
            )
            .with_hint("Try again shortly; if it persists, tell a Gatehouse administrator.")
            .into());
        }
    };
    tracing::Span::current().record("identity", token_identity.name.as_str());
    let token_groups = token_identity.groups.clone();
    let identity = gw
        .auth
        .acting_for(
            gw.auth.with_memberships(token_identity),
            params.get(ON_BEHALF_OF_PARAM).map(String::as_str),
        )
        .map_err(|e| PgError::fatal(SqlState::InvalidAuthorization, e.to_string()))?;

    let dbname = params
        .get("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(&user);
    let (env, database) = gw.reach(&identity, dbname).map_err(unreachable)?;
    tracing::Span::current().record("env", env.name.as_str());

    // A grant may pin the upstream role (e.g. read-only for agents): it becomes the session's
    // own default, so RESET ROLE returns to it; the gate refuses statements that would leave it.
    let pinned_role = gw.grants.upstream_role(&identity, &env.name);
    let upstream_params = upstream_params(params, &identity, pinned_role.as_deref())?;
    let mut target = (*env.target).clone();
    target.database = database;
    let timeout = Duration::from_secs(gw.config.server.upstream_connect_timeout_seconds.max(1));
    let upstream = upstream::connect(&target, &upstream_params, timeout)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "upstream connection failed");
            e.to_client(&env.name)
        })?;
    // The server's own answer decides how client text is read; an encoding the gateway cannot
    // read exactly (a role's or database's default, say) ends the connection before any
    // statement is sent.
    if let Some(name) = &upstream.client_encoding {
        if let Err(e) = ClientEncoding::from_name(name) {
            return Err(PgError::fatal(SqlState::FeatureNotSupported, e.to_string())
                .with_hint(super::encoding::EncodingRefused::HINT)
                .into());
        }
    }
    let database_name = target.database.clone();
    let cancel_key = gw
        .cancels
        .register(Arc::new(target), upstream.pid, upstream.secret);

    let mut out = BytesMut::with_capacity(512 + upstream.startup_frames.len());
    codec::encode(&mut out, &Authentication::Ok);
    out.extend_from_slice(&upstream.startup_frames);
    codec::encode(
        &mut out,
        &BackendKeyData::new(cancel_key.pid, SecretKey::I32(cancel_key.secret)),
    );
    let status = match upstream.ready_status {
        b'T' => TransactionStatus::Transaction,
        b'E' => TransactionStatus::Error,
        _ => TransactionStatus::Idle,
    };
    codec::encode(&mut out, &ReadyForQuery::new(status));
    Ok(Established {
        identity,
        token_groups,
        token_ends_at,
        env,
        database: database_name,
        pinned_role,
        upstream,
        _cancel_key: cancel_key,
        hello: out,
    })
}

/// A `dbname` that leads nowhere for this identity, as the client hears it: no environment
/// and no grant get the same words, so a refusal never says which environments exist.
fn unreachable(e: crate::gateway::Unreachable) -> PgError {
    use crate::gateway::Unreachable;
    let hint = match &e {
        Unreachable::NoEnvironment { .. } => "The database name selects the environment (`env` or `env/database`); list the environments you may reach with `gatehouse envs`, and ask a Gatehouse administrator for access to others, or request it for a while (`gatehouse request ENV --for 1h --reason \"…\"`) where the environment takes requests.".to_string(),
        Unreachable::Database { env, own, .. } => format!("Connect with dbname={env} (its database is \"{own}\"); an administrator can open more databases with the environment's `databases` setting."),
    };
    PgError::fatal(SqlState::InvalidAuthorization, e.to_string()).with_hint(hint)
}

/// Whether the client's startup parameters move `search_path` away from the role's default
/// (directly or in `options`); the tables it reaches by bare name may then be in any schema.
fn startup_sets_search_path(params: &BTreeMap<String, String>) -> bool {
    params
        .iter()
        .any(|(k, v)| match k.to_ascii_lowercase().as_str() {
            "search_path" => true,
            // Unparseable options refused the connection already; unknown reads as "moved".
            "options" => startup_options::parse(v).map_or(true, |settings| {
                settings.iter().any(|s| s.name == "search_path")
            }),
            _ => false,
        })
}

/// The approval hold for this connection: the configured window, or less if the client asked.
fn approval_window(gw: &Gateway, params: &BTreeMap<String, String>) -> u64 {
    let configured = gw.config.server.approval_window_seconds;
    params
        .get(APPROVAL_WAIT_PARAM)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(configured, |asked| asked.min(configured))
}

/// The upstream's startup parameters: the client's harmless settings, and an
/// `application_name` that names the identity so DBAs see who is behind a backend.
/// `options` is parsed the server's way and re-encoded (see [`startup_options`]); a setting that
/// would change the identity or the client encoding's safety refuses the connection.
fn upstream_params(
    params: &BTreeMap<String, String>,
    identity: &Identity,
    role: Option<&str>,
) -> Result<Vec<(String, String)>, PgError> {
    let mut out = Vec::new();
    let mut settings = Vec::new();
    for (k, v) in params {
        let lk = k.to_ascii_lowercase();
        if !FORWARDED_PARAMS.contains(&lk.as_str()) {
            continue;
        }
        if lk == "options" {
            settings = startup_options::parse(v).map_err(options_refused)?;
            continue;
        }
        startup_options::check(&startup_options::Setting {
            name: lk,
            value: v.clone(),
        })
        .map_err(options_refused)?;
        out.push((k.clone(), v.clone()));
    }
    // Last, so it wins over anything before it.
    if let Some(r) = role {
        settings.push(startup_options::Setting {
            name: "role".into(),
            value: r.to_string(),
        });
    }
    if !settings.is_empty() {
        out.push(("options".into(), startup_options::encode(&settings)));
    }
    let app = super::app_name::upstream_value(
        &identity.name,
        params.get("application_name").map(String::as_str),
    );
    out.push(("application_name".into(), app));
    Ok(out)
}

fn options_refused(e: startup_options::OptionsRefused) -> PgError {
    use startup_options::OptionsRefused as R;
    match e {
        R::Forbidden(_) => PgError::fatal(SqlState::InvalidAuthorization, e.to_string()),
        R::Encoding(_) => PgError::fatal(SqlState::FeatureNotSupported, e.to_string())
            .with_hint(super::encoding::EncodingRefused::HINT),
        R::NotASetting(_) | R::NoValue(_) => {
            PgError::fatal(SqlState::ProtocolViolation, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKind;

    fn alice() -> Identity {
        Identity {
            name: "alice".into(),
            kind: IdentityKind::Human,
            groups: vec![],
            on_behalf_of: None,
            session_id: None,
        }
    }

    #[test]
    fn application_name_carries_identity_and_client_app() {
        let mut p = BTreeMap::new();
        p.insert("application_name".to_string(), "psql".to_string());
        p.insert("client_encoding".to_string(), "UTF8".to_string());
        p.insert("user".to_string(), "alice".to_string());
        let out = upstream_params(&p, &alice(), None).unwrap();
        assert!(out.contains(&("application_name".into(), "gatehouse:alice/psql".into())));
        assert!(out.contains(&("client_encoding".into(), "UTF8".into())));
        assert!(!out.iter().any(|(k, _)| k == "user"));
    }

    #[test]
    fn identity_changing_options_are_refused_and_the_pinned_role_comes_last() {
        let mut p = BTreeMap::new();
        p.insert("options".to_string(), r"-\c role=postgres".to_string());
        let e = upstream_params(&p, &alice(), None).unwrap_err();
        assert_eq!(e.code, SqlState::InvalidAuthorization);
        p.insert("options".to_string(), "-c search_path=app".to_string());
        let out = upstream_params(&p, &alice(), Some("reader x")).unwrap();
        assert!(out.contains(&(
            "options".into(),
            r"-c search_path=app -c role=reader\ x".into()
        )));
        p.insert("client_encoding".to_string(), "SJIS".to_string());
        let e = upstream_params(&p, &alice(), None).unwrap_err();
        assert_eq!(e.code, SqlState::FeatureNotSupported);
        assert!(e.message.contains("SJIS"), "{}", e.message);
    }
}
