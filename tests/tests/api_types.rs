//! The web UI's API types come from one source, the gateway: its OpenAPI document (as a running
//! gateway serves it) is kept in `ui/src/api/openapi.json`, and `ui/src/api/gateway.ts` is what
//! `openapi-typescript` generates from it; `ui/src/api/client.ts` names its types from there.
//! This test fails when either file is stale, so a change to an API struct cannot leave the UI's
//! types behind. `npm run api-types` (which sets `GATEHOUSE_UPDATE_API_TYPES=1`) rewrites both.
//! The desktop shell's command types are checked the same way by `gatehouse-desktop`'s own test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gatehouse_tests::{run_cmd, GatewayBuilder};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn updating() -> bool {
    std::env::var("GATEHOUSE_UPDATE_API_TYPES").is_ok_and(|v| v == "1")
}

/// Compares `file` with `expected`, or rewrites it when updating.
fn check(file: &Path, expected: &str) {
    if updating() {
        std::fs::write(file, expected).expect("write");
        return;
    }
    let current = std::fs::read_to_string(file).unwrap_or_default();
    if current != expected {
        let line = current
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or_else(|| current.lines().count().min(expected.lines().count()) + 1);
        panic!(
            "{} is stale (first difference at line {line}): run `npm run api-types` and commit the result",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_api_types_match_the_gateways_openapi_document() {
    // The document does not depend on the environments; this one is never contacted.
    let gw = GatewayBuilder::new()
        .environment(
            "app",
            "development",
            "postgresql://nobody@127.0.0.1:1/app",
            None,
        )
        .start()
        .await;
    let doc: serde_json::Value = reqwest::get(format!("{}/api/v1/openapi.json", gw.http()))
        .await
        .expect("GET openapi.json")
        .json()
        .await
        .expect("OpenAPI JSON");
    assert!(doc["paths"]["/api/v1/whoami"].is_object(), "{doc}");
    let ui = repo_root().join("ui/src/api");
    let json_file = ui.join("openapi.json");
    check(
        &json_file,
        &(serde_json::to_string_pretty(&doc).expect("JSON") + "\n"),
    );

    let cli = repo_root().join("node_modules/openapi-typescript/bin/cli.js");
    assert!(
        cli.exists(),
        "{} is missing: scripts/install-deps.sh test installs it",
        cli.display()
    );
    // Every operation has its own operationId: generators key types by it, and a repeated one
    // would be renamed behind the code's back.
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(|ops| ops.as_object())
        .flat_map(|ops| ops.values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    ids.sort_unstable();
    let repeated: Vec<&&str> = ids
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| &w[0])
        .collect();
    assert!(repeated.is_empty(), "repeated operationIds: {repeated:?}");
    let out = run_cmd(
        Command::new("node")
            .arg(&cli)
            .arg(&json_file)
            .current_dir(repo_root()),
        Duration::from_secs(120),
    );
    assert!(out.ok(), "openapi-typescript failed: {out:?}");
    let header = "// Generated from openapi.json (the gateway's OpenAPI document) by openapi-typescript:\n\
                  // do not edit; `npm run api-types` regenerates it. client.ts names its types from here.\n";
    check(&ui.join("gateway.ts"), &format!("{header}{}", out.stdout));
}
