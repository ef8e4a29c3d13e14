//! The UI/desktop contract's types come from one source, the Rust structs the commands return:
//! `ui/src/api/desktop-types.ts` is generated from them (ts-rs), and this test fails when it is
//! stale. `npm run api-types` (which sets `GATEHOUSE_UPDATE_API_TYPES=1`) rewrites it.

use ts_rs::TS;

use crate::state::{SessionInfo, TunnelView};

fn generated() -> String {
    let mut out = String::from(
        "// Generated from src-tauri/src/state.rs (the desktop shell's command results) by ts-rs:\n\
         // do not edit; `npm run api-types` regenerates it. desktop.ts names its types from here.\n",
    );
    for decl in [SessionInfo::decl(), TunnelView::decl()] {
        out.push_str("\nexport ");
        out.push_str(&decl);
        out.push('\n');
    }
    out
}

#[test]
fn desktop_types_in_the_ui_are_generated_from_the_command_results() {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/api/desktop-types.ts");
    let expected = generated();
    if std::env::var("GATEHOUSE_UPDATE_API_TYPES").is_ok_and(|v| v == "1") {
        std::fs::write(&file, &expected).expect("write desktop-types.ts");
        return;
    }
    let current = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        current == expected,
        "{} is stale: run `npm run api-types` and commit the result\n--- expected ---\n{expected}",
        file.display()
    );
}
