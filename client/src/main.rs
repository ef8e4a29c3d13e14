//! The `gatehouse` command: parses arguments and runs them on a tokio runtime. Everything else
//! is in `cli/` (commands and output) and the `gatehouse_client` library.
#![forbid(unsafe_code)]

mod cli;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    // One thread: a tunnel relays bytes for a handful of local tools, and with every connection
    // on one thread its two directions never wake each other across cores (on a busy laptop that
    // halves the context switches per round trip).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(cli::run(cli));
    // Do not wait for lingering connection tasks: the command is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(code);
}
