//! Helpers for the secure-deployment tests (TLS Redis with ACL users, HTTPS listener, encryption
//! at rest): certificates made in the test (a private CA and leaves for 127.0.0.1/localhost), a
//! real `redis-server` serving TLS only, and the real broker with its logs captured in a file.
//! Included with `#[path]` by those tests only, so other test binaries do not build rcgen.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

use crate::common::{free_port, set_env, start_on_a_free_port, wait_listening, SECRET};

/// A private certificate authority writing PEM files into its own temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA certificate (what clients trust).
    pub ca_pem: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_pem = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_pem, cert.pem()).expect("write CA");
        Self {
            dir,
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1 signed by this CA, written as
    /// `<file>.pem` (certificate) and `<file>.key` (PKCS#8 key) into `into`.
    pub fn leaf_into(&self, into: &Path, file: &str, common_name: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let (c, k) = (
            into.join(format!("{file}.pem")),
            into.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write certificate");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }

    pub fn leaf(&self, file: &str) -> (PathBuf, PathBuf) {
        self.leaf_into(self.dir.path(), file, file)
    }
}

/// A `redis-server` that serves TLS only (no plaintext port), with the `default` user
/// protected by [`TlsRedis::ADMIN_PASSWORD`] (the test's own admin access).
pub struct TlsRedis {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl TlsRedis {
    pub const ADMIN_PASSWORD: &'static str = "admin-pw-for-the-test";

    pub fn start(pki: &Pki) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let (cert, key) = pki.leaf("redis");
        let port = free_port();
        let conf = dir.path().join("redis.conf");
        std::fs::write(
            &conf,
            format!(
                "port 0\ntls-port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n\
                 tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients no\n\
                 dir {}\nuser default on >{} ~* &* +@all\n",
                cert.display(),
                key.display(),
                pki.ca_pem.display(),
                dir.path().display(),
                Self::ADMIN_PASSWORD,
            ),
        )
        .expect("write redis.conf");
        let mut child = Command::new("redis-server")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (make test installs it)");
        assert!(
            wait_listening(&mut child, port, "redis-server to listen on TLS"),
            "redis-server exited: a parallel test took its port {port}"
        );
        Self { port, child, dir }
    }

    /// `rediss://` URL of this server for `user` (no password: that comes from a file).
    pub fn url_for(&self, user: &str) -> String {
        format!("rediss://{user}@127.0.0.1:{}", self.port)
    }

    /// An admin connection (default user, TLS verified against `ca`).
    pub async fn admin(&self, ca: &Path) -> redis::aio::MultiplexedConnection {
        let url = format!(
            "rediss://default:{}@127.0.0.1:{}",
            Self::ADMIN_PASSWORD,
            self.port
        );
        let client = redis::Client::build_with_tls(
            url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(ca).expect("read CA")),
            },
        )
        .expect("admin client");
        tokio::time::timeout(
            Duration::from_secs(10),
            client.get_multiplexed_async_connection(),
        )
        .await
        .expect("admin connects in time")
        .expect("admin connection")
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The README's Redis ACL line for the broker's user, with its placeholder password replaced:
/// the test runs the broker under exactly what the README tells operators to configure.
pub fn readme_acl_line(password: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README");
    let line = readme
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ACL SETUSER mailbox "))
        .expect("the README gives an `ACL SETUSER mailbox …` line");
    assert!(
        line.contains(">CHANGE-ME"),
        "the README's ACL line sets the password placeholder >CHANGE-ME"
    );
    line.split_whitespace()
        .skip(1)
        .map(|w| {
            if w == ">CHANGE-ME" {
                format!(">{password}")
            } else {
                w.to_owned()
            }
        })
        .collect()
}

/// The real broker, configured through `MAILBOX__…` variables, its logs (JSON, debug) in a file.
pub struct LoggedBroker {
    pub port: u16,
    child: Option<Child>,
    pub log: PathBuf,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl LoggedBroker {
    /// Starts a broker with `env` on top of the test defaults (secret, free port, debug logs).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the broker");
        let port = free_port();
        let mut all: Vec<(String, String)> = vec![
            ("MAILBOX__SERVER__BIND".into(), format!("127.0.0.1:{port}")),
            ("MAILBOX__AUTH__JWT_SECRET".into(), SECRET.into()),
            ("MAILBOX__LOG__FORMAT".into(), "json".into()),
            ("MAILBOX__LOG__LEVEL".into(), "debug".into()),
            ("MAILBOX__REDIS__COMMAND_TIMEOUT_MS".into(), "1000".into()),
            (
                "MAILBOX__SPOOL__DIR".into(),
                dir.path().join("spool").display().to_string(),
            ),
        ];
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let log = dir.path().join("broker.log");
        let mut b = Self {
            port,
            child: None,
            log,
            env: all,
            _dir: dir,
        };
        start_on_a_free_port(port, "the broker", |p| {
            b.port = p;
            set_env(
                &mut b.env,
                "MAILBOX__SERVER__BIND",
                format!("127.0.0.1:{p}"),
            );
            b.spawn()
        });
        b
    }

    /// Starts the broker and waits until it listens; false when it exited first.
    fn spawn(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailbox"))
            .arg("serve")
            .env_remove("MAILBOX_CONFIG")
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the broker");
        let up = wait_listening(&mut child, self.port, "the broker to listen");
        self.child = Some(child);
        up
    }

    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "the restarted broker could not bind its port {} again; logs:\n{}",
            self.port,
            self.logs()
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn spool_dir(&self) -> PathBuf {
        self._dir.path().join("spool")
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for LoggedBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
