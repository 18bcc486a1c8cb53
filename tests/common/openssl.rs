//! Certificates made the way operators make them: with the `openssl` command line, in a
//! test's temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use nightcrier::sim::SimTls;

pub struct OpensslCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

impl OpensslCert {
    pub fn sim(&self) -> SimTls {
        SimTls {
            cert_chain_pem: self.cert_pem.clone().into_bytes(),
            key_pem: self.key_pem.clone().into_bytes(),
        }
    }

    fn read(dir: &Path, stem: &str) -> OpensslCert {
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}.key"));
        OpensslCert {
            cert_pem: std::fs::read_to_string(&cert_path).unwrap(),
            key_pem: std::fs::read_to_string(&key_path).unwrap(),
            cert_path,
            key_path,
        }
    }
}

/// Runs `openssl` in `dir`; panics with its stderr if it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (is it installed?)");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The usual self-signed certificate, exactly as operators make it for
/// kubernetes-mcp-server's `--tls-cert` (OpenSSL 3 marks it CA:TRUE):
/// `openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=<cn>
/// -addext subjectAltName=<san>`. `extra`: more `openssl req` arguments.
pub fn self_signed(dir: &Path, stem: &str, cn: &str, san: &str, extra: &[&str]) -> OpensslCert {
    let subject = format!("/CN={cn}");
    let san = format!("subjectAltName={san}");
    let (cert, key) = (format!("{stem}.pem"), format!("{stem}.key"));
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj", &subject,
        "-addext", &san, "-keyout", &key, "-out", &cert,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
    OpensslCert::read(dir, stem)
}

/// A self-signed CA:TRUE certificate valid only from `start` to `end` (`YYYYMMDDHHMMSSZ`).
/// OpenSSL 3.0's `req` and `x509` cannot set past dates (`-not_before` came in 3.4), so
/// this goes through `openssl ca -selfsign -startdate -enddate` with a throw-away database.
pub fn self_signed_between(
    dir: &Path,
    stem: &str,
    cn: &str,
    san: &str,
    start: &str,
    end: &str,
) -> OpensslCert {
    let db = dir.join(format!("{stem}-db"));
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join("index.txt"), "").unwrap();
    std::fs::write(db.join("serial"), "01\n").unwrap();
    let config = format!(
        "[ca]\ndefault_ca = dated\n[dated]\ndatabase = {stem}-db/index.txt\n\
         new_certs_dir = {stem}-db\nserial = {stem}-db/serial\ndefault_md = sha256\n\
         policy = any\ncopy_extensions = copy\n[any]\ncommonName = supplied\n"
    );
    let config_name = format!("{stem}-ca.cnf");
    std::fs::write(dir.join(&config_name), config).unwrap();
    let (cert, key, csr) = (
        format!("{stem}.pem"),
        format!("{stem}.key"),
        format!("{stem}.csr"),
    );
    let subject = format!("/CN={cn}");
    let san = format!("subjectAltName={san}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &subject,
            "-addext",
            &san,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-notext",
            "-config",
            &config_name,
            "-selfsign",
            "-keyfile",
            &key,
            "-in",
            &csr,
            "-startdate",
            start,
            "-enddate",
            end,
            "-out",
            &cert,
        ],
    );
    OpensslCert::read(dir, stem)
}

/// A CA (`openssl req -x509`) with the subject `subj`, e.g. `/O=Example/CN=Ops Root CA`.
pub fn ca(dir: &Path, stem: &str, subj: &str) -> OpensslCert {
    let (cert, key) = (format!("{stem}.pem"), format!("{stem}.key"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj", subj,
            "-keyout", &key, "-out", &cert,
        ],
    );
    OpensslCert::read(dir, stem)
}

/// A server certificate for `san` signed by `ca` (`openssl x509 -req -CA`), CA:FALSE.
pub fn leaf_signed_by(
    dir: &Path,
    stem: &str,
    ca: &OpensslCert,
    cn: &str,
    san: &str,
) -> OpensslCert {
    let (cert, key, csr, ext) = (
        format!("{stem}.pem"),
        format!("{stem}.key"),
        format!("{stem}.csr"),
        format!("{stem}.ext"),
    );
    std::fs::write(
        dir.join(&ext),
        format!("basicConstraints=critical,CA:FALSE\nsubjectAltName={san}\n"),
    )
    .unwrap();
    let subject = format!("/CN={cn}");
    let (ca_cert, ca_key) = (
        ca.cert_path.display().to_string(),
        ca.key_path.display().to_string(),
    );
    openssl(
        dir,
        &[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout", &key,
            "-out", &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    OpensslCert::read(dir, stem)
}
