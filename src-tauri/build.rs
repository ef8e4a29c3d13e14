//! Tauri's build step: reads tauri.conf.json, prepares the context `tauri::generate_context!`
//! embeds (the UI from `ui/dist`, the icons, the capabilities).
//!
//! `ui/dist` is a build output of `ui/` (`npm --prefix ui run build`; scripts/test.sh does it
//! first). So that `cargo build --workspace` still works where it has not been built, the app
//! then embeds a one-page stand-in that says how to build the UI, and cargo warns.

use std::path::{Path, PathBuf};

fn main() {
    let dist = Path::new("../ui/dist");
    // Re-embed when the UI is rebuilt. (While it is missing this reruns on every build, which
    // also picks it up as soon as it appears.)
    println!("cargo:rerun-if-changed=../ui/dist");
    if !dist.join("index.html").exists() {
        let stand_in = stand_in_ui();
        println!(
            "cargo:warning=ui/dist is missing: the app shows a stand-in page; run `npm --prefix ui ci && npm --prefix ui run build`, then build again"
        );
        let config = serde_json::json!({ "build": { "frontendDist": stand_in } }).to_string();
        // tauri-build reads the override from its own environment, generate_context! (in the
        // crate's compilation) from rustc's.
        std::env::set_var("TAURI_CONFIG", &config);
        println!("cargo:rustc-env=TAURI_CONFIG={config}");
    }
    tauri_build::build()
}

fn stand_in_ui() -> PathBuf {
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("ui-missing");
    std::fs::create_dir_all(&dir).expect("create the stand-in UI dir");
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Gatehouse</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>Gatehouse</h1>\
         <p>This build of the desktop app has no user interface: <code>ui/dist</code> was not \
         built.</p><p>Run <code>npm --prefix ui ci &amp;&amp; npm --prefix ui run build</code>, \
         then <code>cargo build -p gatehouse-desktop</code> again.</p></body></html>",
    )
    .expect("write the stand-in UI");
    dir
}
