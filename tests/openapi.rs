//! `/openapi.json` and `/docs` on the real binary: the document is OpenAPI 3.1, lists every
//! route of SPEC section 5 that this broker serves, and every operation it lists is a route the
//! server actually answers (probed one by one: a registered route authenticates or answers,
//! an unregistered one falls through to the fallback's `route not found`).

mod common;

use std::collections::BTreeSet;

use common::{Broker, EngineKind};
use serde_json::Value;

/// SPEC section 5, as (method, path) with the document's parameter names.
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/auth/token"),
    ("post", "/v1/admin/agents"),
    ("get", "/v1/admin/agents"),
    ("delete", "/v1/admin/agents/{id}"),
    ("get", "/v1/admin/policies"),
    ("post", "/v1/admin/policies"),
    ("delete", "/v1/admin/policies"),
    ("post", "/v1/admin/policies/reload"),
    ("get", "/v1/admin/policies/check"),
    ("get", "/v1/admin/audit"),
    ("get", "/v1/admin/stats"),
    ("post", "/v1/messages"),
    ("post", "/v1/messages/batch"),
    ("get", "/v1/mailboxes/{name}"),
    ("put", "/v1/mailboxes/{name}"),
    ("delete", "/v1/mailboxes/{name}"),
    ("get", "/v1/mailboxes/{name}/messages"),
    ("post", "/v1/mailboxes/{name}/receive"),
    ("post", "/v1/mailboxes/{name}/messages/{id}/ack"),
    ("post", "/v1/mailboxes/{name}/messages/{id}/nack"),
    ("post", "/v1/mailboxes/{name}/read"),
    ("get", "/v1/topics"),
    ("put", "/v1/topics/{name}"),
    ("get", "/v1/topics/{name}"),
    ("delete", "/v1/topics/{name}"),
    ("get", "/v1/topics/{name}/messages"),
    ("post", "/v1/subscriptions"),
    ("get", "/v1/subscriptions"),
    ("get", "/v1/subscriptions/{id}"),
    ("delete", "/v1/subscriptions/{id}"),
    ("get", "/v1/dead-letters"),
    ("delete", "/v1/dead-letters"),
    ("get", "/v1/dead-letters/{id}"),
    ("delete", "/v1/dead-letters/{id}"),
    ("post", "/v1/dead-letters/{id}/requeue"),
    ("post", "/v1/dead-letters/requeue"),
    ("post", "/v1/blobs"),
    ("get", "/v1/blobs/{id}"),
    ("get", "/v1/ws"),
    ("post", "/mcp"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/dashboard"),
    // Not in the SPEC's table: the dashboard's mailbox overview (admin, read).
    ("get", "/v1/admin/mailboxes"),
];

/// Routes open to anyone (no bearer token).
fn open(path: &str) -> bool {
    !(path.starts_with("/v1/") || path == "/mcp") || path == "/v1/auth/token"
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_the_registered_routes_agree() {
    let b = Broker::start(EngineKind::Memory);
    let r = b
        .http
        .get(b.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(r.status().as_u16(), 200);
    let doc: Value = r.json().await.expect("JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );

    // The document lists exactly the SPEC routes this broker serves.
    let documented = operations(&doc);
    let expected: BTreeSet<(String, String)> = SPEC_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing from the document: {missing:?}; documented but not in SPEC section 5: {extra:?}"
    );

    // Every documented operation is a registered route: without a token, /v1 and /mcp answer
    // 401 (the route matched and authenticated); the open routes answer.
    let fallback = |status: u16, body: &str| status == 404 && body.contains("route not found");
    for (method, path) in &documented {
        let url = b.url(
            &path
                .replace("{name}", "bob")
                .replace("{id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let r = b
            .http
            .request(method.clone(), &url)
            .send()
            .await
            .expect("probe");
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert!(
            !fallback(status, &body) && status != 405,
            "{method} {path} is documented but not registered: {status} {body}"
        );
        if path == "/v1/auth/token" {
            assert_eq!(status, 400, "no body: {body}");
        } else if open(path) {
            assert!(
                (200..400).contains(&status),
                "{method} {path}: {status} {body}"
            );
        } else {
            assert_eq!(status, 401, "{method} {path}: {body}");
        }
    }
    // ... and the probe tells: an unregistered route gets the fallback.
    let r = b
        .http
        .get(b.url("/v1/not-a-route"))
        .send()
        .await
        .expect("probe");
    let (status, body) = (r.status().as_u16(), r.text().await.unwrap_or_default());
    assert!(fallback(status, &body), "{status} {body}");
    // A registered path asked with another method: 405 naming the methods it serves.
    let r = b
        .http
        .request(reqwest::Method::PUT, b.url("/v1/dead-letters"))
        .send()
        .await
        .expect("probe");
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.headers().get("allow").map(|v| v.as_bytes()),
        Some(&b"GET, DELETE"[..])
    );

    // Bearer auth on every /v1 operation and /mcp, none on the open routes; every operation
    // names the error body for its refusals.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["schemas"]["SendRequest"]["properties"]["priority"].is_object());
    for (method, path) in &documented {
        let op = &doc["paths"][path][method];
        let open = open(path);
        let security = op.get("security").unwrap_or(&doc["security"]);
        let bearer = security
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        assert_eq!(bearer, !open, "{method} {path}: security {security}");
        if !open {
            // MCP answers JSON-RPC errors, but a missing token is the SPEC error body.
            let status = if path == "/mcp" { "401" } else { "4XX" };
            let refusal = &op["responses"][status]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(refusal, "#/components/schemas/ErrorBody", "{method} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_are_served_from_the_binary() {
    let b = Broker::start(EngineKind::Memory);
    let r = b
        .http
        .get(b.url("/docs/"))
        .send()
        .await
        .expect("GET /docs/");
    assert_eq!(r.status().as_u16(), 200);
    let page = r.text().await.expect("page");
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads nothing from outside: {page}"
    );
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let r = b
            .http
            .get(b.url(&format!("/docs/{asset}")))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status().as_u16(), 200, "{asset}");
        let text = r.text().await.expect("asset text");
        if asset == "swagger-initializer.js" {
            assert!(text.contains("/openapi.json"), "{text}");
        }
    }
    // `/docs` leads to the page.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = no_redirects
        .get(b.url("/docs"))
        .send()
        .await
        .expect("GET /docs");
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(
        r.headers().get("location").map(|v| v.as_bytes()),
        Some(&b"/docs/"[..])
    );
}

/// The schemathesis release the fuzz run pins.
const SCHEMATHESIS: &str = "4.32.5";

/// The schemathesis command, from a venv under the target dir made on first use.
fn schemathesis() -> std::path::PathBuf {
    let python = common::python::venv_with(
        &format!("schemathesis-{SCHEMATHESIS}"),
        &format!("schemathesis=={SCHEMATHESIS}"),
    );
    python.with_file_name("schemathesis")
}

/// Schemathesis generates requests from the document (valid and invalid) with an admin token
/// and checks every answer: no 5xx, status codes, content types, headers and bodies as
/// documented, 405 (with `Allow`) for undeclared methods, schema-invalid input refused.
/// Left out: `positive_data_acceptance` — the schema gives shapes, while rules such as the
/// agent-id pattern or "a seq from this stream" are checked in ops and answer 422, which that
/// check counts as valid input refused. `GET /v1/ws` is an upgrade, tested in `tests/ws.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let exe = tokio::task::spawn_blocking(schemathesis)
        .await
        .expect("install schemathesis");
    let b = Broker::start(EngineKind::Redis);
    // schemathesis keeps a cache of its examples in its working directory: not in the repo.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        tokio::process::Command::new(exe)
            .current_dir(scratch.path())
            .arg("run")
            .arg(b.url("/openapi.json"))
            .arg("--url")
            .arg(b.url(""))
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", b.admin_token("alice")))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance,response_headers_conformance,unsupported_method,\
                 negative_data_rejection",
                "--max-examples",
                "30",
                "--exclude-path",
                "/v1/ws",
                "--generation-deterministic",
                "--generation-with-security-parameters",
                "false",
                "--no-color",
            ])
            .output(),
    )
    .await
    .expect("schemathesis finished within 5 minutes")
    .expect("run schemathesis");
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
