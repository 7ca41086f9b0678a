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
//! - The key's PEM text is read into a wiped-on-drop buffer. (The parsed
//!   key lives inside rustls and ring, which do not wipe it on drop.)
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
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use zeroize::Zeroizing;

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
    let mut text = Zeroizing::new(Vec::new());
    file.take(MAX_PEM_LEN.saturating_add(1))
        .read_to_end(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_PEM_LEN {
        return Err(bad(path, "larger than 1 MiB"));
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

/// The private key of the PEM file `path` (mode 0600 or 0400); `what`
/// names it in errors.
fn private_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read_pem(path, true)?;
    PrivateKeyDer::from_pem_slice(&text)
        .map_err(|e| bad(path, format!("no usable PEM {what}: {e}")))
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
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca, "CA certificate")? {
        roots
            .add(cert)
            .map_err(|e| bad(ca, format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(ca, format!("TLS versions: {e}")))?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert, "client certificate")?;
            let key_der = private_key(key, "client key")?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                bad(
                    key,
                    format!(
                        "the client key cannot be used with the client certificate {}: {e}",
                        cert.display()
                    ),
                )
            })?
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
        let key = private_key(&self.key, "private key")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| bad(&self.cert, format!("TLS versions: {e}")))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(ca, "certificate")? {
                    roots
                        .add(cert)
                        .map_err(|e| bad(ca, format!("not a usable CA certificate: {e}")))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| bad(ca, format!("cannot verify clients with it: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            bad(
                &self.key,
                format!(
                    "cannot be used with the certificate {}: {e}",
                    self.cert.display()
                ),
            )
        })?;
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
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
