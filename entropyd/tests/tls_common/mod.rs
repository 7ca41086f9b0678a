//! Test PKI made at test time (rcgen, ring) and a small TLS HTTP client.
//! No key is ever committed: every certificate and key lives in a temp dir.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A CA and the files it made.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    pub ca_pem: PathBuf,
}

/// A client identity for mutual TLS.
pub struct ClientId {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pem: String,
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_pem = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        Pki { dir, ca, ca_pem }
    }

    fn leaf(&self, sans: Vec<String>, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params = CertificateParams::new(sans).unwrap();
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A server certificate for localhost and 127.0.0.1 and its key (mode
    /// 0600): (cert path, key path).
    pub fn server(&self, name: &str) -> (PathBuf, PathBuf) {
        self.server_for(name, &["localhost", "127.0.0.1"])
    }

    /// A server certificate for `sans` only and its key (mode 0600).
    pub fn server_for(&self, name: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let (cert, key) = self.leaf(
            sans.iter().map(|s| (*s).to_owned()).collect(),
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let cert_path = self.dir.path().join(format!("{name}.pem"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_path, cert).unwrap();
        write_private(&key_path, &key);
        (cert_path, key_path)
    }

    /// A client certificate and key.
    pub fn client(&self, name: &str) -> ClientId {
        let (cert, key_pem) = self.leaf(
            vec![format!("{name}.client")],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        ClientId { chain, key_pem }
    }

    /// The client files (cert path, key path) for a client identity.
    pub fn client_files(&self, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.leaf(
            vec![format!("{name}.client")],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let cert_path = self.dir.path().join(format!("{name}-client.pem"));
        let key_path = self.dir.path().join(format!("{name}-client.key"));
        std::fs::write(&cert_path, cert).unwrap();
        write_private(&key_path, &key);
        (cert_path, key_path)
    }
}

/// A rustls client config trusting `ca_pem`, with an optional identity.
pub fn client_config(ca_pem: &Path, id: Option<&ClientId>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match id {
        Some(id) => builder
            .with_client_auth_cert(
                id.chain.clone(),
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects from `source` (e.g. 127.0.0.2) to `addr`.
pub fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.bind(&SocketAddr::new(source, 0).into())?;
    s.connect_timeout(&addr.into(), Duration::from_secs(10))?;
    Ok(s.into())
}

/// One HTTPS request; returns (status, body) or the TLS/IO error text.
pub fn tls_request(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    request: &[u8],
) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tls_request_on(config, tcp, request)
}

pub fn tls_request_on(
    config: &Arc<ClientConfig>,
    tcp: TcpStream,
    request: &[u8],
) -> Result<(u16, String), String> {
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(request).map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The DER of the certificate the server at `addr` presents.
pub fn server_cert(config: &Arc<ClientConfig>, addr: SocketAddr) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut tcp = tcp;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    conn.peer_certificates().unwrap()[0].to_vec()
}
