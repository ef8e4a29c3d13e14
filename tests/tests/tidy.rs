//! Tidy checks on the source tree, in the spirit of rust-analyzer's: module docs everywhere,
//! `docs/architecture.md` naming only files that exist, and layer boundaries kept.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn sources() -> Vec<PathBuf> {
    let mut files = vec![];
    for dir in [
        "server/src",
        "server/tests",
        "client/src",
        "src-tauri/src",
        "tests/src",
        "tests/tests",
    ] {
        rust_files(&root().join(dir), &mut files);
    }
    // Build scripts are code too.
    for krate in ["server", "client", "src-tauri", "tests"] {
        let build = root().join(krate).join("build.rs");
        if build.exists() {
            files.push(build);
        }
    }
    files
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let missing: Vec<_> = sources()
        .into_iter()
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim_start()
                .starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` module doc: {missing:?}"
    );
}

#[test]
fn architecture_doc_names_only_existing_files() {
    let doc =
        std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let files: Vec<String> = sources()
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    let mut missing = vec![];
    for word in doc.split(|c: char| c.is_whitespace() || "`()[],;:".contains(c)) {
        if word.ends_with(".rs") && !word.contains('*') {
            let suffix = format!("/{}", word.trim_start_matches("./"));
            if !files.iter().any(|f| f.ends_with(&suffix)) {
                missing.push(word.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md names files that do not exist: {missing:?}"
    );
}

#[test]
fn identity_and_store_know_nothing_of_sockets_or_http() {
    let mut files = vec![];
    rust_files(&root().join("server/src/identity"), &mut files);
    rust_files(&root().join("server/src/store"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for forbidden in ["crate::pg", "crate::http", "tokio::net", "axum"] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}",
                f.display()
            );
        }
    }
}

#[test]
fn policy_knows_nothing_of_sockets_or_http() {
    let mut files = vec![];
    rust_files(&root().join("server/src/policy"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for forbidden in ["crate::pg", "crate::http", "tokio::net", "axum"] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}",
                f.display()
            );
        }
    }
}

#[test]
fn sql_lives_only_in_the_store() {
    let mut files = vec![];
    rust_files(&root().join("server/src"), &mut files);
    for f in files
        .iter()
        .filter(|f| !f.to_string_lossy().contains("/store/"))
    {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("rusqlite::"),
            "{} talks to SQLite directly; go through store/",
            f.display()
        );
    }
}
