//! The binary runs from any directory: with no config file it uses the Casbin model and policy
//! compiled in; with a config file, relative paths in it mean "beside the file".

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, listens, mint, wait_until, SECRET};
use serde_json::json;

/// The broker, started with `cwd` as its working directory and no `MAILBOX__PERMISSIONS__…`.
struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(cwd: &Path, config: Option<&Path>) -> Self {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailbox"));
        cmd.arg("serve");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd
            .current_dir(cwd)
            .env_remove("MAILBOX_CONFIG")
            .env("MAILBOX__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("MAILBOX__STORAGE__ENGINE", "memory")
            .env("MAILBOX__AUTH__JWT_SECRET", SECRET)
            .env("MAILBOX__LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the mailbox binary");
        wait_until(Duration::from_secs(20), "the broker to listen", || {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    std::io::Read::read_to_string(&mut e, &mut err).ok();
                }
                panic!("the broker exited ({status}): {err}");
            }
            listens(child.id(), port)
        });
        Self { child, port }
    }

    /// (status of alice's direct send, status of her broadcast): the shipped policy allows the
    /// first and refuses the second.
    async fn policy_in_force(&self) -> (u16, u16) {
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/v1/messages", self.port);
        let mut out = vec![];
        for to in ["mailbox:bob", "broadcast"] {
            let r = http
                .post(&url)
                .bearer_auth(mint("alice", &[], 300))
                .json(&json!({"to": to, "payload": "hi"}))
                .send()
                .await
                .expect("send");
            out.push(r.status().as_u16());
        }
        (out[0], out[1])
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_config_file_runs_anywhere_on_the_compiled_in_policy() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(cwd.path(), None);
    assert_eq!(s.policy_in_force().await, (201, 403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_paths_in_a_config_file_are_beside_the_file() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let etc = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(etc.path().join("casbin")).expect("mkdir");
    for f in ["model.conf", "policy.csv"] {
        std::fs::copy(
            repo.join("config/casbin").join(f),
            etc.path().join("casbin").join(f),
        )
        .expect("copy");
    }
    let config = etc.path().join("mailbox.toml");
    std::fs::write(
        &config,
        "[permissions]\nmodel = \"casbin/model.conf\"\npolicy = \"casbin/policy.csv\"\n",
    )
    .expect("write config");
    let cwd = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(cwd.path(), Some(&config));
    assert_eq!(s.policy_in_force().await, (201, 403));
}
