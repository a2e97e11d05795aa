//! The HTTPS/WSS listener's TLS (config `server.tls_cert_file`, `server.tls_key_file`): a rustls
//! server config (TLS 1.2 and 1.3, aws-lc-rs) whose certificate comes from a resolver that
//! re-reads the two files when they change, so a rotated certificate (cert-manager, a renewed
//! Secret) is served without a restart. The files' modification times are checked at most once
//! per second, on a handshake; a rotation caught half-written (key and certificate not matching
//! yet) keeps the previous pair and is retried on a later handshake.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often at most the files are looked at again.
const RECHECK: Duration = Duration::from_secs(1);

/// Why the listener's certificate could not be loaded (at start: exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("configuration key `server.tls_cert_file`: `{path}`: {cause}")]
    Cert { path: String, cause: String },
    #[error("configuration key `server.tls_key_file`: `{path}`: {cause}")]
    Key { path: String, cause: String },
    #[error("configuration keys `server.tls_cert_file` and `server.tls_key_file`: the key does not match the certificate ({0})")]
    Mismatch(String),
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads and checks one certificate chain + key pair.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_error = |cause: String| TlsError::Cert {
        path: cert.display().to_string(),
        cause,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no PEM certificate in the file".into()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        cause: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, der, &aws_lc_rs::default_provider())
        .map_err(|e| TlsError::Mismatch(e.to_string()))
}

struct Current {
    key: Arc<CertifiedKey>,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

/// Serves the current certificate, reloading it when the files change.
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Current>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl ReloadingCert {
    /// Loads the pair now: a bad pair at start is a configuration error.
    pub fn new(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let stamps = (modified(cert), modified(key));
        let loaded = load(cert, key)?;
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Mutex::new(Current {
                key: Arc::new(loaded),
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    fn refresh(&self, c: &mut Current) {
        if c.checked.elapsed() < RECHECK {
            return;
        }
        c.checked = Instant::now();
        let stamps = (modified(&self.cert), modified(&self.key));
        if stamps == c.stamps {
            return;
        }
        match load(&self.cert, &self.key) {
            Ok(k) => {
                c.key = Arc::new(k);
                c.stamps = stamps;
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            // Likely mid-rotation (one file replaced, not the other yet): keep serving the
            // previous pair and look again on a later handshake.
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate changed but cannot be loaded; serving the previous one")
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut c = match self.current.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.refresh(&mut c);
        Some(c.key.clone())
    }
}

/// The listener's rustls config for `cert` + `key` (PEM), reloaded on change.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let resolver = Arc::new(ReloadingCert::new(cert, key)?);
    let mut cfg =
        rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Mismatch(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
