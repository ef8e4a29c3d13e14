//! Gatehouse desktop app: a Tauri v2 shell over `gatehouse-client`. The UI (`ui/dist`, built
//! by Vite, embedded in the binary) is the same one the gateway serves as its web console; here
//! it calls the commands in `commands/` instead of `fetch`. The shell signs in (local user, or
//! SSO in the system browser with the RFC 8252 loopback flow), keeps the session fresh in the
//! OS keychain or a private file (shared with the `gatehouse` CLI), makes the UI's API calls
//! with the session's token, and runs local tunnels on stable ports (reopened at the next start);
//! the tray shows them and how many approvals wait on the person, whom `notify` tells, with OS
//! notifications, about approvals waiting on them and decisions on their own.
#![forbid(unsafe_code)]

use tauri::Manager;

mod commands;
pub mod error;
pub mod notify;
pub mod state;
mod tray;
#[cfg(test)]
mod ui_types;

/// Builds and runs the app until it quits. Tunnels stop with it.
pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
                .unwrap_or_else(|_| "gatehouse_desktop=info,gatehouse_client=info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();

    let state = match state::AppState::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse-desktop: {e}");
            std::process::exit(2);
        }
    };

    let result = tauri::Builder::default()
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            commands::session::session_info,
            commands::session::login_password,
            commands::session::login_sso,
            commands::session::logout,
            commands::session::gateway_has_sso,
            commands::api::api_request,
            commands::tunnels::connect,
            commands::tunnels::disconnect,
            commands::tunnels::tunnels,
            commands::tunnels::reopen_setting,
            commands::tunnels::set_reopen_setting,
        ])
        .setup(|app| {
            // A desktop without a tray host (a bare X server) still runs the app: the window
            // is the way in, the tray an extra.
            if let Err(e) = tray::create(app.handle()) {
                tracing::warn!(error = %e, "no tray icon");
            }
            // The tunnels that were open when the app quit, on their ports; then the watch
            // that notifies the person.
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                let opened = handle.state::<state::AppState>().reopen_tunnels().await;
                if !opened.is_empty() {
                    tracing::info!(
                        tunnels = opened.len(),
                        "reopened the tunnels open at the last quit"
                    );
                }
                tray::refresh(&handle).await;
                notify::run(handle).await;
            });
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("gatehouse-desktop: {e}");
        std::process::exit(1);
    }
}
