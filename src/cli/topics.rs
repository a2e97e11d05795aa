//! `mailbox topic …` and `mailbox sub …`: topics and durable subscriptions.

use clap::{Args, Subcommand};
use mailbox_actors::model::TopicConfig;

use super::commands::{client, preview};
use super::Conn;
use crate::client::TopicInfo;

#[derive(Args)]
pub struct TopicArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: TopicCmd,
}

#[derive(Subcommand)]
enum TopicCmd {
    /// Create a topic, or change its retention (needs `manage` on the topic).
    Create {
        name: String,
        /// Most messages kept in the history (oldest dropped first).
        #[arg(long)]
        retention_max_len: Option<u64>,
        /// Oldest message kept: seconds, or with a unit (`30m`, `1h`, `7d`).
        #[arg(long)]
        retention: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Topics at or under a prefix, with counts.
    List {
        /// e.g. `research` lists `research` and `research.papers.ml`.
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Counts and settings of one topic.
    Info {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a topic and its history (durable subscriptions stay).
    Delete { name: String },
    /// Browse a topic's history.
    History {
        name: String,
        /// Only messages after this seq.
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct SubArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: SubCmd,
}

#[derive(Subcommand)]
enum SubCmd {
    /// Copy every message published to topics matching PATTERN into a mailbox.
    Add {
        /// e.g. `research.#` or `research.*.ml`.
        pattern: String,
        /// The mailbox that gets the copies (default: the token's own).
        #[arg(long)]
        mailbox: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Your durable subscriptions (`--all`: everyone's, for admins).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove a durable subscription by id.
    Remove { id: String },
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string_pretty(v).map_err(|e| e.to_string())
}

fn print_topics(topics: &[TopicInfo]) {
    println!(
        "{:<40} {:>8} {:>8} {:>12} {:>12}",
        "TOPIC", "TOTAL", "LAST", "MAX_LEN", "RETENTION_S"
    );
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
    for t in topics {
        println!(
            "{:<40} {:>8} {:>8} {:>12} {:>12}",
            t.name,
            t.total,
            t.last_seq,
            opt(t.config.retention_max_len),
            opt(t.config.retention_seconds)
        );
    }
}

pub async fn topic(a: TopicArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    match a.command {
        TopicCmd::Create {
            name,
            retention_max_len,
            retention,
            json,
        } => {
            let retention_seconds = retention
                .map(|r| {
                    super::parse_duration(&r).ok_or_else(|| {
                        format!("--retention `{r}` is not a duration like 3600, 30m, 1h or 7d")
                    })
                })
                .transpose()?;
            let config = TopicConfig {
                retention_max_len,
                retention_seconds,
            };
            let v = c
                .put_topic(&name, &config)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!("{}", to_json(&v)?);
            } else {
                println!("topic {name}: {}", v["config"]);
            }
        }
        TopicCmd::List {
            prefix,
            limit,
            json,
        } => {
            let list = c
                .topics(prefix.as_deref(), None, Some(limit))
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!("{}", to_json(&list)?);
            } else {
                print_topics(&list.topics);
                if let Some(n) = list.next {
                    println!("-- more after {n}");
                }
            }
        }
        TopicCmd::Info { name, json } => {
            let t = c.topic(&name).await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", to_json(&t)?);
            } else {
                print_topics(std::slice::from_ref(&t));
            }
        }
        TopicCmd::Delete { name } => {
            c.delete_topic(&name).await.map_err(|e| e.to_string())?;
            eprintln!("deleted topic {name}");
        }
        TopicCmd::History {
            name,
            after,
            limit,
            json,
        } => {
            let mut q = vec![("limit", limit.to_string())];
            if let Some(a) = after {
                q.push(("after", a));
            }
            let page = c
                .topic_history(&name, &q)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!("{}", to_json(&page)?);
                return Ok(());
            }
            println!("{:<8} {:<26} {:<16} PAYLOAD", "SEQ", "ID", "FROM");
            for m in &page.messages {
                println!(
                    "{:<8} {:<26} {:<16} {}",
                    m.seq,
                    m.id,
                    m.from,
                    preview(&m.payload, 60)
                );
            }
            if let Some(n) = page.next {
                println!("-- more after seq {n}");
            }
        }
    }
    Ok(())
}

pub async fn sub(a: SubArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    match a.command {
        SubCmd::Add {
            pattern,
            mailbox,
            json,
        } => {
            let s = c
                .subscribe(&pattern, mailbox.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!("{}", to_json(&s)?);
            } else {
                println!("{}  {} -> mailbox:{}", s.id, s.pattern, s.mailbox);
            }
        }
        SubCmd::List { all, json } => {
            let subs = c.subscriptions(all).await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", to_json(&subs)?);
                return Ok(());
            }
            println!("{:<26} {:<32} {:<20} CREATED", "ID", "PATTERN", "MAILBOX");
            for s in subs {
                println!(
                    "{:<26} {:<32} {:<20} {}",
                    s.id,
                    s.pattern,
                    s.mailbox,
                    s.created_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
        }
        SubCmd::Remove { id } => {
            c.unsubscribe(&id).await.map_err(|e| e.to_string())?;
            eprintln!("removed subscription {id}");
        }
    }
    Ok(())
}
