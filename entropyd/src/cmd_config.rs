//! `get` and `set`: the esxcli `system entropyd` tunables on the config
//! store.

use std::io::Write;

use clap::Args;
use entropool::assess::AssessedCredit;
use entropool::config::{Param, ResetTarget, SetArg, SetRequest};
use entropool::{Error, Source, SourceConfig, Tunables};

use crate::cli::Context;
use crate::cmd_assess;
use crate::failure::Failure;

/// Arguments of `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Print the defaults instead of the current values.
    #[arg(long)]
    pub default_values: bool,
}

/// Arguments of `set` (each parameter at most once).
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Seconds without external entropy before it counts as lost (1..=86400).
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    pub external_entropy_lost_timeout: Option<String>,
    /// Percent of the memory cache below which it is refilled (0..=100).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub memory_cache_low_watermark: Option<String>,
    /// Memory cache size in KiB (1..=65536).
    #[arg(long, value_name = "KIB", allow_hyphen_values = true)]
    pub memory_cache_size: Option<String>,
    /// Storage cache size in KiB (0..=1048576; 0 = no storage cache).
    #[arg(long, value_name = "KIB", allow_hyphen_values = true)]
    pub storage_cache_size: Option<String>,
    /// Reset `all` tunables or the one NAMEd to its default (applied before
    /// the values given with this `set`).
    #[arg(long, value_name = "all|NAME")]
    pub reset: Vec<String>,
}

impl SetArgs {
    /// The value text given for `param`, if any.
    #[must_use]
    pub fn value(&self, param: Param) -> Option<&str> {
        match param {
            Param::ExternalEntropyLostTimeout => self.external_entropy_lost_timeout.as_deref(),
            Param::MemoryCacheLowWatermark => self.memory_cache_low_watermark.as_deref(),
            Param::MemoryCacheSize => self.memory_cache_size.as_deref(),
            Param::StorageCacheSize => self.storage_cache_size.as_deref(),
        }
    }

    /// Validate the whole request.
    ///
    /// # Errors
    /// An invalid-input [`Failure`] naming the parameter, the value and the
    /// accepted range.
    pub fn request(&self) -> Result<SetRequest, Failure> {
        let mut request = SetRequest::new();
        for target in &self.reset {
            let parsed = ResetTarget::parse(target).map_err(|_| {
                Failure::invalid(format!(
                    "--reset={target}: unknown parameter; accepted: all, {}",
                    names()
                ))
            })?;
            request
                .add(SetArg::Reset(parsed))
                .map_err(|e| describe(e, "reset", target))?;
        }
        for param in Param::ALL {
            if let Some(text) = self.value(param) {
                request
                    .set_text(param, text)
                    .map_err(|e| describe(e, param.name(), text))?;
            }
        }
        Ok(request)
    }
}

/// The four names, comma-separated.
fn names() -> String {
    Param::ALL.map(Param::name).join(", ")
}

/// An invalid-input failure for `e`, naming the parameter, the value and
/// the accepted range.
fn describe(e: Error, name: &str, text: &str) -> Failure {
    let range = Param::from_name(name).map_or_else(String::new, |p| {
        format!(
            "; accepted: {}..={} {}",
            p.min_value(),
            p.max_value(),
            p.unit()
        )
    });
    match e {
        Error::InvalidValue { .. } => Failure::invalid(format!("{e} {}", unit_of(name))),
        Error::MalformedValue { .. } => Failure::invalid(format!("{e}: got {text:?}{range}")),
        Error::DuplicateParameter { param } if param != "reset" => Failure::invalid(format!(
            "{e} (a parameter may not be both reset and set in one request)"
        )),
        _ => Failure::invalid(format!("--{name}={text}: {e}")),
    }
}

fn unit_of(name: &str) -> &'static str {
    Param::from_name(name).map_or("", Param::unit)
}

/// `get [--default-values]`: print the esxcli text. `get` adds one line,
/// [`CREDIT_LABEL`], with the interrupt credit in force and where it came
/// from, in its place in the label order (between the lost-timeout and the
/// memory-cache lines); `--default-values` prints the four esxcli lines
/// only, byte for byte.
///
/// # Errors
/// A runtime [`Failure`] naming the config file when it cannot be read or
/// is corrupt.
pub fn get(args: &GetArgs, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let text = if args.default_values {
        Tunables::DEFAULT.to_string()
    } else {
        let state = ctx.open_state()?;
        let tunables = state.load_config()?.tunables;
        with_credit_line(&tunables.to_string(), &credit_line(state.load_credit()?))
    };
    out.write_all(text.as_bytes())
        .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))
}

/// The label of the interrupt-credit line of `get`.
pub const CREDIT_LABEL: &str = "Interrupts Credit Bits Per Sample";

/// `get`'s line for the interrupt credit in force and where it came from.
#[must_use]
pub fn credit_line(record: Option<AssessedCredit>) -> String {
    match record {
        Some(r) => format!(
            "{CREDIT_LABEL}: {} (entropyd assess: min-entropy {}.{:06} bits per sample over {} samples)\n",
            cmd_assess::credit_bits(r.credit.units()),
            r.min_entropy_micro_bits / 1_000_000,
            r.min_entropy_micro_bits % 1_000_000,
            r.samples
        ),
        None => format!(
            "{CREDIT_LABEL}: {} (default: no assessment)\n",
            cmd_assess::credit_bits(SourceConfig::default_for(Source::Interrupts).credit.units())
        ),
    }
}

/// `esxcli` (lines sorted by label) with `line` inserted where its label
/// sorts, so `get` stays sorted by label.
fn with_credit_line(esxcli: &str, line: &str) -> String {
    let mut lines: Vec<&str> = esxcli.split_inclusive('\n').collect();
    let at = lines.iter().position(|l| *l > line).unwrap_or(lines.len());
    lines.insert(at, line);
    lines.concat()
}

/// `set ...`: validate the whole request, then apply it to the config
/// store atomically (the file keeps its owner and mode). Prints nothing,
/// except when a running daemon can take a value only at its next start
/// (a memory-cache-size beyond the slots it allocated, as its runtime file
/// says): then one line says so.
///
/// # Errors
/// An invalid-input [`Failure`] for a bad request or an empty one (nothing
/// changed); a runtime one when the store cannot be read, is corrupt, or
/// cannot be written (e.g. its owner cannot be kept).
pub fn set(args: &SetArgs, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    if args.reset.is_empty() && Param::ALL.iter().all(|&p| args.value(p).is_none()) {
        return Err(Failure::invalid(format!(
            "set: nothing to set; give --NAME=VALUE for any of {} or --reset=all|NAME",
            names()
        )));
    }
    let request = args.request()?;
    let state = ctx.open_state()?;
    let config = state.update_config(|config| config.tunables.apply(&request))?;
    if let Some(daemon) = crate::runtime::live(&ctx.state_dir) {
        let size = config.tunables.memory_cache_size_kib();
        if daemon.memory_slots_kib > 0 && size > daemon.memory_slots_kib {
            writeln!(
                out,
                "memory-cache-size={size} KiB takes effect when entropyd restarts: the running daemon (pid {}) allocated {} KiB at start and keeps its current size; the other values apply within a second",
                daemon.pid, daemon.memory_slots_kib
            )
            .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))?;
        }
    }
    Ok(())
}
