//! `cargo xtask firmware [--size]`: entropool on an emulated Cortex-M4F.
//!
//! - Checks that the README's Firmware section still shows the example's
//!   code (the `// ANCHOR: name` regions of `examples/cortex-m/src/`).
//! - Builds `examples/cortex-m` (its own workspace) in release for
//!   `thumbv7em-none-eabihf` (added with rustup when missing) into
//!   `<target>/firmware`, and runs it under `qemu-system-arm -machine
//!   mps2-an386` with a timeout. QEMU's semihosting exit status is the
//!   verdict. A missing qemu-system-arm is installed with apt when running
//!   as root (CI), otherwise the step fails saying what to install: it never
//!   skips.
//! - `--size` builds the footprint variants and prints `.text`, `.rodata`,
//!   `.data` and `.bss` read from the ELF section headers (no llvm-tools
//!   needed), the bytes per crate, and the goals; it fails when (b) is
//!   over the flash goal or over the static RAM goal (beyond the caller's
//!   slots; see [`CALLER_STORAGE`]), naming the figure and the goal.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ci::{Ctx, EMBEDDED_TARGET, Outcome};
use crate::cmd::Cmd;

/// The example crate, relative to the repository root.
const DIR: &str = "examples/cortex-m";
/// QEMU's arguments before the ELF path (the same as the runner in
/// `examples/cortex-m/.cargo/config.toml`; a test keeps them equal).
const QEMU_ARGS: &[&str] = &[
    "-cpu",
    "cortex-m4",
    "-machine",
    "mps2-an386",
    "-nographic",
    "-semihosting-config",
    "enable=on,target=native",
    "-kernel",
];
/// The whole run takes about a second; the machine may be very busy.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// The README code blocks, in order: (file under the example's `src/`,
/// anchor).
const README_ANCHORS: &[(&str, &str)] = &[
    ("main.rs", "statics"),
    ("main.rs", "handler"),
    ("main.rs", "pool"),
    ("main.rs", "main-loop"),
    ("flash.rs", "flash-write"),
];
/// The footprint builds: label and the example's features. (b) is the
/// one the goals apply to (PoolRng with one lane and a 288-byte buffer);
/// (b') keeps the earlier configuration's figure (two lanes, 512 bytes).
const VARIANTS: &[(&str, &str)] = &[
    ("(a) pool: interrupts + external, no DRBG", ""),
    ("(b) (a) + HMAC_DRBG and PoolRng (1 lane, 288)", "rng"),
    ("(b') (b) with PoolRng 2 lanes, 512-byte buffer", "rng,bulk"),
    ("(c) (b) + 1 KiB storage cache on NOR flash", "rng,flash"),
];
/// Goals for (b) (issue 16): flash, and static RAM beyond the caller's
/// slots.
const FLASH_GOAL: u64 = 24 * 1024;
const RAM_GOAL: u64 = 2 * 1024;
/// The caller's slots: the statics of `examples/cortex-m/src/bin/footprint.rs`
/// that hold storage the integrator sizes and hands to the library, not
/// counted against the RAM goal. They are found in the ELF symbol table
/// by (legacy-mangled) name, in `.bss`, `.data` or `.uninit`, and counted
/// at their symbol's size:
/// - `INTERRUPT_SLOTS`: the interrupt ring's storage, 64 `Slot<u64>`
///   (512 bytes);
/// - `MEMORY`: the memory cache's slots, 32 `BlockSlot`s (1 KiB of
///   entropy);
/// - `STORE_FLASH`: the emulated NOR flash region of (c) (flash on a
///   device).
///
/// Each is a `ConstStaticCell`, so its symbol also holds the cell's
/// one-byte "taken" flag and alignment padding (a few bytes counted as the
/// caller's). Everything else in `.data` and `.bss` counts: the pool, the
/// rings' control blocks, PoolRng (lanes and output buffer), the handler's
/// recorder, the tick counter, cortex-m-rt's and alignment gaps.
const CALLER_STORAGE: &[&str] = &["15INTERRUPT_SLOTS", "6MEMORY", "11STORE_FLASH"];

/// `cargo xtask firmware [--size | --bless-readme]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut size = false;
    let mut bless = false;
    for arg in args {
        match arg.as_str() {
            "--size" => size = true,
            "--bless-readme" => bless = true,
            other => return Err(format!("unknown option `{other}` to `firmware`")),
        }
    }
    let ctx = Ctx::discover()?;
    if bless {
        bless_readme(&ctx)
    } else if size {
        footprint(&ctx)
    } else {
        check_and_run(&ctx)
    }
}

/// The gate step: the README check, the build, the QEMU run, the sizes.
pub fn step(ctx: &Ctx) -> Result<Outcome, String> {
    check_and_run(ctx)?;
    footprint(ctx)?;
    Ok(Outcome::Passed)
}

fn check_and_run(ctx: &Ctx) -> Result<(), String> {
    check_readme(ctx)?;
    ensure_target(ctx)?;
    let qemu = ensure_qemu(ctx)?;
    build(ctx, None)?;
    let elf = elf_path(ctx, "entropool-cortex-m");
    let mut cmd = Command::new(&qemu);
    cmd.args(QEMU_ARGS).arg(&elf).stdin(Stdio::null());
    println!("$ {qemu} {} {}", QEMU_ARGS.join(" "), elf.display());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start {qemu}: {e}"))?;
    let started = Instant::now();
    // Bounded: polls every 50 ms until the timeout, then kills QEMU.
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                println!(
                    "(firmware passed under QEMU in {:.1} s)",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Ok(Some(status)) => {
                return Err(format!(
                    "the firmware failed under QEMU ({status}): see its output above"
                ));
            }
            Ok(None) if started.elapsed() > RUN_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the firmware did not finish within {} s under QEMU (killed)",
                    RUN_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for QEMU: {e}")),
        }
    }
}

/// `<target>/firmware/thumbv7em-none-eabihf/release/<bin>`.
fn elf_path(ctx: &Ctx, bin: &str) -> PathBuf {
    ctx.target
        .join("firmware")
        .join(EMBEDDED_TARGET)
        .join("release")
        .join(bin)
}

/// `cargo build --release` in the example's directory (so its
/// `.cargo/config.toml` applies), all binaries, or the footprint binary
/// with `features`. Not `--locked`: the example's Cargo.lock follows the
/// library's dependencies when they change.
fn build(ctx: &Ctx, footprint_features: Option<&str>) -> Result<(), String> {
    let mut cmd = Cmd::new("cargo", &ctx.path(DIR))
        .args(["build", "--release", "--target-dir"])
        .arg(ctx.target.join("firmware"));
    if let Some(features) = footprint_features {
        cmd = cmd.args(["--bin", "footprint"]);
        if !features.is_empty() {
            cmd = cmd.args(["--features", features]);
        }
    }
    cmd.run()
}

fn ensure_target(ctx: &Ctx) -> Result<(), String> {
    let libdir = Cmd::new("rustc", &ctx.root)
        .args(["--print", "target-libdir", "--target", EMBEDDED_TARGET])
        .probe()
        .map(|s| PathBuf::from(s.trim()));
    if libdir.as_ref().is_some_and(|d| d.is_dir()) {
        return Ok(());
    }
    println!("({EMBEDDED_TARGET} is not installed: adding its standard library with rustup)");
    Cmd::new("rustup", &ctx.root)
        .args(["target", "add", EMBEDDED_TARGET])
        .run()
}

/// With qemu-system-arm missing: `Ok` when the gate may install it (root
/// and apt-get), else the error that says what to install. Never a skip.
fn may_install(root: bool, apt: bool) -> Result<(), String> {
    if root && apt {
        return Ok(());
    }
    let why = match (root, apt) {
        (false, _) => "not running as root",
        _ => "no apt-get here",
    };
    Err(format!(
        "qemu-system-arm is missing ({why}): install the Debian package \
         qemu-system-arm (apt-get install qemu-system-arm), or run the gate as \
         root on a Debian-like system so it installs it"
    ))
}

/// `qemu-system-arm`, installed with apt when missing and running as root.
fn ensure_qemu(ctx: &Ctx) -> Result<String, String> {
    let qemu = "qemu-system-arm";
    let probe = || Cmd::new(qemu, &ctx.root).arg("--version").probe();
    if let Some(v) = probe() {
        println!("({})", v.lines().next().unwrap_or(qemu));
        return Ok(qemu.to_owned());
    }
    let root = Cmd::new("id", &ctx.root)
        .arg("-u")
        .probe()
        .is_some_and(|u| u.trim() == "0");
    let apt = Cmd::new("apt-get", &ctx.root)
        .arg("--version")
        .probe()
        .is_some();
    may_install(root, apt)?;
    println!("({qemu} is missing: installing the Debian package with apt)");
    Cmd::new("apt-get", &ctx.root)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .arg("update")
        .run()?;
    Cmd::new("apt-get", &ctx.root)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args([
            "install",
            "-y",
            "--no-install-recommends",
            "qemu-system-arm",
        ])
        .run()?;
    probe()
        .map(|_| qemu.to_owned())
        .ok_or_else(|| format!("{qemu} is still missing after apt-get install qemu-system-arm"))
}

/// The lines between the line `// ANCHOR: name` and the line
/// `// ANCHOR_END: name` (either may be indented).
fn anchor<'a>(source: &'a str, name: &str) -> Option<&'a str> {
    let start_tag = format!("// ANCHOR: {name}\n");
    let end_tag = format!("// ANCHOR_END: {name}\n");
    let start = source.find(&start_tag)? + start_tag.len();
    let end = start + source[start..].find(&end_tag)?;
    // Back to the start of the end tag's line.
    let end = source[..end]
        .rfind('\n')
        .map_or(start, |i| (i + 1).max(start));
    Some(&source[start..end])
}

/// The README's Firmware section must hold each anchored region of the
/// example as a `rust,ignore` block, in order.
fn check_readme(ctx: &Ctx) -> Result<(), String> {
    let readme = read(&ctx.path("README.md"))?;
    let mut at = 0;
    for (file, name) in README_ANCHORS {
        let path = ctx.path(&format!("{DIR}/src/{file}"));
        let source = read(&path)?;
        let code = anchor(&source, name)
            .ok_or_else(|| format!("{}: no `// ANCHOR: {name}` region", path.display()))?;
        let block = format!("```rust,ignore\n{code}```\n");
        match readme[at..].find(&block) {
            Some(i) => at += i + block.len(),
            None => {
                return Err(format!(
                    "README.md's Firmware section no longer shows the example: the \
                     `{name}` region of {DIR}/src/{file} must appear in it (after the \
                     regions before it; `cargo xtask firmware --bless-readme` copies \
                     them) as\n{block}"
                ));
            }
        }
    }
    println!(
        "(README.md shows the example's {} regions as they are)",
        README_ANCHORS.len()
    );
    Ok(())
}

/// Rewrites the `rust,ignore` blocks of the README's Firmware section, in
/// order, with the example's anchored regions (after an edit of the
/// example: `cargo xtask firmware --bless-readme`).
fn bless_readme(ctx: &Ctx) -> Result<(), String> {
    const OPEN: &str = "```rust,ignore\n";
    const CLOSE: &str = "```\n";
    let path = ctx.path("README.md");
    let readme = read(&path)?;
    let start = readme
        .find("\n## Firmware\n")
        .ok_or("README.md has no `## Firmware` section")?;
    let end = readme[start + 1..]
        .find("\n## ")
        .map_or(readme.len(), |i| start + 1 + i);
    let section = &readme[start..end];
    let mut out = String::new();
    let mut pos = 0;
    for (file, name) in README_ANCHORS {
        let source = read(&ctx.path(&format!("{DIR}/src/{file}")))?;
        let code = anchor(&source, name)
            .ok_or_else(|| format!("{DIR}/src/{file}: no `// ANCHOR: {name}` region"))?;
        let open = section[pos..]
            .find(OPEN)
            .map(|i| pos + i)
            .ok_or_else(|| format!("the Firmware section has no block for `{name}`"))?;
        let body = open + OPEN.len();
        let close = section[body..]
            .find(CLOSE)
            .map(|i| body + i)
            .ok_or("an unclosed code block in the Firmware section")?;
        out.push_str(&section[pos..body]);
        out.push_str(code);
        pos = close;
    }
    out.push_str(&section[pos..]);
    let new = format!("{}{out}{}", &readme[..start], &readme[end..]);
    std::fs::write(&path, new).map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("(README.md's Firmware section now shows the example's regions)");
    check_readme(ctx)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// The sizes of one ELF image.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sizes {
    vector_table: u64,
    text: u64,
    rodata: u64,
    data: u64,
    bss: u64,
    /// Bytes of the caller's storage symbols (in .bss or .data).
    caller_storage: u64,
    /// .text + .rodata symbol bytes per crate (approximate: by symbol
    /// name).
    by_crate: Vec<(&'static str, u64)>,
}

impl Sizes {
    /// Everything that goes into flash: code, constants, the vector table
    /// and the initial values of `.data`.
    fn flash(&self) -> u64 {
        self.vector_table + self.text + self.rodata + self.data
    }
    /// Static RAM: `.data` + `.bss`.
    fn ram(&self) -> u64 {
        self.data + self.bss
    }
}

fn footprint(ctx: &Ctx) -> Result<(), String> {
    ensure_target(ctx)?;
    let mut rows = Vec::new();
    for (label, features) in VARIANTS {
        build(ctx, Some(features))?;
        let path = elf_path(ctx, "footprint");
        let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let sizes = elf_sizes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        rows.push((*label, sizes));
    }
    println!();
    println!("Footprint, thumbv7em-none-eabihf, opt-level \"s\", fat LTO (bytes):");
    println!(
        "{:<46} {:>7} {:>7} {:>6} {:>6} {:>6} {:>7} {:>6} {:>8}",
        "build", "vectors", ".text", ".rodata", ".data", ".bss", "flash", "RAM", "RAM-slots"
    );
    for (label, s) in &rows {
        println!(
            "{:<46} {:>7} {:>7} {:>6} {:>6} {:>6} {:>7} {:>6} {:>8}",
            label,
            s.vector_table,
            s.text,
            s.rodata,
            s.data,
            s.bss,
            s.flash(),
            s.ram(),
            s.ram().saturating_sub(s.caller_storage)
        );
    }
    println!("(flash = vectors + .text + .rodata + .data; RAM = .data + .bss; RAM-slots = RAM");
    println!(" without the caller's cache slots, ring slots and flash region)");
    println!();
    println!(".text + .rodata by crate (from symbol names):");
    for (label, s) in &rows {
        let parts: Vec<String> = s.by_crate.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let tag = label.split_whitespace().next().unwrap_or(label);
        println!("  {tag}: {}", parts.join(", "));
    }
    let Some((_, b)) = rows.get(1) else {
        return Err("the footprint build (b) is missing".to_owned());
    };
    let verdict = |have: u64, goal: u64| {
        if have <= goal {
            "met".to_owned()
        } else {
            format!("over by {}", have - goal)
        }
    };
    println!();
    println!(
        "goals for (b): flash {} <= {FLASH_GOAL}: {}; static RAM beyond the caller's slots {} <= {RAM_GOAL}: {}",
        b.flash(),
        verdict(b.flash(), FLASH_GOAL),
        b.ram().saturating_sub(b.caller_storage),
        verdict(b.ram().saturating_sub(b.caller_storage), RAM_GOAL)
    );
    goals_kept(b.flash(), b.ram().saturating_sub(b.caller_storage))
}

/// Both goals for (b) hold: flash at most [`FLASH_GOAL`] and static RAM
/// beyond the caller's slots ([`CALLER_STORAGE`]) at most [`RAM_GOAL`]; a
/// change that breaks either fails the step (and the gate), naming the
/// figure and the goal.
fn goals_kept(flash: u64, ram_beyond_slots: u64) -> Result<(), String> {
    let mut over = Vec::new();
    if flash > FLASH_GOAL {
        over.push(format!(
            "{flash} bytes of flash, over the {FLASH_GOAL}-byte goal by {}",
            flash - FLASH_GOAL
        ));
    }
    if ram_beyond_slots > RAM_GOAL {
        over.push(format!(
            "{ram_beyond_slots} bytes of static RAM beyond the caller's slots (interrupt \
             ring storage, memory cache slots), over the {RAM_GOAL}-byte goal by {}",
            ram_beyond_slots - RAM_GOAL
        ));
    }
    if over.is_empty() {
        return Ok(());
    }
    Err(format!(
        "footprint (b) takes {}: see BENCHMARKS.md's Firmware footprint section for where \
         the bytes go (`llvm-nm --size-sort` on {DIR}'s footprint ELF)",
        over.join(", and ")
    ))
}

/// A little-endian field of `n` bytes at `at`.
fn le(bytes: &[u8], at: usize, n: usize) -> Result<u64, String> {
    let field = bytes
        .get(at..at + n)
        .ok_or_else(|| format!("truncated ELF (field at {at})"))?;
    Ok(field
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// A NUL-terminated name at `at` in `bytes`.
fn cstr(bytes: &[u8], at: usize) -> &str {
    let tail = bytes.get(at..).unwrap_or(&[]);
    let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
    std::str::from_utf8(&tail[..end]).unwrap_or("")
}

/// Which crate a (legacy-mangled) symbol belongs to, roughly.
fn crate_of(name: &str) -> &'static str {
    if name.contains("entropool_cortex_m") || name.contains("9footprint") {
        "firmware"
    } else if name.contains("entropool") {
        "entropool"
    } else if name.contains("sha2") || name.contains("hmac") || name.contains("digest") {
        "sha2/hmac"
    } else if name.contains("compiler_builtins") || name.starts_with("__aeabi") {
        "compiler-builtins"
    } else if name.contains("cortex_m") || name.contains("static_cell") || name == "Reset" {
        "cortex-m(-rt)"
    } else if name.contains("core") {
        "core"
    } else {
        "other"
    }
}

/// Reads the section headers (and the symbol table) of a 32-bit
/// little-endian ELF file.
fn elf_sizes(bytes: &[u8]) -> Result<Sizes, String> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) || bytes.get(4) != Some(&1) {
        return Err("not a 32-bit ELF file".to_owned());
    }
    if bytes.get(5) != Some(&1) {
        return Err("not a little-endian ELF file".to_owned());
    }
    let shoff = le(bytes, 0x20, 4)? as usize;
    let shentsize = le(bytes, 0x2E, 2)? as usize;
    let shnum = le(bytes, 0x30, 2)? as usize;
    let shstrndx = le(bytes, 0x32, 2)? as usize;
    let header = |i: usize| -> Result<[u64; 10], String> {
        let base = shoff + i * shentsize;
        let mut h = [0u64; 10];
        for (k, v) in h.iter_mut().enumerate() {
            *v = le(bytes, base + 4 * k, 4)?;
        }
        Ok(h)
    };
    // name, type, flags, addr, offset, size, link, info, align, entsize
    let strtab = header(shstrndx)?;
    let mut sizes = Sizes::default();
    let mut sections = Vec::new();
    let mut symtab = None;
    for i in 0..shnum {
        let h = header(i)?;
        let name = cstr(bytes, (strtab[4] + h[0]) as usize);
        match name {
            ".vector_table" => sizes.vector_table += h[5],
            ".text" => sizes.text += h[5],
            ".rodata" => sizes.rodata += h[5],
            ".data" => sizes.data += h[5],
            ".bss" | ".uninit" => sizes.bss += h[5],
            _ => {}
        }
        if h[1] == 2 {
            symtab = Some(h);
        }
        sections.push(name.to_owned());
    }
    let Some(symtab) = symtab else {
        return Err("no symbol table".to_owned());
    };
    let names = header(symtab[6] as usize)?;
    let mut by_crate: Vec<(&'static str, u64)> = Vec::new();
    let count = (symtab[5] / 16) as usize;
    for i in 0..count {
        let base = symtab[4] as usize + 16 * i;
        let name = cstr(bytes, (names[4] + le(bytes, base, 4)?) as usize);
        let size = le(bytes, base + 8, 4)?;
        let shndx = le(bytes, base + 14, 2)? as usize;
        let section = sections.get(shndx).map_or("", String::as_str);
        if CALLER_STORAGE.iter().any(|s| name.contains(s))
            && matches!(section, ".bss" | ".data" | ".uninit")
        {
            sizes.caller_storage += size;
        }
        if matches!(section, ".text" | ".rodata") {
            let krate = crate_of(name);
            match by_crate.iter_mut().find(|(c, _)| *c == krate) {
                Some((_, n)) => *n += size,
                None => by_crate.push((krate, size)),
            }
        }
    }
    by_crate.sort_by_key(|c| std::cmp::Reverse(c.1));
    sizes.by_crate = by_crate;
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_args_match_the_examples_runner() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let config = std::fs::read_to_string(root.join(DIR).join(".cargo/config.toml")).unwrap();
        let runner = format!("runner = \"qemu-system-arm {}\"", QEMU_ARGS.join(" "));
        assert!(config.contains(&runner), "{runner}\nnot in\n{config}");
    }

    #[test]
    fn anchors_are_found_and_a_missing_one_is_not() {
        let src = "a\n// ANCHOR: x\nfn f() {}\n// ANCHOR_END: x\nb\n";
        assert_eq!(anchor(src, "x"), Some("fn f() {}\n"));
        assert_eq!(anchor(src, "y"), None);
        let indented = "impl A {\n    // ANCHOR: m\n    fn m() {}\n    // ANCHOR_END: m\n}\n";
        assert_eq!(anchor(indented, "m"), Some("    fn m() {}\n"));
        let empty = "// ANCHOR: e\n// ANCHOR_END: e\n";
        assert_eq!(anchor(empty, "e"), Some(""));
    }

    #[test]
    fn a_missing_qemu_is_installed_or_named_never_skipped() {
        assert_eq!(may_install(true, true), Ok(()));
        for (root, apt, why) in [
            (false, true, "not running as root"),
            (false, false, "not running as root"),
            (true, false, "no apt-get"),
        ] {
            let e = may_install(root, apt).unwrap_err();
            assert!(e.contains("apt-get install qemu-system-arm"), "{e}");
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn the_flash_goal_fails_the_step_once_exceeded() {
        assert_eq!(goals_kept(FLASH_GOAL, RAM_GOAL), Ok(()));
        assert_eq!(goals_kept(21_004, 1_900), Ok(()));
        let e = goals_kept(FLASH_GOAL + 5, RAM_GOAL).unwrap_err();
        assert!(
            e.contains("24581 bytes of flash, over the 24576-byte goal by 5"),
            "{e}"
        );
        assert!(!e.contains("static RAM"), "{e}");
    }

    #[test]
    fn the_ram_goal_fails_the_step_once_exceeded() {
        let e = goals_kept(21_004, RAM_GOAL + 1).unwrap_err();
        assert!(
            e.contains("2049 bytes of static RAM beyond the caller's slots"),
            "{e}"
        );
        assert!(e.contains("over the 2048-byte goal by 1"), "{e}");
        assert!(!e.contains("of flash"), "{e}");
        let both = goals_kept(FLASH_GOAL + 1, RAM_GOAL + 2).unwrap_err();
        assert!(
            both.contains("flash, over the 24576-byte goal by 1"),
            "{both}"
        );
        assert!(both.contains("over the 2048-byte goal by 2"), "{both}");
    }

    #[test]
    fn a_foreign_file_is_not_read_as_elf() {
        assert!(elf_sizes(b"not an elf").is_err());
        let mut elf64 = b"\x7fELF".to_vec();
        elf64.extend_from_slice(&[2, 1, 1, 0]);
        assert!(elf_sizes(&elf64).is_err());
    }
}
