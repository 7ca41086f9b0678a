//! The command line: global options, the subcommands, and the dispatcher.
//!
//! To add a subcommand: write `cmd_NAME.rs` with `pub struct Args` (clap
//! `Args` derive) and `pub fn run(args: &Args, ctx: &Context, out: &mut dyn
//! Write) -> Result<(), Failure>`, add a variant to [`Command`], and one arm
//! to [`run`].

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use entropool::store::StateDir;
use rustls::ClientConfig;

use crate::auth::{ApiToken, TokenError};
use crate::client::{Client, ClientError, DaemonAddr};
use crate::failure::{EXIT_INVALID, Failure};
use crate::server::ListenAddr;
use crate::{
    cmd_assess, cmd_config, cmd_feed, cmd_generate, cmd_kickstart, cmd_reset_source, cmd_run,
    cmd_samples, cmd_status, cmd_submit,
};

/// `--listen`: the API address, `IP:PORT` or `unix:/path` (`run`, `submit`).
///
/// # Errors
/// Invalid input naming the bad address and the accepted forms.
pub fn listen_arg(text: &str) -> Result<ListenAddr, Failure> {
    text.parse()
        .map_err(|e: crate::server::ServerError| Failure::invalid(e.to_string()))
}

/// The TLS options of the commands that call a daemon over https
/// (`status`, `submit`, `feed`): one set of flags, one meaning, one
/// configuration ([`crate::tls::client_config`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsClientArgs {
    /// The CA certificates (PEM) that the daemon's certificate must chain
    /// to; needed for https (certificates are always verified).
    #[arg(long, value_name = "PEM", visible_alias = "tls-ca")]
    pub ca: Option<PathBuf>,
    /// A client certificate chain (PEM) for mutual TLS; needs --client-key.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, mode 0600 or 0400).
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl TlsClientArgs {
    /// The client TLS configuration, or `None` without `--ca`.
    ///
    /// # Errors
    /// A runtime failure naming a file that cannot be read; invalid input
    /// naming one that cannot be used (as `run` reports its TLS files).
    pub fn config(&self) -> Result<Option<Arc<ClientConfig>>, Failure> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let client = self.client_cert.as_deref().zip(self.client_key.as_deref());
        crate::tls::client_config(ca, client)
            .map(Some)
            .map_err(crate::tls::TlsError::into_failure)
    }
}

/// The options of the commands that call a running daemon (`status`,
/// `submit`): where it is, how long to wait for it, the token and TLS.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Where the daemon's API listens: IP:PORT (loopback), https://HOST:PORT
    /// (with --ca) or unix:/path (default: the address in the state
    /// directory's runtime file, else 127.0.0.1:8742).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Seconds to wait for a daemon that is starting.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::runtime::DEFAULT_WAIT_SECONDS,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub wait: u64,
    /// The API token file (mode 0600 or 0400): adds need it, and reads
    /// from a daemon off loopback without a client certificate. Sent over
    /// TLS or to loopback only.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// TLS: --ca, --client-cert, --client-key (as `feed`).
    #[command(flatten)]
    pub tls: TlsClientArgs,
}

impl ClientArgs {
    /// Checks `--listen` and loads the TLS configuration and the token,
    /// before any call or wait.
    ///
    /// # Errors
    /// Invalid input for a bad address, TLS file or token file (a token
    /// file that cannot be read is a runtime failure, as in `run`).
    pub fn load(&self) -> Result<ClientSetup, Failure> {
        let listen = self
            .listen
            .as_deref()
            .map(crate::runtime::Target::given)
            .transpose()
            .map_err(Failure::invalid)?;
        Ok(ClientSetup {
            listen,
            tls: self.tls.config()?,
            token: shared_token(self.token_file.as_deref())?,
        })
    }
}

/// What [`ClientArgs::load`] read: `--listen` (the daemon's address,
/// `IP:PORT`, `https://HOST:PORT` or `unix:/path`, parsed once), the TLS
/// configuration and the token, for every call the command makes.
#[derive(Debug, Clone)]
pub struct ClientSetup {
    listen: Option<crate::runtime::Target>,
    tls: Option<Arc<ClientConfig>>,
    token: Option<Arc<ApiToken>>,
}

impl ClientSetup {
    /// `--listen`, parsed, when given.
    #[must_use]
    pub fn listen(&self) -> Option<&crate::runtime::Target> {
        self.listen.as_ref()
    }

    /// A client for the daemon at `addr`, each call limited to `timeout`.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn client(&self, addr: &DaemonAddr, timeout: Duration) -> Result<Client, ClientError> {
        Client::connect(addr, self.tls.clone(), self.token.clone(), timeout)
    }
}

/// `--token-file` when given, as [`token_arg`], shared between calls.
///
/// # Errors
/// As [`token_arg`].
pub fn shared_token(path: Option<&Path>) -> Result<Option<Arc<ApiToken>>, Failure> {
    Ok(path.map(token_arg).transpose()?.map(Arc::new))
}

/// `--token-file`: the API token, read from a file of mode 0600 or 0400
/// (`run`, `status`, `submit`, `feed`).
///
/// # Errors
/// A runtime failure when the file cannot be read; invalid input when it
/// is not a regular file, group or others may access it, or it holds no
/// valid token.
pub fn token_arg(path: &Path) -> Result<ApiToken, Failure> {
    ApiToken::from_file(path).map_err(|e| match e {
        TokenError::Io { .. } => Failure::runtime(e.to_string()),
        _ => Failure::invalid(e.to_string()),
    })
}

/// The environment variable naming the state directory.
pub const STATE_DIR_ENV: &str = "ENTROPYD_STATE_DIR";

/// entropyd: the reference entropy daemon of entropool.
#[derive(Debug, Parser)]
#[command(name = "entropyd", version, about, long_about = None)]
pub struct Cli {
    /// The state directory (config store, staged seed, storage cache,
    /// runtime file); before or after the subcommand. Default:
    /// $ENTROPYD_STATE_DIR, else /var/lib/entropyd.
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the tunables (esxcli `system entropyd get`).
    Get(cmd_config::GetArgs),
    /// Change tunables; the whole request is validated before anything
    /// changes. Prints nothing on success, except a note when the running
    /// daemon can take a value only at its next start.
    Set(cmd_config::SetArgs),
    /// Validate a kickstart file and stage its `entropy` seed for the first
    /// start (no pool state yet: before the first run; a `set` before it is
    /// fine).
    Kickstart(cmd_kickstart::Args),
    /// Run the daemon: seed the kernel or a sink at start, then feed it
    /// at a bounded rate while keeping the caches full, and serve the API;
    /// SIGTERM saves the memory cache to the storage cache and exits 0.
    Run(cmd_run::Args),
    /// Show the pool's health: a running daemon's through the API, else
    /// what the state directory holds.
    Status(cmd_status::Args),
    /// Write N random bytes to stdout from a fresh in-process pool.
    Generate(cmd_generate::Args),
    /// Write raw timing samples (low 8 bits of each delta, one byte each)
    /// to stdout, for SP 800-90B assessment tools.
    Samples(cmd_samples::Args),
    /// Assess the interrupt source with the SP 800-90B non-IID estimators
    /// and record the credit it supports (half the min-entropy, at most 1
    /// bit per sample) for `run` and `generate`.
    Assess(cmd_assess::Args),
    /// Send stdin to a running daemon as external entropy.
    Submit(cmd_submit::Args),
    /// The HSM bridge: keep one or many hosts' external pools full from a
    /// PKCS#11 token or a device, never sending a byte twice.
    Feed(cmd_feed::Args),
    /// Re-enable the external source after the pool disabled it (health
    /// tests, or the screen for patterned data).
    ResetSource(cmd_reset_source::Args),
}

/// What every command gets besides its own arguments.
#[derive(Debug)]
pub struct Context {
    /// The state directory's path (not opened yet).
    pub state_dir: PathBuf,
    /// Whether it is the default (neither `--state-dir` nor
    /// `$ENTROPYD_STATE_DIR` named it).
    pub default_state_dir: bool,
}

impl Context {
    /// Open the state directory.
    ///
    /// # Errors
    /// A runtime [`Failure`] naming the path when it is not a directory.
    pub fn open_state(&self) -> Result<StateDir, Failure> {
        StateDir::open(&self.state_dir).map_err(Failure::from)
    }
}

/// The state directory: `--state-dir`, else a non-empty `$ENTROPYD_STATE_DIR`,
/// else [`StateDir::DEFAULT_PATH`].
#[must_use]
pub fn resolve_state_dir(flag: Option<PathBuf>, env: Option<OsString>) -> PathBuf {
    flag.or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(StateDir::DEFAULT_PATH))
}

/// Run a parsed command line, writing normal output to `out`.
///
/// # Errors
/// The command's [`Failure`].
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    let env = std::env::var_os(STATE_DIR_ENV);
    let default_state_dir = cli.state_dir.is_none() && env.as_ref().is_none_or(|v| v.is_empty());
    let ctx = Context {
        state_dir: resolve_state_dir(cli.state_dir, env),
        default_state_dir,
    };
    dispatch(&cli.command, &ctx, out).map_err(|f| with_state_dir_hint(f, &ctx))
}

/// A permission error on the default state directory gets a hint: the
/// user most likely meant a directory of their own.
fn with_state_dir_hint(f: Failure, ctx: &Context) -> Failure {
    let denied = f.message.contains("Permission denied") || f.message.contains("os error 13");
    let dir = ctx.state_dir.display().to_string();
    if ctx.default_state_dir && denied && f.message.contains(&dir) {
        Failure {
            message: format!(
                "{} (the default state directory {dir} belongs to the daemon: run as its user or root, or pick another with --state-dir=DIR or {STATE_DIR_ENV}=DIR)",
                f.message
            ),
            ..f
        }
    } else {
        f
    }
}

fn dispatch(command: &Command, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        Command::Get(args) => cmd_config::get(args, ctx, out),
        Command::Set(args) => cmd_config::set(args, ctx, out),
        Command::Kickstart(args) => cmd_kickstart::run(args, ctx, out),
        Command::Run(args) => cmd_run::run(args, ctx, out),
        Command::Status(args) => cmd_status::run(args, ctx, out),
        Command::Generate(args) => cmd_generate::run(args, ctx, out),
        Command::Samples(args) => cmd_samples::run(args, ctx, out),
        Command::Assess(args) => cmd_assess::run(args, ctx, out),
        Command::Submit(args) => cmd_submit::run(args, ctx, out),
        Command::Feed(args) => cmd_feed::run(args, ctx, out),
        Command::ResetSource(args) => cmd_reset_source::run(args, ctx, out),
    }
}

/// The binary's entry point: parse `std::env::args`, run, report.
#[must_use]
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors to
            // stderr with status 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = run(cli, &mut out).and_then(|()| {
        out.flush()
            .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("entropyd: {f}");
            f.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::failure::EXIT_FAILURE;

    #[test]
    fn listen_and_token_flags_fail_as_run_and_submit_report_them() {
        assert!(matches!(listen_arg("127.0.0.1:0"), Ok(ListenAddr::Tcp(_))));
        assert!(matches!(
            listen_arg("unix:/run/x.sock"),
            Ok(ListenAddr::Unix(_))
        ));
        let bad = listen_arg("localhost").unwrap_err();
        assert_eq!(bad.status, EXIT_INVALID);
        assert!(bad.message.contains("bad listen address"), "{bad}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        // Missing: a runtime failure (exit 1), as any I/O error.
        assert_eq!(token_arg(&path).unwrap_err().status, EXIT_FAILURE);
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(token_arg(&path).is_ok());
        // Readable by others, or too short: invalid input (exit 2).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(token_arg(&path).unwrap_err().status, EXIT_INVALID);
        std::fs::write(&path, "short").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(token_arg(&path).unwrap_err().status, EXIT_INVALID);
    }

    #[test]
    fn permission_errors_on_the_default_dir_get_a_hint() {
        let ctx = Context {
            state_dir: PathBuf::from(StateDir::DEFAULT_PATH),
            default_state_dir: true,
        };
        let denied = Failure::runtime(format!(
            "{}/config: Permission denied (os error 13)",
            StateDir::DEFAULT_PATH
        ));
        let hinted = with_state_dir_hint(denied.clone(), &ctx);
        assert!(hinted.message.contains("--state-dir=DIR"), "{hinted}");
        assert!(hinted.message.contains(STATE_DIR_ENV), "{hinted}");
        assert_eq!(hinted.status, denied.status);
        // Another error, or a directory the user chose: unchanged.
        let other = Failure::runtime(format!("{}/config: corrupt", StateDir::DEFAULT_PATH));
        assert_eq!(with_state_dir_hint(other.clone(), &ctx), other);
        let chosen = Context {
            default_state_dir: false,
            ..ctx
        };
        assert_eq!(with_state_dir_hint(denied.clone(), &chosen), denied);
    }
}
