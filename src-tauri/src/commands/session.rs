//! The sign-in screen: `session_info`, `login_password`, `login_sso`, `logout`.

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
