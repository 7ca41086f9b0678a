//! `assess`: an SP 800-90B assessment of the interrupt source on this
//! machine, and the credit it supports.
//!
//! Contract: `--source=interrupts [--count=N]` collects N raw samples
//! (default [`DEFAULT_COUNT`], the standard's one million; at least
//! [`MIN_COUNT`], at most [`MAX_COUNT`]) exactly as `samples` does, runs the
//! section 6.3 non-IID estimators of `entropool::assess` on them (8 bits
//! per sample, and their bits), and prints each estimate, `H_original`,
//! `H_bitstring` and the assessed min-entropy per sample. It then records
//! the credit it recommends, half the assessed min-entropy and never above
//! 1 bit per sample, in the state directory
//! ([`StateDir::CREDIT_FILE`]); `run` and `generate` credit the interrupt
//! source that much from then on (with health-test cutoffs computed from
//! it), and `get` shows it. A source with one value only (stuck) is
//! assessed at 0 and recommended 0. Nothing is recorded when collecting or
//! estimating fails. On a terminal, stderr shows a progress line.
//! `--input=FILE` assesses (and records) samples saved by `samples` instead
//! of collecting new ones.

use std::io::Write;

use clap::Args as ClapArgs;
use entropool::UNITS_PER_BIT;
use entropool::assess::{self, AssessedCredit, Assessment, Estimates};
use entropool::store::StateDir;

use crate::cli::Context;
use crate::cmd_samples;
use crate::failure::Failure;
use crate::progress::Progress;

/// Samples assessed by default (SP 800-90B 3.1.1).
pub const DEFAULT_COUNT: u64 = 1_000_000;
/// The fewest samples accepted (the multi-MCW estimate's minimum).
pub const MIN_COUNT: u64 = 4096;
/// The most samples accepted (the estimators keep about 150 bytes of
/// working memory per 8-bit sample).
pub const MAX_COUNT: u64 = 10_000_000;
/// Bits per raw sample (the low byte of each delta).
pub const BITS_PER_SAMPLE: u32 = 8;

/// Arguments of `assess`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The noise source: `interrupts` (the only one with raw samples).
    #[arg(long, value_name = "NAME")]
    pub source: String,
    /// How many samples to collect and assess.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_COUNT)]
    pub count: u64,
    /// Assess the samples in FILE (as `samples` writes them, one byte
    /// each; `--count` is then ignored) instead of collecting, e.g. to
    /// compare with NIST's tool on the same data.
    #[arg(long, value_name = "FILE")]
    pub input: Option<std::path::PathBuf>,
}

/// Collects, assesses, prints and records (see the module documentation).
///
/// # Errors
/// Invalid input for a bad source or count; runtime when collecting,
/// writing to stdout or recording the credit fails.
pub fn run(args: &Args, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    cmd_samples::check_source(&args.source)?;
    if let Some(path) = &args.input {
        let samples = read_samples(path)?;
        let state = ctx.open_state()?;
        return assess_and_record(&samples, &state, out).map(|_| ());
    }
    check_count(args.count)?;
    let len = usize::try_from(args.count)
        .map_err(|_| Failure::invalid(format!("--count={}: too large here", args.count)))?;
    let progress = Progress::new("collecting", args.count, "samples", true);
    let mut samples = Vec::with_capacity(len);
    let collected = cmd_samples::collect(args.count, &progress, |chunk| {
        samples.extend_from_slice(chunk);
        Ok(())
    });
    if let Err(f) = collected {
        progress.finish();
        return Err(f);
    }
    progress.message("estimating (SP 800-90B 6.3)");
    let result = ctx
        .open_state()
        .and_then(|state| assess_and_record(&samples, &state, out));
    progress.finish();
    result.map(|_| ())
}

/// Reads a samples file of [`MIN_COUNT`]`..=`[`MAX_COUNT`] bytes.
fn read_samples(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::invalid(format!("--input={}: {e}", path.display())))?;
    let mut samples = Vec::new();
    file.take(MAX_COUNT + 1)
        .read_to_end(&mut samples)
        .map_err(|e| Failure::invalid(format!("--input={}: {e}", path.display())))?;
    let n = u64::try_from(samples.len()).unwrap_or(u64::MAX);
    if !(MIN_COUNT..=MAX_COUNT).contains(&n) {
        return Err(Failure::invalid(format!(
            "--input={}: {} samples; accepted: {MIN_COUNT}..={MAX_COUNT} (one byte each)",
            path.display(),
            if n > MAX_COUNT {
                "more than 10000000".to_owned()
            } else {
                n.to_string()
            }
        )));
    }
    Ok(samples)
}

/// Checks `count` against [`MIN_COUNT`]`..=`[`MAX_COUNT`].
///
/// # Errors
/// An invalid-input [`Failure`] naming the value and the range.
pub fn check_count(count: u64) -> Result<(), Failure> {
    if (MIN_COUNT..=MAX_COUNT).contains(&count) {
        Ok(())
    } else {
        Err(Failure::invalid(format!(
            "--count={count}: out of range; accepted: {MIN_COUNT}..={MAX_COUNT} samples"
        )))
    }
}

/// Assesses `samples` (8 bits each), prints the report to `out` and records
/// the recommended credit in `state`. Returns the record.
///
/// # Errors
/// Invalid input when there are too few samples; runtime when stdout or
/// the state directory fails.
pub fn assess_and_record(
    samples: &[u8],
    state: &StateDir,
    out: &mut dyn Write,
) -> Result<AssessedCredit, Failure> {
    let a = assess::assess(samples, BITS_PER_SAMPLE)
        .map_err(|e| Failure::invalid(format!("cannot assess: {e}")))?;
    let record = AssessedCredit::from_assessment(
        a.min_entropy,
        u64::try_from(samples.len()).unwrap_or(u64::MAX),
    );
    let text = report(&a, samples.len(), &record);
    out.write_all(text.as_bytes())
        .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))?;
    state.save_credit(&record)?;
    let path = state.path().join(StateDir::CREDIT_FILE);
    out.write_all(format!("Recorded in {}\n", path.display()).as_bytes())
        .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))?;
    Ok(record)
}

/// Bits per sample as text with six decimals.
fn bits(x: f64) -> String {
    format!("{x:.6}")
}

fn estimates(text: &mut String, part: &str, e: &Estimates) {
    for (name, value) in e.named() {
        let shown = value.map_or_else(|| "n/a".to_owned(), bits);
        text.push_str(&format!("  {part:<9} {name:<21} {shown}\n"));
    }
}

/// The printed report.
fn report(a: &Assessment, n: usize, record: &AssessedCredit) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "Source: interrupts (CPU execution jitter; low {} bits of each delta), {n} samples, {} distinct values\n",
        a.bits_per_symbol, a.alphabet
    ));
    t.push_str(
        "SP 800-90B non-IID estimates (min-entropy, bits per sample; per bit for the bitstring):\n",
    );
    estimates(&mut t, "original", &a.original);
    if let Some(b) = &a.bitstring {
        estimates(&mut t, "bitstring", b);
    }
    t.push_str(&format!("H_original: {}\n", bits(a.h_original)));
    if let Some(hb) = a.h_bitstring {
        t.push_str(&format!(
            "H_bitstring: {} (x {} = {})\n",
            bits(hb),
            a.bits_per_symbol,
            bits(hb * f64::from(a.bits_per_symbol))
        ));
    }
    t.push_str(&format!(
        "Min-entropy: {} bits per sample\n",
        bits(a.min_entropy)
    ));
    t.push_str(&format!(
        "Recommended credit: {} bits per sample ({}/65536; half the min-entropy, at most 1)\n",
        credit_bits(record.credit.units()),
        record.credit.units()
    ));
    t
}

/// A credit in `1/65536`-bit units as bits with six decimals.
#[must_use]
pub fn credit_bits(units: u64) -> String {
    let whole = units / UNITS_PER_BIT;
    let frac = (units % UNITS_PER_BIT) * 1_000_000 / UNITS_PER_BIT;
    format!("{whole}.{frac:06}")
}
