//! The environments screen's tunnels: `connect`, `disconnect`, `tunnels`, and the setting that
//! reopens them at start (`reopen_setting`, `set_reopen_setting`). Each change is announced
//! with the `tunnels-changed` event (the whole list) and mirrored in the tray.

use tauri::State;

use crate::error::CommandResult;
use crate::state::{AppState, TunnelView};

/// Opens a local tunnel to `environment` (`database` and `port` optional).
#[tauri::command]
pub async fn connect(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    environment: String,
    database: Option<String>,
    port: Option<u16>,
) -> CommandResult<TunnelView> {
    let t = state.connect(environment, database, port).await?;
    crate::tray::refresh(&app).await;
    Ok(t)
}

/// Closes the tunnel to `environment` and its connections.
#[tauri::command]
pub async fn disconnect(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    environment: String,
) -> CommandResult<()> {
    state.disconnect(&environment).await?;
    crate::tray::refresh(&app).await;
    Ok(())
}

/// The open tunnels.
#[tauri::command]
pub async fn tunnels(state: State<'_, AppState>) -> CommandResult<Vec<TunnelView>> {
    Ok(state.tunnels().await)
}

/// Whether the tunnels open when the app quits are reopened at its next start.
#[tauri::command]
pub fn reopen_setting(state: State<'_, AppState>) -> bool {
    state.reopen_setting()
}

#[tauri::command]
pub fn set_reopen_setting(state: State<'_, AppState>, on: bool) -> CommandResult<()> {
    state.set_reopen_setting(on)
}
