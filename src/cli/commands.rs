//! `serve`, `token` and the client commands.

use std::path::PathBuf;

use clap::Args;
use mailbox_actors::model::Payload;
use serde_json::{json, Value};

use super::Conn;
use crate::client::{token_subject, Client};
use crate::config::Config;

/// Exit code for a configuration that does not load.
const EXIT_CONFIG: i32 = 2;

pub fn serve(config: Option<PathBuf>) -> i32 {
    let cfg = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let otlp = crate::telemetry::init_logging(&cfg.log, &cfg.server.node_id);
    let addr = match cfg.bind_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let listener = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot bind {addr} (server.bind): {e}");
            return 1;
        }
    };
    let result = actix_web::rt::System::new().block_on(crate::server::run(
        listener,
        cfg,
        crate::server::shutdown_then_force(),
    ));
    if let Some(otlp) = otlp {
        // The last spans and logs (the shutdown itself) reach the collector.
        otlp.flush(std::time::Duration::from_secs(2));
    }
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "broker failed");
            eprintln!("error: {e}");
            if matches!(
                e,
                crate::server::StartError::Config(_) | crate::server::StartError::Tls(_)
            ) {
                EXIT_CONFIG
            } else {
                1
            }
        }
    }
}

pub fn token(agent: &str, roles: &[String], ttl: Option<&str>, config: Option<PathBuf>) -> i32 {
    let cfg = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let ttl = match ttl.map(|t| super::parse_duration(t).ok_or(t)).transpose() {
        Ok(t) => t,
        Err(t) => {
            eprintln!("error: --ttl `{t}` is not a duration like 3600, 30m, 1h or 7d");
            return 1;
        }
    };
    let authority = match crate::auth::TokenAuthority::new(&cfg.auth) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    match authority.mint(agent, roles, ttl) {
        Ok((t, _)) => {
            println!("{t}");
            0
        }
        Err(e) => {
            eprintln!("error: {}", e.client_message());
            1
        }
    }
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("body").required(true).args(["text", "json", "file"])))]
pub struct SendArgs {
    #[command(flatten)]
    conn: Conn,
    /// `mailbox:<agent>`, `topic:<name>` or `broadcast`.
    #[arg(long)]
    to: String,
    /// A text payload.
    #[arg(long)]
    text: Option<String>,
    /// A JSON payload.
    #[arg(long)]
    json: Option<String>,
    /// A file's bytes, sent base64-encoded.
    #[arg(long)]
    file: Option<PathBuf>,
    #[arg(long)]
    content_type: Option<String>,
    /// low, normal, high or urgent.
    #[arg(long)]
    priority: Option<String>,
    #[arg(long)]
    require_ack: bool,
    /// Seconds until the message is no longer delivered.
    #[arg(long)]
    ttl: Option<u64>,
    #[arg(long)]
    thread_id: Option<String>,
    #[arg(long)]
    correlation_id: Option<String>,
    #[arg(long)]
    reply_to: Option<String>,
    /// Repeat for several tags.
    #[arg(long)]
    tag: Vec<String>,
    #[arg(long)]
    idempotency_key: Option<String>,
}

pub(super) fn client(conn: &Conn) -> Result<Client, String> {
    let token = conn
        .token
        .clone()
        .ok_or("no token: pass --token or set MAILBOX_TOKEN (see `mailbox token`)")?;
    Client::with_trust(&conn.url, Some(token), &conn.trust()?).map_err(|e| e.to_string())
}

pub async fn send(a: SendArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    let mut body = json!({ "to": a.to });
    if let Some(t) = a.text {
        body["payload"] = Value::String(t);
    } else if let Some(j) = a.json {
        body["payload"] =
            serde_json::from_str(&j).map_err(|e| format!("--json is not valid JSON: {e}"))?;
    } else if let Some(f) = a.file {
        use base64::Engine as _;
        let bytes = std::fs::read(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        body["payload"] = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
        body["encoding"] = json!("base64");
    }
    for (k, v) in [
        ("content_type", a.content_type),
        ("priority", a.priority),
        ("thread_id", a.thread_id),
        ("correlation_id", a.correlation_id),
        ("reply_to", a.reply_to),
    ] {
        if let Some(v) = v {
            body[k] = Value::String(v);
        }
    }
    if a.require_ack {
        body["require_ack"] = json!(true);
    }
    if let Some(t) = a.ttl {
        body["ttl_seconds"] = json!(t);
    }
    if !a.tag.is_empty() {
        body["tags"] = json!(a.tag);
    }
    let receipt = match a.idempotency_key {
        Some(k) => c.send_idempotent(&body, &k).await,
        None => c.send(&body).await,
    }
    .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&receipt).map_err(|e| e.to_string())?
    );
    Ok(())
}

#[derive(Args)]
pub struct InboxArgs {
    #[command(flatten)]
    conn: Conn,
    /// Mailbox to browse (default: the token's agent).
    #[arg(long)]
    mailbox: Option<String>,
    /// Only messages not yet marked read.
    #[arg(long)]
    unread: bool,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Only messages after this seq.
    #[arg(long)]
    after: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) fn preview(p: &Payload, width: usize) -> String {
    let s = p.as_string().unwrap_or_else(|| p.get().to_owned());
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > width {
        format!("{}…", one_line.chars().take(width - 1).collect::<String>())
    } else {
        one_line
    }
}

/// `--mailbox`, or the token's own agent.
pub(super) fn own_mailbox(conn: &Conn, mailbox: Option<String>) -> Result<String, String> {
    match mailbox {
        Some(m) => Ok(m),
        None => conn
            .token
            .as_deref()
            .and_then(token_subject)
            .ok_or_else(|| "cannot tell the token's agent; pass --mailbox".to_owned()),
    }
}

pub async fn inbox(a: InboxArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    let mailbox = own_mailbox(&a.conn, a.mailbox)?;
    let mut q = vec![("limit", a.limit.to_string())];
    if a.unread {
        q.push(("unread", "true".into()));
    }
    if let Some(after) = a.after {
        q.push(("after", after));
    }
    let page = c.browse(&mailbox, &q).await.map_err(|e| e.to_string())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&page).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "{:<8} {:<26} {:<16} {:<8} {:<24} PAYLOAD",
        "SEQ", "ID", "FROM", "PRIO", "CREATED"
    );
    for m in &page.messages {
        println!(
            "{:<8} {:<26} {:<16} {:<8} {:<24} {}",
            m.seq,
            m.id,
            m.from,
            format!("{:?}", m.priority).to_lowercase(),
            m.created_at.format("%Y-%m-%d %H:%M:%S%.3f"),
            preview(&m.payload, 60)
        );
    }
    println!(
        "-- {} shown, {} unread in {mailbox}{}",
        page.messages.len(),
        page.unread,
        page.next
            .map(|n| format!(", more after seq {n}"))
            .unwrap_or_default()
    );
    Ok(())
}

pub async fn health(conn: &Conn, json: bool) -> Result<(), String> {
    let c = Client::with_trust(&conn.url, conn.token.clone(), &conn.trust()?)
        .map_err(|e| e.to_string())?;
    let v = c.health().await.map_err(|e| e.to_string())?;
    if json {
        println!("{v}");
    } else {
        println!(
            "ready: node {} storage {}",
            v["node"].as_str().unwrap_or("?"),
            v["storage"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

pub async fn listen(
    conn: &Conn,
    target: Option<String>,
    from: Option<String>,
    json: bool,
) -> Result<(), String> {
    let token = conn
        .token
        .clone()
        .ok_or("no token: pass --token or set MAILBOX_TOKEN")?;
    let target = match target {
        Some(t) => t,
        None => format!(
            "mailbox:{}",
            token_subject(&token).ok_or("cannot tell the token's agent; pass --target")?
        ),
    };
    let mut sub = crate::client::Subscriber::spawn_with_trust(
        &conn.url,
        &token,
        &target,
        from.as_deref(),
        &conn.trust()?,
    );
    if !json {
        eprintln!("listening on {target} (Ctrl-C to stop)");
    }
    while let Some(item) = sub.next().await {
        let m = item.map_err(|e| e.to_string())?;
        if json {
            println!("{}", serde_json::to_string(&m).map_err(|e| e.to_string())?);
        } else {
            // Topic messages carry their topic: seqs are per topic.
            let seq = match &m.topic {
                Some(t) => format!("{t}#{}", m.seq),
                None => m.seq.clone(),
            };
            println!(
                "{:<8} {:<26} {:<16} {}",
                seq,
                m.id,
                m.from,
                preview(&m.payload, 80)
            );
        }
    }
    Ok(())
}
