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
    // The gateway names several operations `list` (one per handler module), which TypeScript
    // cannot hold in one `operations` interface: the generator gets a copy where a repeated
    // operationId is made unique from its method and path.
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("openapi.json");
    std::fs::write(
        &input,
        serde_json::to_string(&unique_operation_ids(doc.clone())).expect("JSON"),
    )
    .expect("write");
    let out = run_cmd(
        Command::new("node")
            .arg(&cli)
            .arg(&input)
            .current_dir(repo_root()),
        Duration::from_secs(120),
    );
    assert!(out.ok(), "openapi-typescript failed: {out:?}");
    let header = "// Generated from openapi.json (the gateway's OpenAPI document) by openapi-typescript:\n\
                  // do not edit; `npm run api-types` regenerates it. client.ts names its types from here.\n";
    check(&ui.join("gateway.ts"), &format!("{header}{}", out.stdout));
}

/// The document with each operationId that appears more than once replaced by one made of the
/// operation's method and path (`get_api_v1_approvals`).
fn unique_operation_ids(mut doc: serde_json::Value) -> serde_json::Value {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for ops in paths.values() {
        for op in ops.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(id) = op["operationId"].as_str() {
                *seen.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, ops) in paths.iter_mut() {
            for (method, op) in ops.as_object_mut().into_iter().flat_map(|o| o.iter_mut()) {
                let repeated = op["operationId"]
                    .as_str()
                    .is_some_and(|id| seen.get(id).copied().unwrap_or(0) > 1);
                if repeated {
                    let words: Vec<&str> = path
                        .split(|c: char| !c.is_ascii_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .collect();
                    op["operationId"] = format!("{method}_{}", words.join("_")).into();
                }
            }
        }
    }
    doc
}
