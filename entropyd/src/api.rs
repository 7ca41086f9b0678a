//! The HTTP API's requests, responses and validation, as pure functions.
//!
//! Contract: everything here is transport-free and deterministic, so the
//! server, the client, the fuzz target and the tests share one definition
//! of the API:
//!
//! | method | target | answer |
//! | --- | --- | --- |
//! | `GET` | `/entropy/external-pool` | [`ExternalPoolResponse`] |
//! | `GET` | `/entropy/status` | [`StatusSnapshot`](crate::backend::StatusSnapshot) |
//! | `POST` | `/entropy/external-pool?action=add` | [`AddResponse`] (ESXi's AddResult plus `accepted`), body [`AddRequest`] |
//!
//! The add body is `{"data": "<base64>"}`: exactly one field, standard
//! base64 alphabet with padding (RFC 4648 section 4), decoded in constant
//! time ([`base64ct`]). [`parse_add_body`] checks the size limit first, then
//! the JSON, then the base64; every failure is an [`ApiError`] with a status
//! code and a message that says what was wrong, and nothing is credited.
//! Decoded entropy is held in [`Zeroizing`] buffers and wiped on drop.

use std::borrow::Cow;
use std::fmt;

use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// Path of the external-pool resource (GET reads it, POST `?action=add`
/// feeds it).
pub const PATH_EXTERNAL_POOL: &str = "/entropy/external-pool";

/// Path of the full status (GET).
pub const PATH_STATUS: &str = "/entropy/status";

/// The ceiling of the request body limit, in bytes of raw HTTP body (JSON
/// text): 16 MiB. The server sizes the limit it uses from the pool's
/// capacity ([`crate::server::body_limit_for`]: about 1.4 MB for the
/// default 512 KiB cache), never above this; a larger `Content-Length` is
/// refused with 413 before any of the body is read.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Value of the `status` field when the external source is enabled.
pub const STATUS_ENABLED: &str = "ENABLED";
/// Value of the `status` field when the external source is disabled.
pub const STATUS_DISABLED: &str = "DISABLED";

/// A routed request: what the method and target asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /entropy/external-pool`
    GetExternalPool,
    /// `GET /entropy/status`
    GetStatus,
    /// `POST /entropy/external-pool?action=add`
    AddExternal,
}

impl Route {
    /// Whether the route changes the pool (and so needs authorization).
    #[must_use]
    pub const fn is_write(self) -> bool {
        matches!(self, Route::AddExternal)
    }
}

/// Maps a request's method and target (`path[?query]`) to a [`Route`].
///
/// GET requests ignore any query string. The add call needs exactly the
/// query `action=add`.
///
/// # Errors
/// [`ApiError::NotFound`] for an unknown path, [`ApiError::MethodNotAllowed`]
/// for a known path with another method, [`ApiError::BadRequest`] for a POST
/// whose query is not exactly `action=add`.
pub fn route(method: &str, target: &str) -> Result<Route, ApiError> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    match path {
        PATH_EXTERNAL_POOL => match method {
            "GET" => Ok(Route::GetExternalPool),
            "POST" => match query {
                Some("action=add") => Ok(Route::AddExternal),
                Some(other) => Err(ApiError::BadRequest(format!(
                    "unsupported query {other:?}: the only action is ?action=add"
                ))),
                None => Err(ApiError::BadRequest(
                    "missing query: POST to this path needs ?action=add".to_owned(),
                )),
            },
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        },
        PATH_STATUS => match method {
            "GET" => Ok(Route::GetStatus),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        _ => Err(ApiError::NotFound),
    }
}

/// The body of `POST /entropy/external-pool?action=add`.
///
/// Unknown fields are refused. The base64 text borrows from the request
/// body when it has no JSON escapes; an unescaped copy is wiped after use.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRequest<'a> {
    /// The entropy, standard base64 with padding.
    #[serde(borrow)]
    pub data: Cow<'a, str>,
}

/// The answer to an add: ESXi's AddResult (the pool's figures after the
/// add, in bytes) plus how many decoded bytes the pool took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddResponse {
    /// Bytes accepted; the rest of the submission was discarded.
    pub accepted: u64,
    /// Bytes the external intake can hold.
    pub capacity: u64,
    /// Bytes it holds after this add.
    pub currently_available: u64,
    /// Below this many bytes the pool wants the feeder to send.
    pub low_watermark: u64,
    /// Seconds without a client call after which the feeder counts as
    /// inactive (the external-entropy-lost timeout).
    pub inactive_source_timeout: u64,
}

/// The answer to `GET /entropy/external-pool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalPoolResponse {
    /// `"ENABLED"` or `"DISABLED"`.
    pub status: String,
    /// Bytes the external intake can hold.
    pub capacity: u64,
    /// Bytes it holds now.
    pub currently_available: u64,
    /// Below this many bytes the pool wants the feeder to send.
    pub low_watermark: u64,
    /// The external-entropy-lost timeout in seconds.
    pub inactive_source_timeout: u64,
}

impl From<crate::backend::ExternalPoolInfo> for ExternalPoolResponse {
    fn from(info: crate::backend::ExternalPoolInfo) -> Self {
        ExternalPoolResponse {
            status: if info.enabled {
                STATUS_ENABLED
            } else {
                STATUS_DISABLED
            }
            .to_owned(),
            capacity: info.capacity,
            currently_available: info.currently_available,
            low_watermark: info.low_watermark,
            inactive_source_timeout: info.inactive_source_timeout,
        }
    }
}

/// The JSON body of every error answer: `{"error": "...", "code": 400}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What was wrong, for a human.
    pub error: String,
    /// The HTTP status code, repeated for scripts that only see the body.
    pub code: u16,
}

/// Everything the API refuses, each with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: malformed request, JSON or base64; the message says which.
    BadRequest(String),
    /// 401: a write without the right `Authorization: Bearer` token.
    Unauthorized,
    /// 403: writes are disabled (TCP listener started without a token).
    WritesDisabled,
    /// 404: no such path.
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed {
        /// The methods the path supports, for the `Allow` header.
        allow: &'static str,
    },
    /// 408: the client did not send the whole request in time.
    RequestTimeout,
    /// 409: the external source is not in the active source mask.
    ExternalDisabled,
    /// 411: a body without `Content-Length` (chunked is not supported).
    LengthRequired,
    /// 413: the body is larger than the limit.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 431: the request head is larger than the server reads.
    HeadersTooLarge,
    /// 500: the server could not produce an answer.
    Internal(String),
    /// 503: every add slot stayed busy until the request's deadline.
    Busy,
}

impl ApiError {
    /// The HTTP status code.
    #[must_use]
    pub const fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized => 401,
            ApiError::WritesDisabled => 403,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::RequestTimeout => 408,
            ApiError::ExternalDisabled => 409,
            ApiError::LengthRequired => 411,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::HeadersTooLarge => 431,
            ApiError::Internal(_) => 500,
            ApiError::Busy => 503,
        }
    }

    /// A short stable word for audit records (`reason=...`).
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::WritesDisabled => "writes-disabled",
            ApiError::NotFound => "not-found",
            ApiError::MethodNotAllowed { .. } => "method-not-allowed",
            ApiError::RequestTimeout => "timeout",
            ApiError::ExternalDisabled => "external-disabled",
            ApiError::LengthRequired => "length-required",
            ApiError::PayloadTooLarge { .. } => "body-too-large",
            ApiError::HeadersTooLarge => "head-too-large",
            ApiError::Internal(_) => "internal",
            ApiError::Busy => "busy",
        }
    }

    /// The JSON error body for this error.
    #[must_use]
    pub fn to_response(&self) -> ErrorResponse {
        ErrorResponse {
            error: self.to_string(),
            code: self.status(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::BadRequest(msg) => write!(f, "bad request: {msg}"),
            ApiError::Unauthorized => f.write_str(
                "unauthorized: this call needs the header 'Authorization: Bearer <token>' with the daemon's token",
            ),
            ApiError::WritesDisabled => f.write_str(
                "forbidden: this daemon listens on TCP without a token file, so it accepts no writes (start it with --token-file)",
            ),
            ApiError::NotFound => write!(
                f,
                "not found: the API has {PATH_EXTERNAL_POOL} and {PATH_STATUS}"
            ),
            ApiError::MethodNotAllowed { allow } => {
                write!(f, "method not allowed: this path allows {allow}")
            }
            ApiError::RequestTimeout => {
                f.write_str("request timeout: the request was not received in time")
            }
            ApiError::ExternalDisabled => f.write_str(
                "conflict: the external source is not in the active sources mask; nothing was accepted",
            ),
            ApiError::LengthRequired => f.write_str(
                "length required: send the body with a Content-Length header (chunked bodies are not supported)",
            ),
            ApiError::PayloadTooLarge { limit } => write!(
                f,
                "payload too large: the body limit is {limit} bytes; send the entropy in smaller adds"
            ),
            ApiError::HeadersTooLarge => {
                f.write_str("request header fields too large")
            }
            ApiError::Internal(msg) => write!(f, "internal error: {msg}"),
            ApiError::Busy => f.write_str(
                "service unavailable: every add slot is busy; retry in a second",
            ),
        }
    }
}

impl std::error::Error for ApiError {}

/// Parses and decodes the body of an add call.
///
/// In order: refuses a body longer than `limit` bytes, parses the JSON
/// (exactly one field `data`, a string), decodes the base64 in constant
/// time. Returns the decoded entropy in a buffer that is wiped on drop. An
/// empty `data` string is valid and decodes to no bytes.
///
/// # Errors
/// [`ApiError::PayloadTooLarge`] when `body.len() > limit`;
/// [`ApiError::BadRequest`] for bad JSON, a missing or unknown field, or
/// bad base64, with a message saying which.
pub fn parse_add_body(body: &[u8], limit: usize) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    if body.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let request: AddRequest<'_> = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be the JSON object {{\"data\": \"<base64>\"}}: {e}"
        ))
    })?;
    let decoded = decode_base64(request.data.as_bytes());
    if let Cow::Owned(mut text) = request.data {
        text.zeroize();
    }
    decoded
}

/// Decodes standard padded base64 into a wiped-on-drop buffer, in constant
/// time with respect to the data.
fn decode_base64(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    // Room for (len / 4) * 3 bytes plus one partial group; decode() checks
    // the exact length itself.
    let room = (text.len() / 4).saturating_mul(3).saturating_add(3);
    let mut buf = Zeroizing::new(vec![0u8; room]);
    let len = Base64::decode(text, buf.as_mut_slice())
        .map_err(|_| {
            ApiError::BadRequest(
                "\"data\" is not valid base64 (standard alphabet A-Z a-z 0-9 + /, with = padding, no whitespace)"
                    .to_owned(),
            )
        })?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// Builds the add body `{"data":"<base64>"}` for `data` (the client side
/// of [`parse_add_body`]). The returned text holds the entropy and is wiped
/// on drop.
#[must_use]
pub fn encode_add_body(data: &[u8]) -> Zeroizing<Vec<u8>> {
    let b64_len = Base64::encoded_len(data);
    let mut out = Zeroizing::new(Vec::with_capacity(b64_len.saturating_add(12)));
    out.extend_from_slice(b"{\"data\":\"");
    let mut b64 = Zeroizing::new(vec![0u8; b64_len]);
    if let Ok(text) = Base64::encode(data, b64.as_mut_slice()) {
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(b"\"}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/entropy/status"), Ok(Route::GetStatus));
        assert_eq!(
            route("GET", "/entropy/external-pool?x=1"),
            Ok(Route::GetExternalPool)
        );
        assert_eq!(
            route("POST", "/entropy/external-pool?action=add"),
            Ok(Route::AddExternal)
        );
        assert_eq!(route("GET", "/nope"), Err(ApiError::NotFound));
        assert_eq!(
            route("DELETE", "/entropy/status").map_err(|e| e.status()),
            Err(405)
        );
        assert_eq!(
            route("POST", "/entropy/external-pool").map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(
            route("POST", "/entropy/external-pool?action=remove").map_err(|e| e.status()),
            Err(400)
        );
    }

    #[test]
    fn add_body_round_trip() {
        let data: Vec<u8> = (0..=255u8).collect();
        for n in [0usize, 1, 2, 3, 4, 31, 32, 33, 256] {
            let body = encode_add_body(&data[..n]);
            let decoded = parse_add_body(&body, DEFAULT_BODY_LIMIT).unwrap();
            assert_eq!(decoded.as_slice(), &data[..n]);
        }
    }

    #[test]
    fn escaped_solidus_is_decoded() {
        // JSON may escape '/' as "\/": base64 "//8=" is [0xff, 0xff].
        let body = br#"{"data":"\/\/8="}"#;
        assert_eq!(parse_add_body(body, 100).unwrap().as_slice(), &[0xff, 0xff]);
    }

    #[test]
    fn add_body_rejections() {
        let cases: [&[u8]; 9] = [
            b"",
            b"{",
            b"[]",
            b"{\"data\":1}",
            b"{\"dat\":\"AAAA\"}",
            b"{\"data\":\"AAAA\",\"extra\":1}",
            b"{\"data\":\"AAA\"}",
            b"{\"data\":\"AA AA\"}",
            b"{\"data\":\"AA==AA==\"}",
        ];
        for body in cases {
            let err = parse_add_body(body, 100).unwrap_err();
            assert_eq!(err.status(), 400, "{:?}", String::from_utf8_lossy(body));
        }
        let big = encode_add_body(&[0u8; 100]);
        assert_eq!(
            parse_add_body(&big, big.len() - 1).unwrap_err().status(),
            413
        );
        assert!(parse_add_body(&big, big.len()).is_ok());
    }
}
