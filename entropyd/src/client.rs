//! The client side of the API: `entropyd submit` and the status fetch.
//!
//! Contract: HTTP is done by [`ureq`] (blocking, no TLS, no compression),
//! with one overall timeout per call. [`Client::submit`] reads its input in
//! pieces of at most [`SUBMIT_CHUNK`] bytes, base64-encodes each into an add
//! call, and stops early when the pool takes less than a whole piece (the
//! pool is full: the rest would be discarded, so it is not read). Entropy
//! read from the input and the encoded bodies are wiped after use. A
//! refusal comes back as [`ClientError::Refused`] with the server's
//! message; a daemon that is not running as [`ClientError::Unreachable`],
//! so `entropyd status` can fall back to the state directory.
//!
//! Only TCP addresses are supported: ureq has no Unix-socket transport. For
//! a daemon on a Unix socket use e.g. `curl --unix-socket PATH`.

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::api::{self, AddResponse, ErrorResponse, ExternalPoolResponse};
use crate::auth::ApiToken;
use crate::backend::StatusSnapshot;
use crate::server::ListenAddr;

/// Largest piece of raw entropy sent in one add: 1 MiB (about 1.4 MB of
/// JSON, well under the server's body limit).
pub const SUBMIT_CHUNK: usize = 1024 * 1024;

/// Default overall timeout of one call.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest answer body read (the status JSON is a few KiB).
const MAX_ANSWER: u64 = 1024 * 1024;

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon answers at the address (connection refused or failed).
    Unreachable {
        /// The address tried.
        addr: String,
        /// What the transport said.
        detail: String,
    },
    /// The address is a Unix socket, which this client cannot use.
    UnixUnsupported {
        /// The socket path.
        path: PathBuf,
    },
    /// The daemon answered with an error status.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// The transport failed after connecting (timeout, reset...).
    Transport(String),
    /// The daemon's answer could not be understood.
    BadAnswer(String),
    /// Reading the input failed.
    Input(io::Error),
}

impl ClientError {
    /// Whether the daemon simply is not running there.
    #[must_use]
    pub const fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { addr, detail } => {
                write!(
                    f,
                    "no entropyd answers at {addr} (is `entropyd run` running?): {detail}"
                )
            }
            ClientError::UnixUnsupported { path } => write!(
                f,
                "this client speaks TCP only; for the Unix socket {} use curl --unix-socket",
                path.display()
            ),
            ClientError::Refused { status, message } => {
                write!(f, "entropyd refused the request ({status}): {message}")
            }
            ClientError::Transport(msg) => write!(f, "talking to entropyd failed: {msg}"),
            ClientError::BadAnswer(msg) => write!(f, "entropyd's answer is not understood: {msg}"),
            ClientError::Input(e) => write!(f, "reading the input failed: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Input(e) => Some(e),
            _ => None,
        }
    }
}

/// What [`Client::submit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubmitSummary {
    /// Bytes read from the input and sent.
    pub sent: u64,
    /// Bytes the pool accepted.
    pub accepted: u64,
    /// The pool took less than it was sent, so submitting stopped early.
    pub pool_full: bool,
}

/// A client for one daemon.
#[derive(Debug)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    token: Option<ApiToken>,
}

impl Client {
    /// A client for the daemon at `listen`, authorizing writes with `token`,
    /// each call limited to `timeout` overall.
    ///
    /// # Errors
    /// [`ClientError::UnixUnsupported`] for a Unix socket address.
    pub fn new(
        listen: &ListenAddr,
        token: Option<ApiToken>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let base = match listen {
            ListenAddr::Tcp(addr) => format!("http://{addr}"),
            ListenAddr::Unix(path) => {
                return Err(ClientError::UnixUnsupported { path: path.clone() });
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Ok(Client { base, agent, token })
    }

    /// `GET /entropy/status`.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] when no daemon runs there,
    /// [`ClientError::Refused`], [`ClientError::Transport`],
    /// [`ClientError::BadAnswer`].
    pub fn status(&self) -> Result<StatusSnapshot, ClientError> {
        let body = self.get(api::PATH_STATUS)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// `GET /entropy/external-pool`.
    ///
    /// # Errors
    /// As [`Client::status`].
    pub fn external_pool(&self) -> Result<ExternalPoolResponse, ClientError> {
        let body = self.get(api::PATH_EXTERNAL_POOL)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// One add call with `data`; returns how many bytes the pool accepted.
    ///
    /// # Errors
    /// As [`Client::status`]; a refusal (401, 413, ...) is
    /// [`ClientError::Refused`].
    pub fn add(&self, data: &[u8]) -> Result<u64, ClientError> {
        let body = api::encode_add_body(data);
        let url = format!("{}{}?action=add", self.base, api::PATH_EXTERNAL_POOL);
        let mut request = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        let auth;
        if let Some(token) = &self.token {
            let mut value = Zeroizing::new(b"Bearer ".to_vec());
            value.extend_from_slice(token.as_bytes());
            auth = value;
            request = request.header("Authorization", auth.as_slice());
        }
        let response = request
            .send(body.as_slice())
            .map_err(|e| self.transport(e))?;
        let answer = read_answer(response)?;
        let add: AddResponse =
            serde_json::from_slice(&answer).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        Ok(add.accepted)
    }

    /// Reads `input` to its end (or until the pool is full) and adds it in
    /// pieces of at most `chunk` bytes (clamped to `1..=SUBMIT_CHUNK`).
    ///
    /// # Errors
    /// [`ClientError::Input`] when reading fails, or any error of
    /// [`Client::add`]; bytes accepted before the error stay accepted.
    pub fn submit(&self, input: &mut dyn Read, chunk: usize) -> Result<SubmitSummary, ClientError> {
        let chunk = chunk.clamp(1, SUBMIT_CHUNK);
        let mut buf = Zeroizing::new(vec![0u8; chunk]);
        let mut summary = SubmitSummary::default();
        loop {
            let n = fill(input, &mut buf).map_err(ClientError::Input)?;
            let Some(piece) = buf.get(..n).filter(|p| !p.is_empty()) else {
                return Ok(summary);
            };
            let accepted = self.add(piece)?;
            let n64 = u64::try_from(n).unwrap_or(u64::MAX);
            summary.sent = summary.sent.saturating_add(n64);
            summary.accepted = summary.accepted.saturating_add(accepted.min(n64));
            if accepted < n64 {
                summary.pool_full = true;
                return Ok(summary);
            }
            if n < chunk {
                return Ok(summary);
            }
        }
    }

    fn get(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self.agent.get(&url).call().map_err(|e| self.transport(e))?;
        read_answer(response)
    }

    fn transport(&self, e: ureq::Error) -> ClientError {
        let unreachable = match &e {
            ureq::Error::ConnectionFailed => true,
            ureq::Error::Io(io) => matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::AddrNotAvailable
            ),
            _ => false,
        };
        if unreachable {
            ClientError::Unreachable {
                addr: self.base.clone(),
                detail: e.to_string(),
            }
        } else {
            ClientError::Transport(e.to_string())
        }
    }
}

/// Reads an answer's body; a non-200 status becomes
/// [`ClientError::Refused`] with the server's message.
fn read_answer(mut response: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, ClientError> {
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    if status == 200 {
        return Ok(body);
    }
    let message = serde_json::from_slice::<ErrorResponse>(&body)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    Err(ClientError::Refused { status, message })
}

/// Fills `buf` from `input` as far as it goes; returns the bytes read
/// (fewer than `buf.len()` only at the end of the input).
fn fill(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0usize;
    while let Some(tail) = buf.get_mut(filled..).filter(|t| !t.is_empty()) {
        match input.read(tail) {
            Ok(0) => break,
            Ok(n) => filled = filled.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
