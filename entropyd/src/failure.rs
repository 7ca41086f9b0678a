//! How a command fails: a message for stderr and an exit status.

use std::fmt;
use std::process::ExitCode;

use entropool::store::StoreError;

/// Exit status for a runtime failure (I/O, a corrupt config store).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for invalid input (a bad value or file, not a fresh install,
/// a usage error).
pub const EXIT_INVALID: u8 = 2;

/// A failed command: what to print on stderr and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit status, [`EXIT_FAILURE`] or [`EXIT_INVALID`].
    pub status: u8,
    /// One line (without the `entropyd: ` prefix or line end).
    pub message: String,
}

impl Failure {
    /// Invalid input: exit status 2.
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure {
            status: EXIT_INVALID,
            message: message.into(),
        }
    }

    /// A runtime failure: exit status 1.
    pub fn runtime(message: impl Into<String>) -> Self {
        Failure {
            status: EXIT_FAILURE,
            message: message.into(),
        }
    }

    /// The exit code for the process.
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.status)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StoreError> for Failure {
    /// Invalid input for errors of the request (a bad value, not a fresh
    /// install); a runtime failure for I/O and a corrupt store.
    fn from(e: StoreError) -> Self {
        match e.error() {
            Some(entropool::Error::ConfigCorrupt) | None => Failure::runtime(e.to_string()),
            Some(_) => Failure::invalid(e.to_string()),
        }
    }
}
