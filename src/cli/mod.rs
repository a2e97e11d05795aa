//! The `mailbox` command line: `serve`, operator tools and client commands. Client commands take
//! `--url` / `MAILBOX_URL` and `--token` / `MAILBOX_TOKEN`, print tables for people and JSON with
//! `--json`, and exit non-zero with the error's message on stderr.

mod admin;
mod bench;
mod bench_catchup;
mod bench_fanout;
mod bench_report;
mod bench_send_ws;
mod bench_ws;
mod commands;
mod delivery;
mod topics;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mailbox",
    version,
    about = "Inter-LLM Mailbox: a message broker for LLM agents"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the broker is and who we are.
#[derive(Args, Clone)]
pub struct Conn {
    /// Broker base URL.
    #[arg(
        long,
        env = "MAILBOX_URL",
        default_value = "http://127.0.0.1:7700",
        global = true
    )]
    pub url: String,
    /// Bearer token (see `mailbox token`).
    #[arg(long, env = "MAILBOX_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate(s) to trust for an `https://` broker (instead of the system roots).
    #[arg(long, env = "MAILBOX_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

impl Conn {
    /// Whom to trust for an `https://` URL.
    pub fn trust(&self) -> Result<crate::client::Trust, String> {
        crate::client::Trust::from_file(self.ca_file.as_deref()).map_err(|e| e.to_string())
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the broker.
    Serve {
        /// Config file (TOML) on top of the built-in defaults.
        #[arg(long, env = "MAILBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Mint a token with the configured secret (operator tool); prints the token alone.
    Token {
        #[arg(long)]
        agent: String,
        /// Comma-separated roles, e.g. `admin`.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Lifetime: seconds, or with a unit (`30m`, `1h`, `7d`).
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long, env = "MAILBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Send a message.
    Send(Box<commands::SendArgs>),
    /// Browse a mailbox (default: the token's own).
    Inbox(commands::InboxArgs),
    /// Topics: create, list, info, delete, history.
    Topic(topics::TopicArgs),
    /// Durable topic subscriptions into a mailbox: add, list, remove.
    Sub(topics::SubArgs),
    /// Print live messages of a target over WebSocket; reconnects and resumes by itself.
    Listen {
        #[command(flatten)]
        conn: Conn,
        /// `mailbox:<agent>` (default: the token's own mailbox), `topic:<name>` or
        /// `topic:<pattern>` (e.g. `topic:research.#`, live only).
        #[arg(long)]
        target: Option<String>,
        /// latest, unread, beginning or a seq.
        #[arg(long)]
        from: Option<String>,
        /// One JSON envelope per line.
        #[arg(long)]
        json: bool,
    },
    /// Consume messages: each is a delivery attempt; ack or nack those that require it.
    Receive(delivery::ReceiveArgs),
    /// Acknowledge a received message.
    Ack(delivery::AckArgs),
    /// Refuse a received message: dead-letter it, or `--requeue` it for redelivery.
    Nack(delivery::NackArgs),
    /// Inspect, requeue and purge dead letters.
    Dlq(delivery::DlqArgs),
    /// Agents and their API keys (admin): create, list, delete.
    Agent(admin::AgentArgs),
    /// Casbin policy (admin): list, add, remove, reload, check.
    Policy(admin::PolicyArgs),
    /// Check that the broker is ready.
    Health {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
    /// Load-test a running broker (and raw Redis, for the ratio).
    Bench(bench::BenchArgs),
}

/// Runs the command line; answers the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => commands::serve(config),
        Command::Token {
            agent,
            roles,
            ttl,
            config,
        } => commands::token(&agent, &roles, ttl.as_deref(), config),
        other => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return 1;
                }
            };
            let result = rt.block_on(async move {
                match other {
                    Command::Send(a) => commands::send(*a).await,
                    Command::Inbox(a) => commands::inbox(a).await,
                    Command::Topic(a) => topics::topic(a).await,
                    Command::Sub(a) => topics::sub(a).await,
                    Command::Receive(a) => delivery::receive(a).await,
                    Command::Ack(a) => delivery::ack(a).await,
                    Command::Nack(a) => delivery::nack(a).await,
                    Command::Dlq(a) => delivery::dlq(a).await,
                    Command::Agent(a) => admin::agent(a).await,
                    Command::Policy(a) => admin::policy(a).await,
                    Command::Health { conn, json } => commands::health(&conn, json).await,
                    Command::Listen {
                        conn,
                        target,
                        from,
                        json,
                    } => commands::listen(&conn, target, from, json).await,
                    Command::Bench(a) => bench::run(a).await,
                    Command::Serve { .. } | Command::Token { .. } => Ok(()),
                }
            });
            match result {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
    }
}

/// Parses `90`, `90s`, `15m`, `1h`, `7d` into seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().ok()?;
    let mul = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(mul).filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("90"), Some(90));
        assert_eq!(super::parse_duration("1h"), Some(3600));
        assert_eq!(super::parse_duration("7d"), Some(604_800));
        assert_eq!(super::parse_duration("0"), None);
        assert_eq!(super::parse_duration("1w"), None);
        assert_eq!(super::parse_duration("h"), None);
    }
}
