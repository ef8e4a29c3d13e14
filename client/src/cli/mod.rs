//! The `gatehouse` command line: argument definitions (clap) and dispatch to `commands.rs`.
//! Exit codes: 0 ok, 1 other failure, 2 usage, 3 log in (again), 4 refused by the gateway,
//! 5 not found, 6 gateway unreachable, 7 TLS certificate not trusted.

/// `println!` for everything below: a reader that went away (`gatehouse envs | head -1`) ends
/// the command quietly, as it ends `ls`, where std's macro would panic about a broken pipe. A
/// macro shadowing std's, rather than a call at every site, so no new line of output can forget.
macro_rules! println {
    () => {
        $crate::cli::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_line(format_args!($($arg)*))
    };
}

mod commands;
mod output;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Gatehouse: log in once, then reach databases through the gateway with any PostgreSQL tool.
#[derive(Parser, Debug)]
#[command(name = "gatehouse", version, about, long_about = None)]
pub struct Cli {
    /// Print JSON instead of tables and sentences (for scripts).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Log in to a gateway (SSO in the browser by default).
    Login(LoginArgs),
    /// Revoke this machine's session at the gateway and forget it here.
    Logout,
    /// Show who you are logged in as, where, and until when.
    Whoami,
    /// List the environments you may connect to.
    Envs,
    /// Open a local tunnel to an environment: any tool connects to 127.0.0.1 with no password.
    Connect(ConnectArgs),
    /// List approval requests: held statements, access and exemption requests.
    Approvals(ApprovalsArgs),
    /// Approve a pending statement or request (your own access request only as break-glass).
    Approve(DecideArgs),
    /// Deny a pending statement or request (a reason is required).
    Deny(DenyArgs),
    /// Ask for access to an environment for a while; its approvers decide.
    Request(RequestArgs),
    /// List your access requests, and the environments that take them.
    Requests,
    /// Withdraw one of your pending access requests.
    Withdraw(WithdrawArgs),
    /// Search the audit trail (administrators).
    Audit(AuditArgs),
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The gateway's URL, e.g. https://gatehouse.example.com (default: the last one used).
    #[arg(long, env = "GATEHOUSE_GATEWAY")]
    pub gateway: Option<String>,
    /// Log in as this local user (password from the terminal, or stdin when piped).
    #[arg(long, conflicts_with = "token")]
    pub user: Option<String>,
    /// Log in with a service account's token ("-" reads it from stdin).
    #[arg(long)]
    pub token: Option<String>,
    /// The gateway's PostgreSQL address, HOST:PORT (default: the one the gateway announces).
    #[arg(long, value_name = "HOST:PORT")]
    pub postgres: Option<String>,
    /// Trust the gateway's certificate through this CA (or the gateway's own certificate), PEM.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["tls_fingerprint", "insecure"])]
    pub ca_cert: Option<PathBuf>,
    /// Pin the gateway's certificate by its sha256 fingerprint.
    #[arg(long, value_name = "SHA256", conflicts_with = "insecure")]
    pub tls_fingerprint: Option<String>,
    /// Do not verify the gateway's TLS certificate at all (traffic is still encrypted).
    #[arg(long)]
    pub insecure: bool,
    /// Do not open a browser; print the SSO URL to open yourself.
    #[arg(long)]
    pub no_browser: bool,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The environment (see `gatehouse envs`).
    pub environment: String,
    /// Local port, remembered for this environment from then on (default: the one it had last
    /// time at this gateway, else a free one; 0: a free one now).
    #[arg(long, short)]
    pub port: Option<u16>,
    /// A database on the environment's server other than its default.
    #[arg(long, short)]
    pub database: Option<String>,
}

#[derive(Args, Debug)]
pub struct ApprovalsArgs {
    /// Only pending requests.
    #[arg(long, conflicts_with = "state")]
    pub pending: bool,
    /// Only requests in this state (pending, approved, used, denied, expired, withdrawn).
    #[arg(long)]
    pub state: Option<String>,
    /// Only this kind: statement, access or masking_exemption.
    #[arg(long)]
    pub kind: Option<String>,
}

#[derive(Args, Debug)]
pub struct DecideArgs {
    /// The approval's id (see `gatehouse approvals --pending`).
    pub id: String,
    /// Why (recorded in the audit trail).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Args, Debug)]
pub struct DenyArgs {
    /// The approval's id (see `gatehouse approvals --pending`).
    pub id: String,
    /// Why (recorded in the audit trail and shown to the requester).
    #[arg(long)]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The environment (see `gatehouse requests` for those that take requests).
    pub environment: String,
    /// How long you need it: 2h, 90m, 1h30m, 45s.
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: String,
    /// Why, for the approver.
    #[arg(long)]
    pub reason: String,
    /// An upstream role the environment offers (default: its own user).
    #[arg(long)]
    pub role: Option<String>,
    /// Approve it yourself at once, as a member of a break-glass group: short, announced to
    /// everyone watching, and reviewed afterwards.
    #[arg(long)]
    pub break_glass: bool,
}

#[derive(Args, Debug)]
pub struct WithdrawArgs {
    /// The request's id (see `gatehouse requests`).
    pub id: String,
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Free text, matched anywhere in a record.
    pub query: Option<String>,
    #[arg(long)]
    pub identity: Option<String>,
    #[arg(long, visible_alias = "env")]
    pub environment: Option<String>,
    /// An event (`statement`) or a prefix ending in a dot (`auth.`).
    #[arg(long)]
    pub event: Option<String>,
    /// Statement kind, e.g. DELETE.
    #[arg(long)]
    pub kind: Option<String>,
    /// RFC 3339 lower bound, inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// RFC 3339 upper bound, exclusive.
    #[arg(long)]
    pub to: Option<String>,
    /// Records per page (at most 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Continue from a previous page's cursor.
    #[arg(long)]
    pub cursor: Option<i64>,
}

/// Runs the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let out = output::Out::new(cli.json);
    match commands::run(cli.command, out).await {
        Ok(()) => 0,
        Err(e) => {
            if out.json {
                let body = serde_json::json!({"error": e.to_string(), "exit_code": e.exit_code()});
                eprintln!("{body}");
            } else {
                eprintln!("{} {e}", out_err(&out));
            }
            e.exit_code()
        }
    }
}

fn out_err(out: &output::Out) -> String {
    // Errors go to stderr; colour them only if stderr is a terminal too.
    use std::io::IsTerminal;
    if out.color && std::io::stderr().is_terminal() {
        out.red("error:")
    } else {
        "error:".into()
    }
}
