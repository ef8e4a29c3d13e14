//! The sign-in screen: `session_info`, `login_password`, `login_sso`, `logout`, and
//! `gateway_has_sso` (whether to offer SSO for the gateway typed). A sign-in reopens the
//! tunnels that were open for that gateway.

use tauri::State;

use crate::error::CommandResult;
use crate::state::{AppState, LoginWith, SessionInfo};

/// Who is signed in where, or `null`.
#[tauri::command]
pub async fn session_info(state: State<'_, AppState>) -> CommandResult<Option<SessionInfo>> {
    Ok(state.session_info().await)
}

/// Signs in as a local user of the gateway at `gateway`.
#[tauri::command]
pub async fn login_password(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    gateway: String,
    username: String,
    password: String,
) -> CommandResult<SessionInfo> {
    let info = state
        .login(gateway, LoginWith::Password { username, password })
        .await?;
    // The watcher's first look, now: what waits at sign-in is known, anything after is news.
    crate::notify::look(&app).await;
    state.reopen_tunnels().await;
    crate::tray::refresh(&app).await;
    Ok(info)
}

/// Signs in with single sign-on: the system browser, back to a loopback listener (RFC 8252).
#[tauri::command]
pub async fn login_sso(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    gateway: String,
) -> CommandResult<SessionInfo> {
    let info = state.login(gateway, LoginWith::Sso).await?;
    // The watcher's first look, now: what waits at sign-in is known, anything after is news.
    crate::notify::look(&app).await;
    state.reopen_tunnels().await;
    crate::tray::refresh(&app).await;
    Ok(info)
}

/// Revokes the session, closes its tunnels and forgets it on this machine.
#[tauri::command]
pub async fn logout(app: tauri::AppHandle, state: State<'_, AppState>) -> CommandResult<()> {
    let result = state.logout().await;
    crate::tray::refresh(&app).await;
    result
}

/// Whether the gateway at `gateway` has single sign-on (`GET /api/v1/info`), as the web console
/// asks its own; `null` when it cannot be asked (unreachable, or a certificate only a sign-in
/// can decide to trust), and then the UI keeps offering SSO and the sign-in says what is wrong.
#[tauri::command]
pub async fn gateway_has_sso(gateway: String) -> Option<bool> {
    let base = gatehouse_client::api::normalize_base(&gateway).ok()?;
    let api =
        gatehouse_client::api::ApiClient::new(&base, &gatehouse_client::Trust::WebPki).ok()?;
    let info = tokio::time::timeout(std::time::Duration::from_secs(5), api.info())
        .await
        .ok()?
        .ok()??;
    Some(info.sso)
}
