//! The API's write token: loading it safely and checking it in constant
//! time.
//!
//! Contract: a token file must be a regular file that neither its group nor
//! others can read or write (mode 0600 or 0400); anything else is refused
//! with an error naming the file and its mode, so the daemon does not start
//! with a token others could read. The token is the file's content with
//! trailing whitespace (the newline an editor adds) removed: 16 to 4096
//! visible ASCII characters. It is held in a wiped-on-drop buffer, prints as
//! `ApiToken { .. }`, and is compared with [`subtle`] so the comparison
//! time does not depend on where a guess first differs. (The time may
//! depend on the *length* of the presented token; lengths are not secret.)

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Shortest accepted token, in characters.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest accepted token file, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The shared secret that authorizes writes.
pub struct ApiToken {
    token: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken { .. }")
    }
}

/// Why a token could not be loaded.
#[derive(Debug)]
pub enum TokenError {
    /// The file could not be opened or read.
    Io {
        /// The token file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a regular file.
    NotAFile {
        /// The token file.
        path: PathBuf,
    },
    /// Group or others may access it.
    InsecureMode {
        /// The token file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Empty, too short, too long, or with characters other than visible
    /// ASCII.
    BadContent {
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Io { path, source } => {
                write!(f, "cannot read token file {}: {source}", path.display())
            }
            TokenError::NotAFile { path } => {
                write!(f, "token file {} is not a regular file", path.display())
            }
            TokenError::InsecureMode { path, mode } => write!(
                f,
                "token file {} has mode {mode:04o}; it must not be accessible by group or others (chmod 600 {})",
                path.display(),
                path.display()
            ),
            TokenError::BadContent { reason } => write!(f, "bad token: {reason}"),
        }
    }
}

impl std::error::Error for TokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl ApiToken {
    /// Loads the token from `path`, checking the file's type and mode on the
    /// opened file (no race between the check and the read).
    ///
    /// # Errors
    /// [`TokenError::Io`] when it cannot be opened or read,
    /// [`TokenError::NotAFile`], [`TokenError::InsecureMode`] when group or
    /// others have any permission bit, [`TokenError::BadContent`] (see
    /// [`ApiToken::from_bytes`]).
    pub fn from_file(path: &Path) -> Result<ApiToken, TokenError> {
        let io = |source| TokenError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(TokenError::NotAFile {
                path: path.to_owned(),
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(TokenError::InsecureMode {
                path: path.to_owned(),
                mode,
            });
        }
        if meta.size() > MAX_TOKEN_LEN as u64 {
            return Err(TokenError::BadContent {
                reason: "the token file is larger than 4096 bytes",
            });
        }
        let mut content = Zeroizing::new(Vec::with_capacity(MAX_TOKEN_LEN));
        // Read one byte more than allowed to detect a file that grew.
        file.take((MAX_TOKEN_LEN as u64).saturating_add(1))
            .read_to_end(&mut content)
            .map_err(io)?;
        ApiToken::from_bytes(&content)
    }

    /// Builds a token from bytes, removing trailing whitespace.
    ///
    /// # Errors
    /// [`TokenError::BadContent`] when what remains is shorter than
    /// [`MIN_TOKEN_LEN`], longer than [`MAX_TOKEN_LEN`], or holds anything
    /// but visible ASCII (`!`..=`~`).
    pub fn from_bytes(bytes: &[u8]) -> Result<ApiToken, TokenError> {
        let trimmed = bytes.trim_ascii_end();
        if trimmed.len() > MAX_TOKEN_LEN {
            return Err(TokenError::BadContent {
                reason: "longer than 4096 bytes",
            });
        }
        if trimmed.len() < MIN_TOKEN_LEN {
            return Err(TokenError::BadContent {
                reason: "shorter than 16 characters (use e.g. `head -c 32 /dev/urandom | base64`)",
            });
        }
        if !trimmed.iter().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::BadContent {
                reason: "only visible ASCII characters are allowed (no spaces or control characters)",
            });
        }
        Ok(ApiToken {
            token: Zeroizing::new(trimmed.to_vec()),
        })
    }

    /// The token's bytes, for a client building its `Authorization` header.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.token
    }

    /// Checks an `Authorization` header value: the scheme `Bearer`
    /// (case-insensitive) and the token, compared in constant time. `None`
    /// (no header) is refused.
    #[must_use]
    pub fn verify_header(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some((scheme, rest)) = value.split_at_checked(7) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"Bearer ") {
            return false;
        }
        let presented = rest.trim_ascii();
        bool::from(presented.ct_eq(self.token.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_check() {
        let t = ApiToken::from_bytes(b"0123456789abcdef\n").unwrap();
        assert!(t.verify_header(Some(b"Bearer 0123456789abcdef")));
        assert!(t.verify_header(Some(b"bearer 0123456789abcdef")));
        assert!(!t.verify_header(None));
        assert!(!t.verify_header(Some(b"Bearer 0123456789abcdeg")));
        assert!(!t.verify_header(Some(b"Bearer 0123456789abcde")));
        assert!(!t.verify_header(Some(b"Basic 0123456789abcdef")));
        assert!(!t.verify_header(Some(b"Bearer")));
        assert_eq!(format!("{t:?}"), "ApiToken { .. }");
    }

    #[test]
    fn content_rules() {
        assert!(ApiToken::from_bytes(b"short").is_err());
        assert!(ApiToken::from_bytes(b"0123456789 abcdef").is_err());
        assert!(ApiToken::from_bytes(&[b'a'; MAX_TOKEN_LEN + 1]).is_err());
        assert!(ApiToken::from_bytes(&[b'a'; MAX_TOKEN_LEN]).is_ok());
    }
}
