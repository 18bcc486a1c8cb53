//! rustls client configuration. One shared `ClientConfig` per distinct trust setting (the
//! default webpki roots, each `ca_file`, and "skip verification"), so session resumption
//! tickets are shared and reconnects stay cheap. rustls' connection API changes in 0.24, so
//! the loop uses rustls only through this file, `tls_session.rs` and `transport.rs`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

#[derive(Debug)]
pub enum TlsSetupError {
    CaFile { path: PathBuf, detail: String },
    ServerName(String),
    Rustls(String),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::CaFile { path, detail } => {
                write!(f, "ca_file {}: {detail}", path.display())
            }
            TlsSetupError::ServerName(host) => {
                write!(f, "{host:?} is not a valid server name")
            }
            TlsSetupError::Rustls(detail) => f.write_str(detail),
        }
    }
}

#[derive(Hash, PartialEq, Eq, Clone)]
enum Trust {
    WebPki,
    CaFile(PathBuf),
    Insecure,
}

/// Cache of client configurations keyed by trust setting.
#[derive(Default)]
pub struct TlsConfigs {
    configs: HashMap<Trust, Arc<ClientConfig>>,
}

impl TlsConfigs {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(
        &mut self,
        ca_file: Option<&Path>,
        insecure: bool,
    ) -> Result<Arc<ClientConfig>, TlsSetupError> {
        let trust = match (insecure, ca_file) {
            (true, _) => Trust::Insecure,
            (false, Some(path)) => Trust::CaFile(path.to_owned()),
            (false, None) => Trust::WebPki,
        };
        if let Some(config) = self.configs.get(&trust) {
            return Ok(config.clone());
        }
        let config = Arc::new(build(&trust)?);
        self.configs.insert(trust, config.clone());
        Ok(config)
    }

    /// Forgets cached configurations, e.g. after a reload changed a CA file's contents.
    pub fn clear(&mut self) {
        self.configs.clear();
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn build(trust: &Trust) -> Result<ClientConfig, TlsSetupError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    let config = match trust {
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth(),
        Trust::WebPki | Trust::CaFile(_) => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Trust::CaFile(path) = trust {
                add_ca_file(&mut roots, path)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(config)
}

fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsSetupError> {
    let error = |detail: String| TlsSetupError::CaFile {
        path: path.to_owned(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| error(format!("bad PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| error(format!("unusable certificate: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(error("no PEM certificate found".into()));
    }
    Ok(())
}

pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsSetupError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsSetupError::ServerName(host.to_owned()))
}

/// `insecure_skip_tls_verify = true`: the handshake still encrypts, but any certificate is
/// accepted. Signatures are still checked so the handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A server and a client configuration that trust each other, for tests: a fresh
/// self-signed certificate for `localhost`; the server offers only `versions`.
#[cfg(test)]
pub(crate) fn test_pair(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (Arc<rustls::ServerConfig>, Arc<ClientConfig>) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = CertificateDer::from(params.self_signed(&key).unwrap().der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_shared_per_trust_setting() {
        let mut configs = TlsConfigs::new();
        let a = configs.get(None, false).unwrap();
        let b = configs.get(None, false).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let insecure = configs.get(None, true).unwrap();
        assert!(!Arc::ptr_eq(&a, &insecure));
    }

    #[test]
    fn unreadable_or_empty_ca_file_names_the_file() {
        let mut configs = TlsConfigs::new();
        let missing = configs.get(Some(Path::new("no/such/ca.pem")), false);
        let message = missing.err().unwrap().to_string();
        assert!(message.contains("no/such/ca.pem"), "{message}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a pem").unwrap();
        let message = configs.get(Some(&empty), false).err().unwrap().to_string();
        assert!(message.contains("no PEM certificate"), "{message}");
    }
}
