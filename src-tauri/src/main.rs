//! The `gatehouse-desktop` binary: starts the app built in `lib.rs`.
#![forbid(unsafe_code)]
// No console window next to the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    gatehouse_desktop::run();
}
