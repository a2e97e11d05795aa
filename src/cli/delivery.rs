//! `mailbox receive`, `mailbox ack`, `mailbox nack` and `mailbox dlq …`.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::commands::{client, own_mailbox, preview};
use super::Conn;

#[derive(Args)]
pub struct ReceiveArgs {
    #[command(flatten)]
    conn: Conn,
    /// Mailbox to consume (default: the token's agent).
    #[arg(long)]
    mailbox: Option<String>,
    /// Most messages to take (1-100).
    #[arg(long, default_value_t = 1)]
    max: usize,
    /// Seconds to wait for a message when none is there (0-60).
    #[arg(long, default_value_t = 0)]
    wait: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn receive(a: ReceiveArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    let mailbox = own_mailbox(&a.conn, a.mailbox)?;
    let messages = c
        .receive(&mailbox, a.max, a.wait)
        .await
        .map_err(|e| e.to_string())?;
    if a.json {
        let out = serde_json::json!({ "messages": messages });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "{:<8} {:<26} {:<7} {:<16} {:<8} {:<4} PAYLOAD",
        "SEQ", "ID", "ATTEMPT", "FROM", "PRIO", "ACK"
    );
    for m in &messages {
        println!(
            "{:<8} {:<26} {:<7} {:<16} {:<8} {:<4} {}",
            m.seq,
            m.id,
            m.attempt.unwrap_or(1),
            m.from,
            format!("{:?}", m.priority).to_lowercase(),
            if m.require_ack { "yes" } else { "no" },
            preview(&m.payload, 60)
        );
    }
    println!("-- {} received from {mailbox}", messages.len());
    Ok(())
}

#[derive(Args)]
pub struct AckArgs {
    #[command(flatten)]
    conn: Conn,
    /// Message id.
    #[arg(long)]
    id: String,
    /// Mailbox the message was received from (default: the token's agent).
    #[arg(long)]
    mailbox: Option<String>,
}

pub async fn ack(a: AckArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    let mailbox = own_mailbox(&a.conn, a.mailbox)?;
    let r = c.ack(&mailbox, &a.id).await.map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    Ok(())
}

#[derive(Args)]
pub struct NackArgs {
    #[command(flatten)]
    conn: Conn,
    /// Message id.
    #[arg(long)]
    id: String,
    /// Mailbox the message was received from (default: the token's agent).
    #[arg(long)]
    mailbox: Option<String>,
    /// Redeliver after backoff instead of dead-lettering it (reason `rejected`).
    #[arg(long)]
    requeue: bool,
    /// Why, kept with the dead letter as `last_error`.
    #[arg(long)]
    reason: Option<String>,
}

pub async fn nack(a: NackArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    let mailbox = own_mailbox(&a.conn, a.mailbox)?;
    let r = c
        .nack(&mailbox, &a.id, a.requeue, a.reason.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    Ok(())
}

#[derive(Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead letters (admins: all; agents: `--mailbox <own>`).
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        mailbox: Option<String>,
        /// max_attempts, rejected, expired, undeliverable or evicted.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only dead letters after this id (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter with its full message (JSON).
    Show {
        #[command(flatten)]
        conn: Conn,
        id: String,
    },
    /// Put a fresh copy back into its mailbox: one by id, or `--all` matching the filters.
    Requeue {
        #[command(flatten)]
        conn: Conn,
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long, requires = "all")]
        mailbox: Option<String>,
        #[arg(long, requires = "all")]
        reason: Option<String>,
    },
    /// Delete one dead letter by id, or all older than an age (`7d`, `3600`) or RFC 3339 time.
    Purge {
        #[command(flatten)]
        conn: Conn,
        #[arg(required_unless_present = "older_than", conflicts_with = "older_than")]
        id: Option<String>,
        #[arg(long)]
        older_than: Option<String>,
    },
}

fn print_json(v: &Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

pub async fn dlq(a: DlqArgs) -> Result<(), String> {
    match a.command {
        DlqCommand::List {
            conn,
            mailbox,
            reason,
            limit,
            after,
            json,
        } => {
            let c = client(&conn)?;
            let mut q = vec![("limit", limit.to_string())];
            for (k, v) in [("mailbox", mailbox), ("reason", reason), ("after", after)] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let page = c.dead_letters(&q).await.map_err(|e| e.to_string())?;
            if json {
                return print_json(&page);
            }
            println!(
                "{:<26} {:<13} {:<8} {:<16} {:<24} {:<26} LAST ERROR",
                "ID", "REASON", "ATTEMPTS", "MAILBOX", "FAILED", "MESSAGE"
            );
            let empty = Vec::new();
            let list = page["dead_letters"].as_array().unwrap_or(&empty);
            for d in list {
                let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
                println!(
                    "{:<26} {:<13} {:<8} {:<16} {:<24} {:<26} {}",
                    s("id"),
                    s("reason"),
                    d["attempts"].to_string(),
                    s("mailbox"),
                    s("failed_at"),
                    d["message"]["id"].as_str().unwrap_or_default(),
                    preview(&mailbox_actors::model::Payload::from(&d["last_error"]), 40)
                );
            }
            println!(
                "-- {} shown{}",
                list.len(),
                page["next"]
                    .as_str()
                    .map(|n| format!(", more after {n}"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        DlqCommand::Show { conn, id } => {
            let c = client(&conn)?;
            print_json(&c.dead_letter(&id).await.map_err(|e| e.to_string())?)
        }
        DlqCommand::Requeue {
            conn,
            id,
            all: _,
            mailbox,
            reason,
        } => {
            let c = client(&conn)?;
            let r = match id {
                Some(id) => c.requeue_dead_letter(&id).await,
                None => {
                    c.requeue_dead_letters(mailbox.as_deref(), reason.as_deref())
                        .await
                }
            };
            println!("{}", r.map_err(|e| e.to_string())?);
            Ok(())
        }
        DlqCommand::Purge {
            conn,
            id,
            older_than,
        } => {
            let c = client(&conn)?;
            match (id, older_than) {
                (Some(id), _) => {
                    c.delete_dead_letter(&id).await.map_err(|e| e.to_string())?;
                    println!("{}", serde_json::json!({ "deleted": 1 }));
                }
                (None, Some(age)) => {
                    // `7d`, `30m`: seconds; anything else (an RFC 3339 time) goes as it is.
                    let arg = super::parse_duration(&age).map_or(age, |s| s.to_string());
                    let r = c
                        .purge_dead_letters(&arg)
                        .await
                        .map_err(|e| e.to_string())?;
                    println!("{r}");
                }
                (None, None) => return Err("give an id or --older-than".into()),
            }
            Ok(())
        }
    }
}
