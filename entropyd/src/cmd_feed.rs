//! `feed`: the HSM bridge. Reads one entropy source and keeps one or many
//! hosts' external pools full (see [`crate::feed`] for the contract).
//!
//! Contract of the command: everything is checked before the first byte is
//! read or any host is called: the source opens (an HSM logs in), every
//! URL parses (plain http to loopback only; https needs `--ca`), the TLS
//! files (whenever given, https hosts or not) and the token load. Any of that failing is exit 2 (bad input) or
//! 1 (the source or a TLS or token file cannot be opened), with a message
//! naming what. Then it
//! feeds: one status line per host after each of its rounds, on stdout.
//! `--once` makes one round per host and exits 0 when every host is full,
//! else 1. Without it the feeder runs until SIGTERM or SIGINT (exit 0) or
//! until the source fails or ends (exit 1).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{ArgGroup, Args as ClapArgs};

use crate::cli::{self, Context};
use crate::failure::Failure;
use crate::feed::hsm::Pkcs11Source;
use crate::feed::http::{HostUrl, HttpLink};
use crate::feed::source::FileSource;
use crate::feed::{self, EntropySource, FeedEnd, HostFeeder, HostLink, MAX_PIECE, SharedSource};
use crate::signals::Shutdown;

/// Arguments of `feed`.
#[derive(Debug, ClapArgs)]
#[command(group(ArgGroup::new("source").required(true).args(["from_pkcs11", "from_file"])))]
#[command(group(ArgGroup::new("hosts").required(true).multiple(true).args(["to", "hosts_file"])))]
pub struct Args {
    /// The PKCS#11 module (a .so) whose token's C_GenerateRandom is the
    /// source; needs --slot.
    #[arg(long, value_name = "MODULE.so", requires = "slot")]
    pub from_pkcs11: Option<PathBuf>,
    /// The PKCS#11 slot ID of the token.
    #[arg(long, value_name = "N", requires = "from_pkcs11")]
    pub slot: Option<u64>,
    /// A file holding the token's user PIN (mode 0600 or 0400).
    #[arg(long, value_name = "PATH", requires = "from_pkcs11")]
    pub pin_file: Option<PathBuf>,
    /// A device such as /dev/hwrng, or a file, read once front to back.
    #[arg(long, value_name = "PATH")]
    pub from_file: Option<PathBuf>,
    /// A host to feed: https://HOST:PORT (or http:// to loopback only).
    /// Repeatable.
    #[arg(long, value_name = "URL")]
    pub to: Vec<String>,
    /// A file of host URLs, one per line (blank lines and # comments
    /// ignored).
    #[arg(long, value_name = "PATH")]
    pub hosts_file: Option<PathBuf>,
    /// Seconds between rounds; default half each host's
    /// inactive_source_timeout.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub interval: Option<u64>,
    /// One round per host; exit 0 when every host is full, else 1.
    #[arg(long)]
    pub once: bool,
    /// TLS: --ca, --client-cert, --client-key (as `status` and `submit`).
    #[command(flatten)]
    pub tls: cli::TlsClientArgs,
    /// The hosts' API token file (mode 0600 or 0400).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Seconds one call to a host may take, connecting included.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
}

/// The host URLs of `--to` and `--hosts-file`, parsed, in order.
fn host_urls(args: &Args) -> Result<Vec<HostUrl>, Failure> {
    let mut texts: Vec<String> = args.to.clone();
    if let Some(path) = &args.hosts_file {
        let content = std::fs::read_to_string(path).map_err(|e| {
            Failure::invalid(format!(
                "cannot read the hosts file {}: {e}",
                path.display()
            ))
        })?;
        texts.extend(
            content
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if texts.is_empty() {
        return Err(Failure::invalid(
            "no host to feed: give --to=URL or a non-empty --hosts-file",
        ));
    }
    let mut urls = Vec::with_capacity(texts.len());
    for text in texts {
        let url = HostUrl::parse(&text).map_err(|e| Failure::invalid(e.to_string()))?;
        if urls.iter().any(|u: &HostUrl| u.text == url.text) {
            return Err(Failure::invalid(format!(
                "host {} is named twice",
                url.text
            )));
        }
        urls.push(url);
    }
    Ok(urls)
}

fn open_source(args: &Args) -> Result<Box<dyn EntropySource>, Failure> {
    if let Some(module) = &args.from_pkcs11 {
        let slot = args
            .slot
            .ok_or_else(|| Failure::invalid("--from-pkcs11 needs --slot=N"))?;
        let source = Pkcs11Source::open(module, slot, args.pin_file.as_deref())
            .map_err(|e| Failure::runtime(e.to_string()))?;
        return Ok(Box::new(source));
    }
    if let Some(path) = &args.from_file {
        let source = FileSource::open(path).map_err(|e| Failure::runtime(e.to_string()))?;
        return Ok(Box::new(source));
    }
    Err(Failure::invalid(
        "give one source: --from-pkcs11=MODULE.so --slot=N, or --from-file=PATH",
    ))
}

/// Runs the feeder.
///
/// # Errors
/// Invalid input (exit 2) for a bad URL, hosts file, TLS file or token
/// file; a runtime failure (exit 1) when the source, a TLS file or the
/// token file cannot be opened, when the source fails or ends, or with
/// `--once` when a host is not full.
pub fn run(args: &Args, _ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    if args.from_pkcs11.is_none() && (args.slot.is_some() || args.pin_file.is_some()) {
        return Err(Failure::invalid(
            "--slot and --pin-file go with --from-pkcs11=MODULE.so",
        ));
    }
    let urls = host_urls(args)?;
    // The TLS files load whenever they are given, https hosts or not, so a
    // bad one is reported; only an https host needs them (HttpLink::new
    // refuses one without --ca, and gives an http host no TLS).
    if args.tls.ca.is_none() && args.tls.client_cert.is_some() {
        return Err(Failure::invalid(
            "--client-cert and --client-key go with --ca=PEM",
        ));
    }
    let tls = args.tls.config()?;
    let token = cli::shared_token(args.token_file.as_deref())?;
    let timeout = Duration::from_secs(args.timeout);
    let mut hosts = Vec::with_capacity(urls.len());
    for url in urls {
        let link = HttpLink::new(url, tls.clone(), token.clone(), timeout)
            .map_err(|e| Failure::invalid(e.to_string()))?;
        let link: Box<dyn HostLink> = Box::new(link);
        hosts.push(HostFeeder::new(
            link,
            args.interval.map(Duration::from_secs),
            MAX_PIECE,
        ));
    }
    // Signals first, so a SIGTERM during a slow HSM login is not lost.
    let shutdown = if args.once {
        Shutdown::manual()
    } else {
        Shutdown::install()
            .map_err(|e| Failure::runtime(format!("cannot install signal handlers: {e}")))?
    };
    let source = SharedSource::new(open_source(args)?);
    let flag = shutdown.flag();
    let stop: &AtomicBool = &flag;
    let (end, hosts) = feed::run(hosts, &source, args.once, stop, out);
    let _ = out.flush();
    stop.store(true, Ordering::Relaxed);
    match end {
        FeedEnd::AllFull | FeedEnd::Stopped => Ok(()),
        FeedEnd::NotAllFull => {
            let not_full: Vec<&str> = hosts
                .iter()
                .filter(|h| !(h.status().ok && h.status().full))
                .map(HostFeeder::name)
                .collect();
            Err(Failure::runtime(format!(
                "not every host is full after one round: {}",
                not_full.join(", ")
            )))
        }
        FeedEnd::Source(stop) => Err(Failure::runtime(format!(
            "feeding stopped: {stop} ({} bytes read)",
            source.bytes_read()
        ))),
    }
}
