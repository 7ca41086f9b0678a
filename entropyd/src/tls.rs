//! TLS for the API server: the certificate, key and optional client CA, and
//! their reload; and the one client configuration of the commands that call
//! a daemon over https (`status`, `submit`, `feed`).
//!
//! Contract:
//! - TLS is rustls with the *ring* provider (no OpenSSL, no aws-lc), TLS 1.3
//!   and 1.2, ALPN `http/1.1`. The certificate file is a PEM chain (leaf
//!   first), the key file one PEM private key (PKCS#8, PKCS#1 or SEC1);
//!   [`TlsFiles::load`] refuses a file without them, a key that does not
//!   match the certificate, or a key file that group or others can access
//!   (like the token file), each with an error naming the file.
//! - With a client CA (`--tls-client-ca`), every connection must present a
//!   client certificate that chains to one of its certificates (mutual
//!   TLS); the handshake fails otherwise, before any request is read.
//! - [`TlsState`] holds the configuration in use. [`TlsState::reload`]
//!   reads all files again (SIGHUP) and swaps the new configuration in
//!   whole, for new connections; when anything is wrong it keeps the old
//!   one and says why. Connections already open keep theirs.
//! - Private keys (the server's, and the client's of `status`, `submit`
//!   and `feed`) are held only in buffers wiped on drop: the PEM text, its
//!   base64 body and the DER ([`pem_private_key`], not rustls-pki-types'
//!   reader, whose base64 buffer is freed unwiped). ring parses the key
//!   from our DER by reference (`certified_key`; a SEC1 `EC PRIVATE KEY`
//!   is wrapped in PKCS#8 in a wiped buffer first, where rustls would
//!   build the wrapping in two vectors it frees unwiped); rustls's
//!   `with_single_cert` would take the DER and drop it unwiped. What we
//!   cannot reach: ring's parsed key (the ECDSA or Ed25519 private scalar,
//!   RSA's private factors) inside the configuration's `SigningKey`, which
//!   ring frees unwiped when the last connection holding that
//!   configuration ends (after a reload, the old one too). rustls wipes its
//!   own handshake and traffic secrets (AEAD keys, HMAC keys) on drop.
//! - [`client_config`] is the client side: the server's certificate must
//!   chain to the `--ca` certificates (verification cannot be turned off),
//!   and `--client-cert/--client-key` add a client certificate for mutual
//!   TLS. Its files are read as the server's are (size limit, a regular
//!   file, a private key that group and others cannot access, read into a
//!   wiped buffer), and every error names the file and its role.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, InconsistentKeys, RootCertStore, ServerConfig};
use zeroize::Zeroizing;

use crate::failure::Failure;

/// Largest PEM file read (certificate chain, key or CA bundle).
pub const MAX_PEM_LEN: u64 = 1024 * 1024;

/// The files TLS is configured from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// The server's private key (PEM, mode 0600 or 0400).
    pub key: PathBuf,
    /// The CA that client certificates must chain to (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Why TLS could not be configured.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file's content is not what it must be.
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            TlsError::Bad { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Io { source, .. } => Some(source),
            TlsError::Bad { .. } => None,
        }
    }
}

impl TlsError {
    /// The command's failure, as for every file a command reads: a file
    /// that cannot be read is a runtime failure (exit 1), one whose content
    /// is unusable is invalid input (exit 2).
    #[must_use]
    pub fn into_failure(self) -> Failure {
        match self {
            TlsError::Io { .. } => Failure::runtime(format!("TLS: {self}")),
            TlsError::Bad { .. } => Failure::invalid(format!("TLS: {self}")),
        }
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Bad {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads a whole PEM file of at most [`MAX_PEM_LEN`] bytes into a wiped
/// buffer; with `private`, refuses it when group or others may access it.
fn read_pem(path: &Path, private: bool) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(bad(path, "not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if private && mode & 0o077 != 0 {
        return Err(bad(
            path,
            format!(
                "the private key has mode {mode:04o}; it must not be accessible by group or others (chmod 600 {})",
                path.display()
            ),
        ));
    }
    if meta.len() > MAX_PEM_LEN {
        return Err(bad(path, "larger than 1 MiB"));
    }
    // Sized for the whole file up front, and never read past that room: a
    // buffer that grew would free its earlier, smaller copies of the key
    // text unwiped. One byte more than the file's size tells a file that
    // grew while it was read (its text may be torn too): refused.
    let room = meta.len().saturating_add(1);
    let mut text = Zeroizing::new(Vec::with_capacity(usize::try_from(room).unwrap_or(0)));
    file.take(room).read_to_end(&mut text).map_err(io)?;
    if text.len() as u64 >= room {
        return Err(bad(path, "changed while it was read"));
    }
    Ok(text)
}

/// The certificates of a PEM file; `what` names them in errors
/// ("certificate", "CA certificate", ...).
fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read_pem(path, false)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, format!("bad PEM {what}: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            path,
            format!("no PEM {what} (-----BEGIN CERTIFICATE-----) found"),
        ));
    }
    Ok(certs)
}

/// The private key of the PEM file `path` (mode 0600 or 0400), wiped on
/// drop; `what` names it in errors.
fn private_key(path: &Path, what: &str) -> Result<Zeroizing<PrivateKeyDer<'static>>, TlsError> {
    let text = read_pem(path, true)?;
    pem_private_key(&text).map_err(|e| bad(path, format!("no usable PEM {what}: {e}")))
}

/// Strips the line end and trailing blanks of a PEM line.
fn pem_line(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i.saturating_add(1));
    line.get(..end).unwrap_or_default()
}

/// The first private key in PEM `text` (`PRIVATE KEY`: PKCS#8, `RSA
/// PRIVATE KEY`: PKCS#1, `EC PRIVATE KEY`: SEC1; other sections are
/// skipped), decoded only into buffers that are wiped on drop: the base64
/// text and the DER. (For well-formed PEM, rustls-pki-types' reader gives
/// the same DER, lines ending at LF or CR alike; it differs on malformed
/// text: after a section left without its END line, whose base64 it mixes
/// into the key where we read the key alone, and on some malformed BEGIN
/// lines (fuzzing found one with stray bytes after its dashes). Its
/// base64 staging buffer is freed unwiped.) base64 is decoded in
/// constant time (base64ct). Fuzzed (`fuzz/`, target `pem_key`).
///
/// # Errors
/// What is wrong: no private-key section, no END line, bad base64, an
/// empty key.
pub fn pem_private_key(text: &[u8]) -> Result<Zeroizing<PrivateKeyDer<'static>>, &'static str> {
    use base64ct::{Base64, Encoding};
    use rustls::pki_types::{PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
    // Lines end at LF or CR, as rustls-pki-types reads them.
    let mut lines = text.split(|&b| b == b'\n' || b == b'\r').map(pem_line);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix(b"-----BEGIN ")
            .and_then(|l| l.strip_suffix(b"-----"))
        else {
            continue;
        };
        if !matches!(
            label,
            b"PRIVATE KEY" | b"RSA PRIVATE KEY" | b"EC PRIVATE KEY"
        ) {
            continue;
        }
        // At most the whole text: no reallocation leaves a copy behind.
        let mut b64 = Zeroizing::new(Vec::with_capacity(text.len()));
        let mut ended = false;
        for line in lines.by_ref() {
            if line
                .strip_prefix(b"-----END ")
                .and_then(|l| l.strip_suffix(b"-----"))
                == Some(label)
            {
                ended = true;
                break;
            }
            b64.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
        }
        if !ended {
            return Err("the private key's END line is missing");
        }
        let mut der = Zeroizing::new(vec![0u8; b64.len()]);
        let len = Base64::decode(b64.as_slice(), der.as_mut_slice())
            .map_err(|_| "the private key is not valid base64")?
            .len();
        if len == 0 {
            return Err("the private key is empty");
        }
        der.truncate(len);
        // Moved out, not copied: the Zeroizing left behind holds nothing.
        let der = core::mem::take(&mut *der);
        let key = match label {
            b"RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
            b"EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
            _ => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
        };
        return Ok(Zeroizing::new(key));
    }
    Err("no -----BEGIN PRIVATE KEY----- (or RSA / EC PRIVATE KEY) section")
}

/// PKCS#8's version and algorithm identifier (id-ecPublicKey and the
/// curve) before a SEC1 key, for P-256 and P-384: the bytes rustls puts
/// there (`PKCS8_PREFIX_ECDSA_NISTP256/384` in its ring provider).
const SEC1_IN_PKCS8: [&[u8]; 2] = [
    b"\x02\x01\x00\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07",
    b"\x02\x01\x00\x30\x10\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x05\x2b\x81\x04\x00\x22",
];

/// A DER length: its bytes (at most 0x82 and two more) and how many.
fn der_len(len: usize) -> ([u8; 3], usize) {
    let [.., hi, lo] = len.to_be_bytes();
    if len < 0x80 {
        ([lo, 0, 0], 1)
    } else if len < 0x100 {
        ([0x81, lo, 0], 2)
    } else {
        ([0x82, hi, lo], 3)
    }
}

/// The signing key of a SEC1 (`EC PRIVATE KEY`) DER. rustls would wrap it
/// in PKCS#8 itself, in two vectors it frees unwiped; here the wrapping is
/// built in one wiped buffer, sized in advance, and ring reads it by
/// reference, once per curve until one fits.
fn sec1_signing_key(sec1: &[u8]) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
    use rustls::pki_types::PrivatePkcs8KeyDer;
    // A key file is at most 1 MiB, but a DER length here takes two bytes.
    if sec1.len() > 0xFF00 {
        return Err(rustls::Error::General(
            "the EC private key is too long".into(),
        ));
    }
    let mut last = rustls::Error::General("no curve fits the EC private key".into());
    for prefix in SEC1_IN_PKCS8 {
        let (inner, inner_n) = der_len(sec1.len());
        let body_len = prefix.len() + 1 + inner_n + sec1.len();
        let (outer, outer_n) = der_len(body_len);
        let mut pkcs8 = Zeroizing::new(Vec::with_capacity(1 + outer_n + body_len));
        pkcs8.push(0x30);
        pkcs8.extend_from_slice(outer.get(..outer_n).unwrap_or_default());
        pkcs8.extend_from_slice(prefix);
        pkcs8.push(0x04);
        pkcs8.extend_from_slice(inner.get(..inner_n).unwrap_or_default());
        pkcs8.extend_from_slice(sec1);
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.as_slice()));
        match rustls::crypto::ring::sign::any_supported_type(&der) {
            Ok(key) => return Ok(key),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `chain` with the signing key of the PEM key file `key`, checked to
/// belong to the chain's first certificate; `what` names the key and
/// `mismatch` says what it must match, in errors.
///
/// ring parses the key from our DER, which is wiped when this returns:
/// rustls's `with_single_cert` and `with_client_auth_cert` would take the
/// DER by value and drop it unwiped. The check is theirs
/// (`CertifiedKey::from_der`): a key whose public half ring cannot tell is
/// taken.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &Path,
    what: &str,
    mismatch: &dyn Fn(&rustls::Error) -> String,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let der = private_key(key, what)?;
    let signing = match &*der {
        PrivateKeyDer::Sec1(sec1) => sec1_signing_key(sec1.secret_sec1_der()),
        other => rustls::crypto::ring::sign::any_supported_type(other),
    }
    .map_err(|e| bad(key, mismatch(&e)))?;
    drop(der);
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(e) => Err(bad(key, mismatch(&e))),
    }
}

/// The CA certificates of the PEM file `ca`, as the roots a peer's
/// certificate must chain to (the server's for a client, a client's for the
/// daemon's `--tls-client-ca`).
///
/// # Errors
/// As [`certificates`]; [`TlsError::Bad`] for a certificate rustls refuses
/// as a CA.
fn root_store(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca, "CA certificate")? {
        roots
            .add(cert)
            .map_err(|e| bad(ca, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The client side of TLS (`status`, `submit`, `feed`): the server's
/// certificate must chain to a certificate of `ca` and name the host
/// called; `client` (certificate chain, key) adds a client certificate for
/// a daemon that asks for one (mutual TLS).
///
/// # Errors
/// [`TlsError::Io`] naming a file that cannot be read; [`TlsError::Bad`]
/// for a file without certificates or key, a key that group or others can
/// access, a CA certificate rustls refuses, or a key that does not match
/// the client certificate.
pub fn client_config(
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = root_store(ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(ca, format!("TLS versions: {e}")))?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert, "client certificate")?;
            let certified = certified_key(chain, key, "client key", &|e| {
                format!(
                    "the client key cannot be used with the client certificate {}: {e}",
                    cert.display()
                )
            })?;
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
        }
    };
    Ok(Arc::new(config))
}

impl TlsFiles {
    /// Reads the files and builds a rustls server configuration.
    ///
    /// # Errors
    /// [`TlsError::Io`] when a file cannot be read; [`TlsError::Bad`] for a
    /// file without certificates or key, a key others can read, a key that
    /// does not match the certificate, or a CA file rustls refuses.
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = certificates(&self.cert, "certificate")?;
        let certified = certified_key(chain, &self.key, "private key", &|e| {
            format!(
                "cannot be used with the certificate {}: {e}",
                self.cert.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| bad(&self.cert, format!("TLS versions: {e}")))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let roots = root_store(ca)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| bad(ca, format!("cannot verify clients with it: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The TLS configuration in use, and the files to reload it from. Prints
/// the file names only, never the key.
pub struct TlsState {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl fmt::Debug for TlsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsState")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsState {
    /// Loads the files (see [`TlsFiles::load`]).
    ///
    /// # Errors
    /// The [`TlsError`] of [`TlsFiles::load`].
    pub fn load(files: TlsFiles) -> Result<TlsState, TlsError> {
        let config = files.load()?;
        Ok(TlsState {
            files,
            current: RwLock::new(config),
        })
    }

    /// The configuration for a new connection.
    #[must_use]
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether clients must present a certificate.
    #[must_use]
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// Reads the files again and uses them for new connections.
    ///
    /// # Errors
    /// The [`TlsError`] of [`TlsFiles::load`]; the configuration in use is
    /// kept then.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = self.files.load()?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        let c = dir.join("c.pem");
        let k = dir.join("k.pem");
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
        TlsFiles {
            cert: c,
            key: k,
            client_ca: None,
        }
    }

    #[test]
    fn bad_files_are_named_and_the_key_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let err = files(dir.path(), "", &key).load().unwrap_err().to_string();
        assert!(
            err.contains("c.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = files(dir.path(), &cert, &cert)
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("k.pem") && err.contains("no usable PEM private key"),
            "{err}"
        );
        let good = files(dir.path(), &cert, &key);
        let state = TlsState::load(good.clone()).unwrap();
        assert!(!state.mutual());
        let shown = format!("{state:?}");
        assert!(
            shown.contains("k.pem") && !shown.contains("PRIVATE"),
            "{shown}"
        );
        // A CA file without certificates is refused too.
        let mut with_ca = good;
        with_ca.client_ca = Some(dir.path().join("k.pem"));
        let err = with_ca.load().unwrap_err().to_string();
        assert!(err.contains("no PEM CA certificate"), "{err}");
    }

    #[test]
    fn a_pem_file_is_read_within_its_size_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pem");
        std::fs::write(&path, "-----BEGIN X-----\n").unwrap();
        assert_eq!(&*read_pem(&path, false).unwrap(), b"-----BEGIN X-----\n");
        // Larger than the limit: refused before reading (a sparse file).
        let big = std::fs::File::create(dir.path().join("big.pem")).unwrap();
        big.set_len(MAX_PEM_LEN + 1).unwrap();
        let err = read_pem(&dir.path().join("big.pem"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than 1 MiB"), "{err}");
        // A file with more to read than its size said, as one that grew
        // while it was read: /proc files are regular files of size 0 that
        // read as text.
        let proc_file = Path::new("/proc/self/status");
        if proc_file.exists() {
            let err = read_pem(proc_file, false).unwrap_err().to_string();
            assert!(err.contains("changed while it was read"), "{err}");
        }
    }

    /// Our PEM key reader against rustls-pki-types' (the model): the same
    /// form and DER for every key it takes, an error wherever it errs.
    #[test]
    fn pem_keys_decode_as_rustls_pki_types_decodes_them() {
        let model = |text: &str| PrivateKeyDer::from_pem_slice(text.as_bytes());
        let ours = |text: &str| pem_private_key(text.as_bytes());
        let same = |text: &str| {
            let (m, o) = (model(text).unwrap(), ours(text).unwrap());
            assert_eq!(
                std::mem::discriminant(&m),
                std::mem::discriminant(&*o),
                "{text}"
            );
            assert_eq!(m.secret_der(), o.secret_der(), "{text}");
        };
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
            let key = rcgen::KeyPair::generate_for(alg).unwrap().serialize_pem();
            same(&key);
            // After a certificate and another section, with CRLF ends.
            let params =
                "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
            same(&format!("{}{params}{key}", made.cert.pem()).replace('\n', "\r\n"));
            // CR alone ends a line too: CR-only files, and a BEGIN line
            // after a CR inside another line (review of 2026-12-04: we
            // read the second key where the model read the first).
            same(&key.replace('\n', "\r"));
            let other = rcgen::KeyPair::generate_for(alg).unwrap().serialize_pem();
            same(&format!("junk\r{key}{other}"));
            // A section left open before the key: the key alone (the
            // model would prefix the open section's base64; found by fuzzing).
            let open = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n";
            let alone = ours(&format!("{open}{key}")).unwrap();
            assert_eq!(alone.secret_der(), model(&key).unwrap().secret_der());
            // The other labels give the other forms (same bytes).
            for label in ["EC PRIVATE KEY", "RSA PRIVATE KEY"] {
                same(&key.replace("PRIVATE KEY", label));
            }
            // What the model refuses, we refuse.
            let cut = key.split("-----END").next().unwrap().to_owned();
            let body_start = key.find('\n').unwrap() + 1;
            let mut flipped = key.clone().into_bytes();
            flipped[body_start + 3] = b'*';
            let flipped = String::from_utf8(flipped).unwrap();
            for bad in [
                cut.as_str(),
                flipped.as_str(),
                made.cert.pem().as_str(),
                "",
                "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
            ] {
                assert!(ours(bad).is_err(), "{bad}");
                assert!(
                    model(bad).map_or(true, |k| k.secret_der().is_empty()),
                    "the model takes {bad}"
                );
            }
        }
    }

    #[test]
    fn the_key_checks_hold_without_rustls_taking_the_der() {
        let dir = tempfile::tempdir().unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        // A key that is not the certificate's: refused, naming both files.
        let err = files(
            dir.path(),
            &one.cert.pem(),
            &two.signing_key.serialize_pem(),
        )
        .load()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("k.pem") && err.contains("cannot be used with the certificate"),
            "{err}"
        );
        // Mutual TLS on the client side: the same check.
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, one.cert.pem()).unwrap();
        let good = files(
            dir.path(),
            &one.cert.pem(),
            &one.signing_key.serialize_pem(),
        );
        assert!(good.load().is_ok());
        let config = client_config(&ca, Some((&good.cert, &good.key))).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        let mismatched = files(
            dir.path(),
            &two.cert.pem(),
            &one.signing_key.serialize_pem(),
        );
        let err = client_config(&ca, Some((&mismatched.cert, &mismatched.key)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot be used with the client certificate"),
            "{err}"
        );
    }

    /// The SEC1 `ECPrivateKey` inside a PKCS#8 EC key: the content of its
    /// last element, an OCTET STRING (a test-time conversion, as
    /// `openssl ec` would write the key).
    fn sec1_of(pkcs8: &[u8]) -> Vec<u8> {
        // SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING { .. } }
        let (mut at, len_of) = (2usize, |d: &[u8], at: usize| -> (usize, usize) {
            match d[at] {
                n if n < 0x80 => (usize::from(n), 1),
                0x81 => (usize::from(d[at + 1]), 2),
                _ => (usize::from(d[at + 1]) << 8 | usize::from(d[at + 2]), 3),
            }
        });
        if pkcs8[1] & 0x80 != 0 {
            at += usize::from(pkcs8[1] & 0x7f);
        }
        at += 3; // INTEGER 0
        let (alg, n) = len_of(pkcs8, at + 1);
        at += 1 + n + alg;
        assert_eq!(pkcs8[at], 0x04, "an OCTET STRING");
        let (key, n) = len_of(pkcs8, at + 1);
        pkcs8[at + 1 + n..at + 1 + n + key].to_vec()
    }

    #[test]
    fn sec1_keys_load_through_our_wiped_pkcs8_wrapping() {
        use base64ct::{Base64, Encoding};
        let dir = tempfile::tempdir().unwrap();
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
        ] {
            let pair = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
                .unwrap()
                .self_signed(&pair)
                .unwrap();
            let sec1 = sec1_of(&pair.serialize_der());
            let pem = format!(
                "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
                Base64::encode_string(&sec1)
            );
            assert!(matches!(
                *pem_private_key(pem.as_bytes()).unwrap(),
                PrivateKeyDer::Sec1(_)
            ));
            // Taken, and checked against its certificate.
            let good = files(dir.path(), &cert.pem(), &pem);
            assert!(good.load().is_ok(), "{alg:?}");
            // The wrapping is what rustls's own conversion makes: the same
            // signing key's public half.
            let ours = sec1_signing_key(&sec1).unwrap();
            let theirs = rustls::crypto::ring::sign::any_supported_type(&PrivateKeyDer::Sec1(
                sec1.clone().into(),
            ))
            .unwrap();
            assert!(ours.public_key().is_some());
            assert_eq!(
                ours.public_key().map(|k| k.to_vec()),
                theirs.public_key().map(|k| k.to_vec())
            );
            // Another certificate's key is refused as before.
            let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
            let err = files(dir.path(), &other.cert.pem(), &pem)
                .load()
                .unwrap_err()
                .to_string();
            assert!(err.contains("cannot be used with the certificate"), "{err}");
        }
        assert!(sec1_signing_key(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
    }
}
