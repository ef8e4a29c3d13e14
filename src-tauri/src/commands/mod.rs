//! The commands the UI calls with `window.__TAURI__.core.invoke(name, args)`, grouped by
//! screen. Each is a thin call into [`crate::state::AppState`]; the contract (names, arguments,
//! results) is the one in `docs/architecture.md`, shared with `ui/`.

pub mod api;
pub mod session;
pub mod tunnels;
