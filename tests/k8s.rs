//! The kustomize base ships the same config and Casbin files as `config/`, and renders.

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn k8s_files_mirror_config() {
    for (shipped, mirror) in [
        ("config/production.toml", "k8s/files/production.toml"),
        ("config/casbin/model.conf", "k8s/files/model.conf"),
        ("config/casbin/policy.csv", "k8s/files/policy.csv"),
    ] {
        let a = std::fs::read(repo().join(shipped)).expect("shipped file");
        let b = std::fs::read(repo().join(mirror)).expect("k8s mirror");
        assert!(
            a == b,
            "{mirror} differs from {shipped}: copy it over (cp {shipped} {mirror})"
        );
    }
}

#[test]
fn production_config_is_valid() {
    let cfg = mailbox::config::Config::load(Some(&repo().join("config/production.toml")))
        .expect("production.toml loads");
    assert_eq!(cfg.server.bind, "0.0.0.0:7700");
}

#[test]
fn kustomize_renders_when_kubectl_is_installed() {
    // kubectl is an operator tool, not a build dependency: without it there is nothing to run.
    let Ok(out) = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join("k8s"))
        .output()
    else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for kind in [
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "StatefulSet",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(
            text.contains(&format!("kind: {kind}\n")),
            "{kind} missing from the rendered base"
        );
    }
}
