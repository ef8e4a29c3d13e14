//! Tidy checks on the source tree, in the spirit of rust-analyzer's: module docs everywhere,
//! `docs/architecture.md` naming only files that exist and its claims holding (where errors
//! become an `ErrorResponse` or an HTTP response, where SQLite is reached, which benches
//! exist), and layer boundaries kept.

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
        "server/benches",
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

/// Every file of the repository (but build outputs, installed tools and VCS data), relative.
fn repo_files() -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                if ![".git", "target", "node_modules", ".venv", ".tools", "dist"]
                    .contains(&name.as_str())
                {
                    walk(&p, root, out);
                }
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(format!("/{}", rel.to_string_lossy()));
            }
        }
    }
    let mut out = vec![];
    walk(&root(), &root(), &mut out);
    out
}

#[test]
fn architecture_doc_names_only_existing_non_rust_files() {
    let doc =
        std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let files = repo_files();
    let mut missing = vec![];
    for word in doc.split(|c: char| c.is_whitespace() || "`()[],;:".contains(c)) {
        let word = word.trim_end_matches('.');
        let named = [
            ".ts", ".tsx", ".sh", ".mjs", ".py", ".java", ".json", ".toml",
        ]
        .iter()
        .any(|ext| word.ends_with(ext));
        if named && !word.contains('*') && !word.starts_with("http") {
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

fn server_files() -> Vec<(PathBuf, String)> {
    let mut files = vec![];
    rust_files(&root().join("server/src"), &mut files);
    assert!(!files.is_empty());
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

/// docs/architecture.md: "only `pg/error.rs` encodes a `PgError` as an `ErrorResponse` frame
/// ... nothing outside `pg/` knows `PgError`".
#[test]
fn error_responses_are_encoded_only_in_pg_error() {
    for (f, text) in server_files() {
        let path = f.to_string_lossy().to_string();
        if !path.ends_with("server/src/pg/error.rs") {
            assert!(
                !text.contains("ErrorResponse::new"),
                "{path} builds an ErrorResponse itself; return a PgError and let pg/error.rs encode it"
            );
        }
        if !path.contains("/server/src/pg/") {
            assert!(
                !text.contains("PgError"),
                "{path} uses PgError outside pg/; map the error to a PostgreSQL one at the pg edge"
            );
        }
    }
}

/// docs/architecture.md: errors become an HTTP response "only in `http/error.rs` (its one
/// `impl IntoResponse`)", and `anyhow` is used only in `main.rs`.
#[test]
fn http_errors_become_responses_only_in_http_error() {
    let mut impls = vec![];
    for (f, text) in server_files() {
        let path = f.to_string_lossy().to_string();
        if text.contains("impl IntoResponse for")
            || text.contains("impl axum::response::IntoResponse for")
        {
            impls.push(path.clone());
        }
        if !path.ends_with("server/src/main.rs") {
            assert!(
                !text.contains("anyhow"),
                "{path} uses anyhow; only main.rs may"
            );
        }
    }
    assert_eq!(impls.len(), 1, "{impls:?}");
    assert!(impls[0].ends_with("server/src/http/error.rs"), "{impls:?}");
}

/// docs/architecture.md names every benchmark `server/Cargo.toml` declares, with the command
/// that runs it, and every file in `server/benches/` is one of them.
#[test]
fn architecture_doc_names_every_bench() {
    let doc =
        std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let manifest = std::fs::read_to_string(root().join("server/Cargo.toml")).unwrap();
    let mut declared = vec![];
    let mut in_bench = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if in_bench {
            if let Some(name) = line.strip_prefix("name = ") {
                declared.push(name.trim_matches('"').to_string());
            }
        }
    }
    assert!(
        !declared.is_empty(),
        "server/Cargo.toml declares no [[bench]]"
    );
    for name in &declared {
        assert!(
            root()
                .join("server/benches")
                .join(format!("{name}.rs"))
                .exists(),
            "bench {name} has no server/benches/{name}.rs"
        );
        assert!(
            doc.contains(&format!("`{name}.rs`")) && doc.contains(&format!("--bench {name}")),
            "docs/architecture.md does not describe the bench {name} and how to run it"
        );
    }
    for e in std::fs::read_dir(root().join("server/benches"))
        .unwrap()
        .flatten()
    {
        let file = e.file_name().to_string_lossy().to_string();
        let stem = file.trim_end_matches(".rs");
        assert!(
            declared.iter().any(|d| d == stem),
            "server/benches/{file} is not a [[bench]] in server/Cargo.toml"
        );
    }
}
