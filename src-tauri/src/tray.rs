//! The tray icon and its menu: show the window, how many approvals wait on the person (opens
//! Approvals), the open tunnels (each item copies nothing and
//! closes nothing by surprise: it shows the window), "Disconnect all", "Quit". The menu is
//! rebuilt whenever the session or the tunnels change, and the same change is sent to the UI as
//! the `tunnels-changed` event so an indicator can follow tunnels closed from the tray.

use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, Wry};

use crate::state::{AppState, TunnelView};

const TRAY_ID: &str = "gatehouse";

/// Creates the tray icon (once, at start-up).
pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let mut tray = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Gatehouse")
        .menu(&menu(app, &[], 0)?)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()));
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}

fn menu(app: &AppHandle, open: &[TunnelView], waiting: usize) -> tauri::Result<Menu<Wry>> {
    let menu = Menu::new(app)?;
    menu.append(&MenuItem::with_id(
        app,
        "show",
        "Show Gatehouse",
        true,
        None::<&str>,
    )?)?;
    if waiting > 0 {
        let label = match waiting {
            1 => "1 approval waits for you".to_string(),
            n => format!("{n} approvals wait for you"),
        };
        menu.append(&MenuItem::with_id(
            app,
            "approvals",
            label,
            true,
            None::<&str>,
        )?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    if open.is_empty() {
        menu.append(&MenuItem::with_id(
            app,
            "none",
            "No open tunnels",
            false,
            None::<&str>,
        )?)?;
    }
    for t in open {
        let label = format!("{} on 127.0.0.1:{}", t.environment, t.port);
        menu.append(&MenuItem::with_id(
            app,
            format!("tunnel:{}", t.environment),
            label,
            true,
            None::<&str>,
        )?)?;
    }
    menu.append(&MenuItem::with_id(
        app,
        "disconnect-all",
        "Disconnect all",
        !open.is_empty(),
        None::<&str>,
    )?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(
        app,
        "quit",
        "Quit Gatehouse",
        true,
        None::<&str>,
    )?)?;
    Ok(menu)
}

fn on_menu(app: &AppHandle, id: &str) {
    match id {
        "quit" => app.exit(0),
        "approvals" => crate::notify::open_approval(app, ""),
        "disconnect-all" => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                app.state::<AppState>().disconnect_all().await;
                refresh(&app).await;
            });
        }
        // "show" and a tunnel's item: bring the window up.
        _ => show_main(app),
    }
}

/// Shows, restores and focuses the main window.
pub fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Mirrors the current tunnels in the tray and tells the UI (`tunnels-changed`).
pub async fn refresh(app: &AppHandle) {
    let state = app.state::<AppState>();
    let open = state.tunnels().await;
    let waiting = state.waiting();
    if let Err(e) = app.emit("tunnels-changed", &open) {
        tracing::debug!(error = %e, "cannot send tunnels-changed");
    }
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let mut tooltip = match open.len() {
        0 => "Gatehouse".to_string(),
        1 => "Gatehouse: 1 tunnel open".to_string(),
        n => format!("Gatehouse: {n} tunnels open"),
    };
    if waiting > 0 {
        tooltip.push_str(&format!(", {waiting} waiting for you"));
    }
    let _ = tray.set_tooltip(Some(tooltip));
    // Menus belong to the main thread on some platforms; Tauri moves the call there.
    match menu(app, &open, waiting) {
        Ok(m) => {
            if let Err(e) = tray.set_menu(Some(m)) {
                tracing::warn!(error = %e, "cannot update the tray menu");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot build the tray menu"),
    }
}
