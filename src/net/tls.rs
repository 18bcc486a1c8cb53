//! rustls client configuration. One shared `ClientConfig` per distinct trust setting (the
//! default webpki roots, each `ca_file`, and "skip verification"), so session resumption
//! tickets are shared and reconnects stay cheap. rustls' connection API changes in 0.24, so
//! the loop uses rustls only through this file, `tls_session.rs` and `transport.rs`.
//!
//! Server certificates are checked by webpki against the webpki roots plus the `ca_file`
//! (the system store is not read). A certificate that is itself in the `ca_file` is pinned:
//! accepted when its name and validity period fit, even if it is a CA certificate, which
//! is how `openssl req -x509` makes self-signed ones. Every refusal names the server and
//! says what is wrong and what to do, in [`CertificateProblem`].

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};

use super::certificate::{self, format_time, CertificateSummary};

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
            let mut pinned = Vec::new();
            if let Trust::CaFile(path) = trust {
                pinned = add_ca_file(&mut roots, path)?;
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
            let verifier = PinningVerifier {
                webpki,
                pinned,
                has_ca_file: matches!(trust, Trust::CaFile(_)),
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// Adds every certificate of the file to `roots`; returns them, for pinning.
fn add_ca_file(
    roots: &mut RootCertStore,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let error = |detail: String| TlsSetupError::CaFile {
        path: path.to_owned(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let mut certificates = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| error(format!("bad PEM: {e}")))?;
        roots
            .add(cert.clone())
            .map_err(|e| error(format!("unusable certificate: {e}")))?;
        certificates.push(cert);
    }
    if certificates.is_empty() {
        return Err(error("no PEM certificate found".into()));
    }
    Ok(certificates)
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

/// webpki's verification, then pinning: when webpki refuses a server certificate that is
/// byte for byte in the `ca_file`, it is accepted if valid now and for the server's name.
/// Handshake signatures are always webpki's.
#[derive(Debug)]
struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
    has_ca_file: bool,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(refused) => refused,
        };
        let summary = certificate::summarize(end_entity.as_ref());
        let pinned = self
            .pinned
            .iter()
            .any(|cert| cert.as_ref() == end_entity.as_ref());
        let problem = if pinned {
            match check_pinned(end_entity, server_name, now, summary.as_ref()) {
                Ok(()) => return Ok(ServerCertVerified::assertion()),
                Err(problem) => problem,
            }
        } else {
            explain(&refused, summary.as_ref(), self.has_ca_file)
        };
        let problem = CertificateProblem {
            server: server_name.to_str().into_owned(),
            problem,
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(problem)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A pinned certificate is trusted as it is; its validity period and names still count.
fn check_pinned(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
    summary: Option<&CertificateSummary>,
) -> Result<(), Problem> {
    let Some(summary) = summary else {
        return Err(Problem::Unreadable);
    };
    if now.as_secs() < summary.not_before {
        return Err(Problem::NotYetValid {
            not_before: summary.not_before,
            chain: false,
        });
    }
    if now.as_secs() > summary.not_after {
        return Err(Problem::Expired {
            not_after: summary.not_after,
            chain: false,
        });
    }
    let parsed = webpki::EndEntityCert::try_from(end_entity).map_err(|_| Problem::Unreadable)?;
    match parsed.verify_is_valid_for_subject_name(server_name) {
        Ok(()) => Ok(()),
        Err(webpki::Error::CertNotValidForName(context)) => Err(Problem::NameMismatch {
            names: context.presented,
        }),
        Err(other) => Err(Problem::Other(format!("{other:?}"))),
    }
}

/// Turns webpki's refusal into what an operator can act on.
fn explain(
    refused: &rustls::Error,
    summary: Option<&CertificateSummary>,
    has_ca_file: bool,
) -> Problem {
    let rustls::Error::InvalidCertificate(error) = refused else {
        return Problem::Other(refused.to_string());
    };
    match (error, summary) {
        (CertificateError::NotValidForNameContext { presented, .. }, _) => Problem::NameMismatch {
            names: presented.clone(),
        },
        (CertificateError::ExpiredContext { not_after, .. }, _) => Problem::Expired {
            not_after: not_after.as_secs(),
            chain: summary.is_none_or(|s| s.not_after != not_after.as_secs()),
        },
        (CertificateError::NotValidYetContext { not_before, .. }, _) => Problem::NotYetValid {
            not_before: not_before.as_secs(),
            chain: summary.is_none_or(|s| s.not_before != not_before.as_secs()),
        },
        (CertificateError::UnknownIssuer, Some(s)) if s.self_issued => Problem::SelfSigned {
            subject: s.subject.clone(),
        },
        (CertificateError::UnknownIssuer, Some(s)) => Problem::UnknownIssuer {
            issuer: s.issuer.clone(),
            has_ca_file,
        },
        (CertificateError::Other(other), _)
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            Problem::CaAsServerCertificate {
                subject: summary.map(|s| s.subject.clone()),
            }
        }
        _ => Problem::Other(refused.to_string()),
    }
}

/// Why a server certificate was refused, for the operator: carried inside rustls' error
/// and written out by `tls_session`.
#[derive(Debug)]
pub struct CertificateProblem {
    server: String,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    CaAsServerCertificate {
        subject: Option<String>,
    },
    SelfSigned {
        subject: String,
    },
    UnknownIssuer {
        issuer: String,
        has_ca_file: bool,
    },
    NameMismatch {
        names: Vec<String>,
    },
    /// `chain`: the date is another certificate's of the chain, not the server's own.
    Expired {
        not_after: u64,
        chain: bool,
    },
    NotYetValid {
        not_before: u64,
        chain: bool,
    },
    Unreadable,
    Other(String),
}

/// At most this many of a certificate's names are listed.
const MAX_LISTED_NAMES: usize = 10;

impl fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = &self.server;
        match &self.problem {
            Problem::CaAsServerCertificate { subject } => {
                write!(f, "the server's certificate for {server}")?;
                if let Some(subject) = subject {
                    write!(f, " ({subject})")?;
                }
                write!(
                    f,
                    " is a CA certificate (self-signed?); add it to ca_file to pin it, or give the server a \
                     certificate signed by a CA"
                )
            }
            Problem::SelfSigned { subject } => write!(
                f,
                "server certificate for {server} is self-signed ({subject}) and not in \
                 ca_file; add it to ca_file to pin it"
            ),
            Problem::UnknownIssuer {
                issuer,
                has_ca_file,
            } => {
                write!(
                    f,
                    "server certificate for {server} is issued by \"{issuer}\", which is not a \
                     trusted CA"
                )?;
                if *has_ca_file {
                    write!(
                        f,
                        " (neither in ca_file nor among the built-in webpki roots)"
                    )?;
                } else {
                    write!(
                        f,
                        " (not among the built-in webpki roots; no ca_file is set)"
                    )?;
                }
                write!(f, "; add that CA's certificate to ca_file")
            }
            Problem::NameMismatch { names } => {
                write!(
                    f,
                    "server certificate for {server} does not name {server}; "
                )?;
                if names.is_empty() {
                    return write!(
                        f,
                        "it has no subjectAltName names (the CN is not used); reissue it \
                         with subjectAltName={server}"
                    );
                }
                let listed: Vec<String> = names
                    .iter()
                    .take(MAX_LISTED_NAMES)
                    .map(|name| readable_name(name).escape_debug().to_string())
                    .collect();
                write!(f, "its names are {}", listed.join(", "))?;
                if names.len() > MAX_LISTED_NAMES {
                    write!(f, " and {} more", names.len() - MAX_LISTED_NAMES)?;
                }
                write!(
                    f,
                    "; use one of them in the endpoint, or reissue the certificate"
                )
            }
            Problem::Expired { not_after, chain } => {
                let whose = if *chain {
                    "a CA certificate in the chain of the server certificate"
                } else {
                    "server certificate"
                };
                write!(
                    f,
                    "{whose} for {server} expired on {} (notAfter)",
                    format_time(*not_after)
                )
            }
            Problem::NotYetValid { not_before, chain } => {
                let whose = if *chain {
                    "a CA certificate in the chain of the server certificate"
                } else {
                    "server certificate"
                };
                write!(
                    f,
                    "{whose} for {server} is not valid before {} (notBefore); check this \
                     host's clock",
                    format_time(*not_before)
                )
            }
            Problem::Unreadable => write!(
                f,
                "server certificate for {server} is pinned in ca_file but cannot be read"
            ),
            Problem::Other(detail) => {
                write!(f, "server certificate for {server} refused: {detail}")
            }
        }
    }
}

impl std::error::Error for CertificateProblem {}

/// webpki lists a certificate's names in its debug form: `DnsName("a.example")`,
/// `IpAddress(10.0.0.1)`; operators know them as `a.example` and `10.0.0.1`.
fn readable_name(presented: &str) -> String {
    let inner = |prefix: &str, suffix: &str| {
        presented
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .map(str::to_owned)
    };
    inner("DnsName(\"", "\")")
        .or_else(|| inner("IpAddress(", ")"))
        .or_else(|| inner("UniformResourceIdentifier(\"", "\")").map(|uri| format!("URI:{uri}")))
        .unwrap_or_else(|| presented.to_owned())
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
