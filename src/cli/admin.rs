//! `mailbox agent …` and `mailbox policy …`: the admin face of the command line (an admin
//! token: `mailbox token --agent ops --roles admin`).

use clap::{Args, Subcommand};
use serde_json::json;

use super::commands::client;
use super::Conn;
use crate::client::Rule;

#[derive(Args)]
pub struct AgentArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: AgentCmd,
}

#[derive(Subcommand)]
enum AgentCmd {
    /// Create an agent; prints its API key (shown this once; only a hash is kept).
    Create {
        id: String,
        /// Comma-separated roles, e.g. `agent` or `admin`.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Agents created by admins (never their keys).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete an agent: its API key no longer exchanges for a token.
    Delete { id: String },
}

#[derive(Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: PolicyCmd,
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// The rules in force.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a rule, e.g. `p carol topic:ops.# subscribe` or `g carol admin`; written back to
    /// the policy file.
    Add {
        /// `p` (sub, obj, act) or `g` (member, role).
        ptype: String,
        #[arg(required = true, num_args = 2..=3)]
        rule: Vec<String>,
    },
    /// Remove a rule (same arguments as `add`).
    Remove {
        ptype: String,
        #[arg(required = true, num_args = 2..=3)]
        rule: Vec<String>,
    },
    /// Reread the policy files now; prints the number of rules.
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// Would `sub` be allowed `act` on `obj`? Prints `allowed` or `denied`.
    Check {
        sub: String,
        obj: String,
        act: String,
        #[arg(long)]
        json: bool,
    },
}

fn show_json(v: &impl serde::Serialize) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

pub async fn agent(a: AgentArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    match a.command {
        AgentCmd::Create { id, roles, json } => {
            let created = c
                .create_agent(&id, &roles)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return show_json(&created);
            }
            println!("agent:   {}", created.id);
            println!("roles:   {}", created.roles.join(","));
            println!("api key: {}", created.api_key);
            println!("-- shown once; exchange it with POST /v1/auth/token");
        }
        AgentCmd::List { json } => {
            let agents = c.agents().await.map_err(|e| e.to_string())?;
            if json {
                return show_json(&json!({ "agents": agents }));
            }
            println!("{:<32} {:<24} ROLES", "ID", "CREATED");
            for a in &agents {
                println!("{:<32} {:<24} {}", a.id, a.created_at, a.roles.join(","));
            }
            println!("-- {} agents", agents.len());
        }
        AgentCmd::Delete { id } => {
            c.delete_agent(&id).await.map_err(|e| e.to_string())?;
            println!("deleted agent {id}");
        }
    }
    Ok(())
}

pub async fn policy(a: PolicyArgs) -> Result<(), String> {
    let c = client(&a.conn)?;
    match a.command {
        PolicyCmd::List { json } => {
            let rules = c.policies().await.map_err(|e| e.to_string())?;
            if json {
                return show_json(&json!({ "policies": rules }));
            }
            println!("{:<5} RULE", "TYPE");
            for r in &rules {
                println!("{:<5} {}", r.ptype, r.rule.join(", "));
            }
            println!("-- {} rules", rules.len());
        }
        PolicyCmd::Add { ptype, rule } => {
            let rule = Rule { ptype, rule };
            c.add_policy(&rule).await.map_err(|e| e.to_string())?;
            println!("added: {}, {}", rule.ptype, rule.rule.join(", "));
        }
        PolicyCmd::Remove { ptype, rule } => {
            let rule = Rule { ptype, rule };
            c.remove_policy(&rule).await.map_err(|e| e.to_string())?;
            println!("removed: {}, {}", rule.ptype, rule.rule.join(", "));
        }
        PolicyCmd::Reload { json } => {
            let r = c.reload_policies().await.map_err(|e| e.to_string())?;
            if json {
                return show_json(&r);
            }
            println!("reloaded: {} rules", r["rules"]);
        }
        PolicyCmd::Check {
            sub,
            obj,
            act,
            json,
        } => {
            let allowed = c
                .check_policy(&sub, &obj, &act)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return show_json(&json!({ "allowed": allowed }));
            }
            println!("{}", if allowed { "allowed" } else { "denied" });
        }
    }
    Ok(())
}
