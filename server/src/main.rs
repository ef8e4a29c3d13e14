//! `gatehouse-server`: the command line. Thin: parse arguments, load the config, call the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use gatehouse_server::config::Config;
use gatehouse_server::gateway::Gateway;
use gatehouse_server::identity::tokens;

// Every statement allocates small, short-lived buffers on one thread and frees them on another
// (the audit writer); mimalloc's per-thread free lists take that without glibc's consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gatehouse-server",
    version,
    about = "Identity-aware access gateway for PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
        /// Log format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Check a config file and exit: 0 if valid, 2 with a message naming the key and line if not.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Audit trail commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Copy one gateway's SQLite store into an empty shared PostgreSQL store (`[store] url`),
    /// so it can run as the first of several replicas. Stop that gateway first.
    MigrateStore {
        /// `sqlite:PATH`: the `gatehouse.db` file, or the `data_dir` holding it.
        #[arg(long)]
        from: String,
        /// `postgresql://USER@HOST:PORT/DATABASE[?sslmode=...]`, as `[store] url`.
        #[arg(long)]
        to: String,
        /// Environment variable holding the shared store's password, as `[store] password_env`.
        #[arg(long)]
        password_env: Option<String>,
        /// The `server.replica_id` of the replica that will go on with this gateway's audit
        /// trail (needed when the source `data_dir` has one): the trail is copied as that
        /// replica's chain. Run that replica with the same `data_dir` (its signing key).
        #[arg(long)]
        replica: Option<String>,
    },
    /// Read a password on stdin and print its argon2id hash, for `[[users]] password_argon2`.
    HashPassword,
    /// Print a new service-account token and the sha256 to put in `[[service_accounts]] token_sha256`.
    NewToken,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every record's hash chain and every signed checkpoint. Exit 0 only if intact;
    /// otherwise print the first broken record and exit 1.
    Verify {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Move records older than `--before` (RFC 3339) into a verified archive file under
    /// `data_dir/archive/`. Refuses (exit 1) unless the whole trail verifies first.
    Archive {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        before: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: ok ({} environments, {} grants)",
                    config.display(),
                    c.environments.len(),
                    c.grants.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve { config, log_format } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            init_tracing(log_format);
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::MigrateStore {
            from,
            to,
            password_env,
            replica,
        } => match migrate_store(&from, &to, password_env.as_deref(), replica.as_deref()) {
            Ok((copied, audit)) => {
                for c in &copied {
                    println!("{:<20} {} rows", c.table, c.rows);
                }
                println!(
                    "copied {} rows into the shared store",
                    copied.iter().map(|c| c.rows).sum::<usize>()
                );
                match (audit, replica) {
                    (Some(a), Some(r)) => println!(
                        "copied the audit trail ({} records, {} signed checkpoints) as the chain of replica {r}; it verifies in the shared store",
                        a.records, a.checkpoints
                    ),
                    _ => println!("no audit trail to copy"),
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if config.store.is_some() {
                return verify_shared(&config);
            }
            match gatehouse_server::audit::verify::verify(&config.data_dir()) {
                Ok(Ok(s)) => {
                    println!(
                        "audit trail intact: {} records, {} signed checkpoints (last at record {})",
                        s.records,
                        s.checkpoints,
                        s.last_checkpoint.map_or("-".to_string(), |c| c.to_string())
                    );
                    ExitCode::SUCCESS
                }
                Ok(Err(b)) => {
                    println!("audit trail BROKEN at record {}: {}", b.seq, b.reason);
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("error: cannot verify the audit trail: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Archive { config, before },
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if config.store.is_some() {
                eprintln!("error: with a shared store the audit trail stays in PostgreSQL; archive files are for a gateway's own trail");
                return ExitCode::from(2);
            }
            if chrono::DateTime::parse_from_rfc3339(&before).is_err() {
                eprintln!("error: --before must be an RFC 3339 time such as 2026-01-31T00:00:00Z");
                return ExitCode::from(2);
            }
            match gatehouse_server::audit::archive::archive_before(&config.data_dir(), &before) {
                Ok(Some(r)) => {
                    println!(
                        "archived records {}..={} into {}",
                        r.first_seq, r.last_seq, r.file
                    );
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    println!("nothing to archive before {before}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::HashPassword => {
            let mut password = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut password) {
                eprintln!("error: cannot read the password from stdin: {e}");
                return ExitCode::FAILURE;
            }
            match gatehouse_server::identity::hash_password(password.trim_end_matches(['\r', '\n']))
            {
                Ok(h) => {
                    println!("{h}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::NewToken => {
            let token = tokens::generate(tokens::SERVICE_ACCOUNT_PREFIX);
            println!("token        = {token}");
            println!("token_sha256 = {}", tokens::sha256_hex(&token));
            ExitCode::SUCCESS
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    // Sessions run on their own workers (pg::workers); this runtime serves HTTP and accepts.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let gw = Gateway::build(config).context("preparing the gateway")?;
        gatehouse_server::serve::serve(gw).await.context("serving")
    })
}

/// `audit verify` on a shared store: every replica's chain.
fn verify_shared(config: &Config) -> ExitCode {
    let verified = (|| -> anyhow::Result<_> {
        let store = gatehouse_server::gateway::open_store(config).context("opening the store")?;
        let pg = store.pg().context("the store is not a shared one")?.clone();
        let data_dir = config.data_dir();
        let replica = config.replica_id();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        Ok(runtime.block_on(async move {
            gatehouse_server::audit::verify::verify_shared(&pg, &data_dir, &replica).await
        })?)
    })();
    match verified {
        Ok(Ok(chains)) => {
            for c in &chains {
                println!(
                    "chain {}: {} records, {} signed checkpoints (last at record {}), key {}",
                    c.replica,
                    c.summary.records,
                    c.summary.checkpoints,
                    c.summary
                        .last_checkpoint
                        .map_or("-".to_string(), |c| c.to_string()),
                    c.key_fingerprint
                );
            }
            println!(
                "audit trail intact: {} chains, {} records",
                chains.len(),
                chains.iter().map(|c| c.summary.records).sum::<i64>()
            );
            ExitCode::SUCCESS
        }
        Ok(Err((replica, b))) => {
            println!(
                "audit trail BROKEN in the chain of replica {replica} at record {}: {}",
                b.seq, b.reason
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: cannot verify the audit trail: {e:#}");
            ExitCode::FAILURE
        }
    }
}

type Migrated = (
    Vec<gatehouse_server::store::migrate::Copied>,
    Option<gatehouse_server::audit::import::Imported>,
);

fn migrate_store(
    from: &str,
    to: &str,
    password_env: Option<&str>,
    replica: Option<&str>,
) -> anyhow::Result<Migrated> {
    let path = std::path::Path::new(
        from.strip_prefix("sqlite:")
            .context("--from must be sqlite:PATH")?,
    );
    let data_dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(std::path::Path::new("."))
    };
    let has_trail = gatehouse_server::store::AuditDb::open_read_only(
        &gatehouse_server::audit::db_path(data_dir),
    )
    .and_then(|db| db.head())
    .is_ok_and(|h| h.is_some());
    if has_trail && replica.is_none() {
        anyhow::bail!(
            "{} has an audit trail: pass --replica with the server.replica_id of the replica that will go on with it (from this data_dir)",
            data_dir.display()
        );
    }
    let password = match password_env {
        Some(var) => Some(std::env::var(var).with_context(|| format!("{var} is not set"))?),
        None => None,
    };
    let settings = gatehouse_server::gateway::pg_settings(to, password, 2, "migrate-store".into())
        .context("--to")?;
    let store = gatehouse_server::store::postgres::PgStore::open(settings)
        .context("opening the shared store")?;
    let copied = gatehouse_server::store::migrate::sqlite_to_postgres(path, &store)?;
    let audit = match replica {
        Some(r) => gatehouse_server::audit::import::into_shared(data_dir, &store, r)
            .context("copying the audit trail")?,
        None => None,
    };
    Ok((copied, audit))
}

fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    let (targets, env_filter) = log_filter(std::env::var("GATEHOUSE_LOG").ok().as_deref());
    let text = matches!(format, LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let json = matches!(format, LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(targets)
        .with(env_filter)
        .with(text)
        .with(json)
        .init();
}

/// The log filter `GATEHOUSE_LOG` asks for (default `info`, the MCP SDK at `warn`: it logs
/// every session's id and client details at info, and our own `mcp.call` records say what
/// matters). Plain `target=level` lists are a `Targets` filter; only a spec with span or field
/// directives gets an `EnvFilter`, which takes a lock and a map lookup at every entry into a
/// span and every exit from one: every poll of every session.
fn log_filter(
    spec: Option<&str>,
) -> (
    Option<tracing_subscriber::filter::Targets>,
    Option<tracing_subscriber::EnvFilter>,
) {
    const DEFAULT: &str = "info,rmcp=warn";
    let spec = spec.map(str::trim).filter(|s| !s.is_empty());
    let Some(spec) = spec else {
        return (DEFAULT.parse().ok(), None);
    };
    if !spec.contains(['[', '{']) {
        if let Ok(targets) = spec.parse() {
            return (Some(targets), None);
        }
    }
    let env = tracing_subscriber::EnvFilter::try_new(spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT));
    (None, Some(env))
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn plain_log_specs_get_the_light_filter_and_span_directives_the_full_one() {
        for plain in [
            None,
            Some(""),
            Some("debug"),
            Some("info,gatehouse_server=trace"),
        ] {
            let (targets, env) = log_filter(plain);
            assert!(targets.is_some() && env.is_none(), "{plain:?}");
        }
        let (targets, env) = log_filter(Some("info,[session{identity=ana}]=debug"));
        assert!(targets.is_none() && env.is_some());
        // Not a filter at all: the default, as before.
        let (targets, env) = log_filter(Some("info,x=loud"));
        assert!(targets.is_none() && env.is_some());
    }
}
