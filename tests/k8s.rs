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

/// Every PrometheusRule alert has a `runbook_url` naming a page of `docs/runbooks/` that exists,
/// and every runbook page belongs to an alert.
#[test]
fn every_alert_has_a_runbook() {
    let rules =
        std::fs::read_to_string(repo().join("k8s/monitoring.yaml")).expect("monitoring.yaml");
    let mut alerts: Vec<(String, Option<String>)> = vec![];
    for line in rules.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert:") {
            alerts.push((name.trim().to_owned(), None));
        } else if let Some(url) = line.strip_prefix("runbook_url:") {
            let last = alerts.last_mut().expect("runbook_url inside an alert");
            last.1 = Some(url.trim().trim_matches('"').to_owned());
        }
    }
    assert!(alerts.len() >= 7, "{alerts:?}");
    let index = std::fs::read_to_string(repo().join("docs/runbooks/README.md")).expect("index");
    let mut pages = vec![];
    for (alert, url) in &alerts {
        let url = url
            .as_deref()
            .unwrap_or_else(|| panic!("{alert} has no runbook_url"));
        let page = url
            .strip_prefix("docs/runbooks/")
            .unwrap_or_else(|| panic!("{alert}: {url} is not under docs/runbooks/"));
        let text = std::fs::read_to_string(repo().join(url))
            .unwrap_or_else(|e| panic!("{alert}: {url}: {e}"));
        assert!(
            text.starts_with(&format!("# {alert}\n")),
            "{url} is not {alert}'s page"
        );
        assert!(
            index.contains(&format!("`{alert}`")),
            "{alert} missing from the index"
        );
        pages.push(page.to_owned());
    }
    for entry in std::fs::read_dir(repo().join("docs/runbooks")).expect("runbooks dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            name == "README.md" || pages.contains(&name),
            "docs/runbooks/{name} belongs to no alert"
        );
    }
}

/// The metric names of SPEC section 11 (the dashboard must use each of them).
const SPEC_METRICS: &[&str] = &[
    "mailbox_messages_accepted_total",
    "mailbox_messages_delivered_total",
    "mailbox_messages_acked_total",
    "mailbox_redeliveries_total",
    "mailbox_dead_letters_total",
    "mailbox_send_duration_seconds",
    "mailbox_delivery_latency_seconds",
    "mailbox_ws_sessions",
    "mailbox_actors",
    "mailbox_storage_errors_total",
    "mailbox_storage_circuit_open",
    "mailbox_spool_messages",
    "mailbox_auth_failures_total",
    "mailbox_permission_denied_total",
    "mailbox_rate_limited_total",
    "mailbox_policy_reloads_total",
    "mailbox_security_alerts_total",
    "mailbox_http_requests_total",
];

/// The Grafana dashboard is valid JSON, every query names only SPEC metrics (a histogram through
/// its `_bucket` series), and every SPEC metric has a panel.
#[test]
fn the_grafana_dashboard_uses_every_spec_metric() {
    let text =
        std::fs::read_to_string(repo().join("k8s/grafana-dashboard.json")).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut used = std::collections::BTreeSet::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("mailbox_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                let base = name.strip_suffix("_bucket").unwrap_or(&name).to_owned();
                assert!(
                    SPEC_METRICS.contains(&base.as_str()),
                    "{base} in `{expr}` is not a SPEC metric"
                );
                used.insert(base);
            }
        }
    }
    for m in SPEC_METRICS {
        assert!(used.contains(*m), "no panel shows {m}");
    }
    let kustomization =
        std::fs::read_to_string(repo().join("k8s/kustomization.yaml")).expect("kustomization");
    assert!(
        kustomization.contains("=grafana-dashboard.json"),
        "the dashboard is not in the kustomize base"
    );
}

/// The Redis password and the encryption key live in Secrets mounted as files, the config
/// points at them with the `*_file` keys, and Redis runs the broker's ACL user with exactly the
/// README's rules (which `tests/secure_redis.rs` runs the broker under).
#[test]
fn secrets_are_mounted_files_and_redis_runs_the_readme_acl_user() {
    let read = |p: &str| std::fs::read_to_string(repo().join(p)).expect(p);
    let kustomization = read("k8s/kustomization.yaml");
    let deployment = read("k8s/deployment.yaml");
    for (secret, key, env, dir) in [
        (
            "mailbox-redis",
            "password",
            "MAILBOX__REDIS__PASSWORD_FILE",
            "/var/run/secrets/mailbox-redis",
        ),
        (
            "mailbox-encryption",
            "key",
            "MAILBOX__STORAGE__ENCRYPTION_KEY_FILE",
            "/var/run/secrets/mailbox-encryption",
        ),
    ] {
        assert!(
            kustomization.contains(&format!("- name: {secret}\n")),
            "secretGenerator {secret}"
        );
        let env_at = deployment
            .find(&format!("- name: {env}\n"))
            .unwrap_or_else(|| panic!("{env} set in the Deployment"));
        assert!(
            deployment[env_at..]
                .lines()
                .nth(1)
                .is_some_and(|l| l.trim() == format!("value: {dir}/{key}")),
            "{env} points into the mounted Secret {secret}"
        );
        assert!(
            deployment.contains(&format!("mountPath: {dir}, readOnly: true}}"))
                && deployment.contains(&format!("secretName: {secret}\n"))
                && deployment.contains(&format!("items: [{{key: {key}, path: {key}}}]")),
            "Secret {secret} mounted at {dir}"
        );
    }
    assert!(deployment.contains("value: redis://mailbox@redis:6379"));
    // The placeholder key is well-formed (the base starts) and the placeholder says to replace it.
    let placeholder = kustomization
        .lines()
        .find_map(|l| l.trim().strip_prefix("- key="))
        .expect("mailbox-encryption key literal");
    mailbox_actors::storage::cipher::Key::from_base64(placeholder).expect("32 bytes of base64");
    assert!(kustomization.contains("REPLACE it in an"));

    let readme = read("README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("ACL SETUSER mailbox "))
        .expect("README ACL line");
    let rules = line["ACL SETUSER mailbox ".len()..].replace(" >CHANGE-ME", "");
    assert_eq!(
        read("k8s/files/redis-mailbox.acl").trim_end(),
        rules,
        "k8s/files/redis-mailbox.acl must be the README's ACL rules without the password"
    );
    let redis = read("k8s/redis.yaml");
    assert!(redis.contains("--aclfile /run/redis/users.acl") && redis.contains("mailbox.acl"));
}

/// The production overlay serves Redis over TLS only and the broker uses `rediss://`.
#[test]
fn production_overlay_renders_tls_to_redis_when_kubectl_is_installed() {
    let render = |dir: &str| {
        std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(repo().join(dir))
            .output()
            .ok()
    };
    let Some(base) = render("k8s") else { return };
    assert!(
        base.status.success(),
        "{}",
        String::from_utf8_lossy(&base.stderr)
    );
    let base = String::from_utf8_lossy(&base.stdout);
    assert!(base.contains("name: mailbox-redis-") && base.contains("name: mailbox-encryption-"));
    let prod = render("k8s-overlays/production").expect("kubectl ran once already");
    assert!(
        prod.status.success(),
        "{}",
        String::from_utf8_lossy(&prod.stderr)
    );
    let prod = String::from_utf8_lossy(&prod.stdout);
    for want in [
        "value: rediss://mailbox@redis:6380",
        "--port 0 --tls-port 6380",
        "kind: Certificate",
        "value: /etc/mailbox/redis-tls/ca.crt",
    ] {
        assert!(
            prod.contains(want),
            "`{want}` missing from the production overlay"
        );
    }
    assert!(
        !prod.contains("redis://mailbox@redis:6379"),
        "no plaintext Redis URL left in production"
    );
}
