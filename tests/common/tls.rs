//! Throw-away certificates: a CA and a server certificate for 127.0.0.1 and localhost.

use std::path::{Path, PathBuf};

use nightcrier::sim::SimTls;

pub struct TestTls {
    pub ca_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestTls {
    pub fn sim(&self) -> SimTls {
        SimTls {
            cert_chain_pem: self.cert_pem.clone().into_bytes(),
            key_pem: self.key_pem.clone().into_bytes(),
        }
    }
}

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir`; returns them and the CA path.
pub fn tls_material(dir: &Path) -> (TestTls, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "nightcrier test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let server = server_params.signed_by(&server_key, &issuer).unwrap();
    let tls = TestTls {
        ca_path: dir.join("ca.pem"),
        cert_path: dir.join("server.pem"),
        key_path: dir.join("server.key"),
        cert_pem: server.pem(),
        key_pem: server_key.serialize_pem(),
    };
    std::fs::write(&tls.ca_path, ca.pem()).unwrap();
    std::fs::write(&tls.cert_path, &tls.cert_pem).unwrap();
    std::fs::write(&tls.key_path, &tls.key_pem).unwrap();
    let ca_path = tls.ca_path.clone();
    (tls, ca_path)
}
