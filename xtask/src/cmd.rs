//! Running external commands: each is printed (`$ ENV=... cargo ...`)
//! before it runs, with stdin closed and stdout/stderr passed through.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A command line to print and run.
#[derive(Clone, Debug)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
}

impl Cmd {
    /// `program` run in `dir`.
    pub fn new(program: &str, dir: &Path) -> Cmd {
        Cmd {
            program: program.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            dir: dir.to_owned(),
        }
    }

    /// Append one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    /// Append several arguments.
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Set an environment variable for the command (shown when printed).
    pub fn env(mut self, key: &str, value: &str) -> Cmd {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The command as a shell line: `KEY='v' program arg ...`.
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect();
        parts.push(quote(&self.program));
        parts.extend(self.args.iter().map(|a| quote(a)));
        parts.join(" ")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Print the command, run it with inherited output, and fail with a
    /// message naming the command and its status unless it succeeds.
    pub fn run(&self) -> Result<(), String> {
        println!("$ {}", self.display());
        let _ = std::io::stdout().flush();
        let status = self
            .command()
            .status()
            .map_err(|e| format!("could not start `{}`: {e}", self.display()))?;
        if status.success() {
            Ok(())
        } else {
            let how = match status.code() {
                Some(code) => format!("exit status {code}"),
                None => "killed by a signal".to_owned(),
            };
            Err(format!("`{}` failed ({how})", self.display()))
        }
    }

    /// Run quietly and return stdout when the command succeeds; `None` when
    /// it cannot start or fails. For probes (`cargo +nightly miri --version`).
    pub fn probe(&self) -> Option<String> {
        let out = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .ok()?;
        if out.status.success() {
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            None
        }
    }
}

/// Quote a word for display in a POSIX shell, only when it needs it.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let c = Cmd::new("cargo", Path::new("."))
            .env("RUSTDOCFLAGS", "-D warnings")
            .args(["doc", "--no-deps", "it's"]);
        assert_eq!(
            c.display(),
            r"RUSTDOCFLAGS='-D warnings' cargo doc --no-deps 'it'\''s'"
        );
    }
}
