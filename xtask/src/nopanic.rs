//! The no-panic link check (`cargo xtask ci --only nopanic`).
//!
//! Builds `xtask/nopanic` in release (fat LTO, `panic = "abort"`): its
//! panic handler calls a symbol that nothing defines, so the link succeeds
//! only when the optimiser proved every panic unreachable from the entry
//! points it calls. When the link fails, the binary is built again with the
//! handler defined (feature `locate`) and its call graph, read with
//! `objdump`, names the functions that still reach a panic.

use std::collections::{BTreeMap, BTreeSet};

use crate::ci::{Ctx, Outcome, seed_lock};
use crate::cmd::Cmd;

const MANIFEST: &str = "xtask/nopanic/Cargo.toml";

fn build(ctx: &Ctx, locate: bool) -> Result<(), String> {
    let mut cmd = ctx
        .cargo()
        .args([
            "build",
            "--release",
            "--manifest-path",
            MANIFEST,
            "--target-dir",
        ])
        .arg(ctx.target.join("nopanic"));
    if locate {
        cmd = cmd.args(["--features", "locate"]);
    }
    cmd.run()
}

/// The gate step.
pub fn step(ctx: &Ctx) -> Result<Outcome, String> {
    seed_lock(ctx, MANIFEST, true)?;
    let Err(link_error) = build(ctx, false) else {
        println!("(no panic is reachable from the calls in xtask/nopanic/src/checks.rs)");
        return Ok(Outcome::Passed);
    };
    println!();
    println!("The no-panic link failed: a panic is reachable (or the crate did not build).");
    println!("Locating it: building again with the panic handler defined.");
    if build(ctx, true).is_ok() {
        let bin = ctx.target.join("nopanic/release/nopanic");
        match Cmd::new("objdump", &ctx.root)
            .args(["-d", "--no-show-raw-insn", "-C"])
            .arg(&bin)
            .probe()
        {
            Some(asm) => report(&asm),
            None => println!("(objdump is not available: cannot name the functions)"),
        }
    }
    Err(format!(
        "{link_error}\n  A panic is reachable from the calls in xtask/nopanic/src/checks.rs \
         (see the functions named above, if any). Make that path return an Err instead: \
         no unwrap/expect, no indexing or arithmetic that can panic."
    ))
}

/// Whether a function is one of core's panic entry points (or the handler).
fn is_panic_fn(name: &str) -> bool {
    name.contains("rust_begin_unwind")
        || name.starts_with("core::panicking::")
        || name.contains("unwrap_failed")
        || name.contains("expect_failed")
        || name.starts_with("core::slice::index::")
        || name.starts_with("core::str::slice_error_fail")
        || name.starts_with("core::result::unwrap_failed")
        || name.starts_with("core::option::")
        || name == "nopanic::panic"
}

/// Read `objdump -d -C` output: the direct callees (call/jmp) of each function.
fn call_graph(asm: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in asm.lines() {
        // "0000000000001a44 <core::panicking::panic_bounds_check>:"
        if let Some(rest) = line.strip_suffix(">:") {
            if let Some((_, name)) = rest.split_once(" <") {
                current = Some(name.to_owned());
                graph.entry(name.to_owned()).or_default();
            }
            continue;
        }
        let Some(func) = &current else { continue };
        // "    17fe:\tcall   1a44 <core::panicking::panic_bounds_check>"
        let Some((_, insn)) = line.split_once(":\t") else {
            continue;
        };
        let insn = insn.trim_start();
        if !(insn.starts_with("call") || insn.starts_with('j')) {
            continue;
        }
        if let (Some(open), Some(close)) = (insn.find('<'), insn.rfind('>')) {
            let target = insn.get(open + 1..close).unwrap_or("");
            let target = target.split('+').next().unwrap_or(target);
            if !target.is_empty() && target != func {
                graph
                    .entry(func.clone())
                    .or_default()
                    .insert(target.to_owned());
            }
        }
    }
    graph
}

/// Print the functions of entropool and of the checks that reach a panic.
fn report(asm: &str) {
    let graph = call_graph(asm);
    let mut reach: BTreeSet<String> = graph.keys().filter(|f| is_panic_fn(f)).cloned().collect();
    loop {
        let before = reach.len();
        for (f, callees) in &graph {
            if callees.iter().any(|c| reach.contains(c)) {
                reach.insert(f.clone());
            }
        }
        if reach.len() == before {
            break;
        }
    }
    let ours = |f: &str| f.contains("entropool") || f.starts_with("nopanic::checks::");
    let mut found = false;
    for (f, callees) in &graph {
        if !ours(f) || !reach.contains(f) {
            continue;
        }
        let via: Vec<&str> = callees
            .iter()
            .filter(|c| reach.contains(*c))
            .map(String::as_str)
            .collect();
        println!("  reaches a panic: {f}\n      via {}", via.join(", "));
        found = true;
    }
    if !found {
        println!(
            "  (no function of entropool or of the checks is named: the panic was inlined into main)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_graph_follows_calls_to_the_panic_functions() {
        let asm = "\
00000000000017b0 <nopanic::checks::config>:
    17fe:\tcall   1a44 <core::panicking::panic_bounds_check>
0000000000001810 <nopanic::checks::source>:
    18d5:\tjmp    1870 <nopanic::checks::source+0x60>
0000000000001a44 <core::panicking::panic_bounds_check>:
    1a48:\tcall   1a40 <core::panicking::panic_fmt>
";
        let g = call_graph(asm);
        assert!(g["nopanic::checks::config"].contains("core::panicking::panic_bounds_check"));
        assert!(g["nopanic::checks::source"].is_empty());
    }
}
