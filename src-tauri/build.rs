//! Tauri's build step: reads tauri.conf.json, checks that the frontend and icons it names
//! exist, and prepares the context `tauri::generate_context!` embeds.
fn main() {
    tauri_build::build()
}
