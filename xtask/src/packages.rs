//! Real components the tests need from Debian packages: present, or
//! installed with apt-get when the gate runs as root (as CI does), or a
//! failure that names the package. Never a silent skip.

use crate::ci::Ctx;
use crate::cmd::Cmd;

/// A program the tests run or a file they load, and the package with it.
#[derive(Debug)]
pub struct Needed {
    /// A command on `PATH` (probed with `--version`) or an absolute file.
    pub what: &'static str,
    /// Where it may also be (other architectures' library paths).
    pub alternatives: &'static [&'static str],
    /// The Debian package that provides it.
    pub package: &'static str,
}

/// What the test step needs: SoftHSM2, the PKCS#11 token of the
/// `entropyd feed` tests.
pub const TEST_PACKAGES: &[Needed] = &[
    Needed {
        what: "softhsm2-util",
        alternatives: &[],
        package: "softhsm2",
    },
    Needed {
        what: "/usr/lib/softhsm/libsofthsm2.so",
        alternatives: &["/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"],
        package: "softhsm2",
    },
];

fn present(ctx: &Ctx, n: &Needed) -> bool {
    if n.what.starts_with('/') {
        std::iter::once(n.what)
            .chain(n.alternatives.iter().copied())
            .any(|p| std::path::Path::new(p).is_file())
    } else {
        Cmd::new(n.what, &ctx.root)
            .arg("--version")
            .probe()
            .is_some()
    }
}

/// Whether the gate may install `missing` itself: only as root (CI);
/// otherwise the error names the packages and the command.
fn may_install(missing: &[&str], root: bool) -> Result<(), String> {
    if root {
        Ok(())
    } else {
        Err(format!(
            "the tests need the Debian package(s) {0}: install with `sudo apt-get install -y {0}` \
             (or run the gate as root, as CI does, and it installs them)",
            missing.join(" ")
        ))
    }
}

/// Makes sure every item of `needed` is there: installs the missing
/// packages with apt-get when running as root, else fails naming them.
pub fn ensure(ctx: &Ctx, needed: &[Needed]) -> Result<(), String> {
    let mut missing: Vec<&str> = needed
        .iter()
        .filter(|n| !present(ctx, n))
        .map(|n| n.package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let root = Cmd::new("id", &ctx.root)
        .arg("-u")
        .probe()
        .is_some_and(|u| u.trim() == "0");
    may_install(&missing, root)?;
    println!("(missing {}: installing with apt-get)", missing.join(" "));
    Cmd::new("apt-get", &ctx.root)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .arg("update")
        .run()?;
    Cmd::new("apt-get", &ctx.root)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .run()?;
    let still: Vec<&str> = needed
        .iter()
        .filter(|n| !present(ctx, n))
        .map(|n| n.what)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "still missing after apt-get install: {}",
            still.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_installs_and_others_are_told_what() {
        assert_eq!(may_install(&["softhsm2"], true), Ok(()));
        let e = may_install(&["softhsm2"], false).unwrap_err();
        assert!(e.contains("apt-get install -y softhsm2"), "{e}");
    }

    #[test]
    fn a_present_file_or_command_counts() {
        let ctx = Ctx::discover().unwrap();
        let here = Needed {
            what: "/nonexistent/lib.so",
            alternatives: &["/bin/sh"],
            package: "x",
        };
        assert!(present(&ctx, &here));
        let gone = Needed {
            what: "/nonexistent/lib.so",
            alternatives: &[],
            package: "x",
        };
        assert!(!present(&ctx, &gone));
        let cmd = Needed {
            what: "cargo",
            alternatives: &[],
            package: "cargo",
        };
        assert!(present(&ctx, &cmd));
        assert_eq!(ensure(&ctx, &[cmd, here]), Ok(()));
    }
}
