//! The broker on a real three-master Redis Cluster (`redis.cluster_urls`): keys spread over
//! every master, a cross-slot batch stays all or none, a batch a crash interrupted is rolled
//! forward at start, and a message accepted by one node reaches a WebSocket session on another
//! (sharded pub/sub). The behaviour suites also run on a cluster (`both_engines!`).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use common::ws::{connect, recv, subscribe};
use common::{wait_until, Broker, EngineKind, RedisCluster};
use mailbox_actors::dispatch::intent;
use mailbox_actors::model::SendRequest;
use mailbox_actors::storage::NewRecord;
use serde_json::json;

const PREFIX: &str = "mailbox";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_mailboxes_spread_over_every_master() {
    let b = Broker::start(EngineKind::Cluster);
    let names: Vec<String> = (0..60).map(|i| format!("agent-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        b.send("alice", name, json!({"payload": {"n": i}})).await;
    }
    for (i, name) in names.iter().enumerate() {
        let msgs = b.messages(name).await;
        assert_eq!(msgs.len(), 1, "{name}");
        assert_eq!(msgs[0]["payload"], json!({"n": i}));
    }
    let cluster = b.cluster.as_ref().expect("on a cluster");
    let mut seen: HashSet<String> = HashSet::new();
    for &port in &cluster.ports {
        let keys = cluster.keys_on(port, &format!("{PREFIX}:mb:*"));
        let here: HashSet<String> = keys
            .iter()
            .filter_map(|k| Some(k.split_once('{')?.1.split_once('}')?.0.to_owned()))
            .collect();
        assert!(!here.is_empty(), "master on port {port} holds mailbox keys");
        for m in &here {
            assert!(
                seen.insert(m.clone()),
                "every key of mailbox {m} is on one master"
            );
        }
    }
    assert_eq!(seen.len(), 60, "every mailbox is somewhere");
}

/// Three mailboxes whose hash tags sit on three different masters.
fn spread_names(cluster: &RedisCluster) -> Vec<String> {
    let ports = &cluster.ports;
    let mut picked: Vec<(u16, String)> = Vec::new();
    for i in 0..200 {
        let name = format!("box-{i}");
        let key = format!("{PREFIX}:mb:{{{name}}}:meta");
        let out = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &ports[0].to_string()])
            .args(["cluster", "keyslot", &key])
            .output()
            .expect("redis-cli");
        let slot: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("slot");
        let owner = owner_of(cluster, slot);
        if !picked.iter().any(|(p, _)| *p == owner) {
            picked.push((owner, name));
        }
        if picked.len() == ports.len() {
            break;
        }
    }
    assert_eq!(picked.len(), ports.len(), "names on every master");
    picked.into_iter().map(|(_, n)| n).collect()
}

/// The port of the master serving `slot`.
fn owner_of(cluster: &RedisCluster, slot: u16) -> u16 {
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &cluster.ports[0].to_string()])
        .args(["--raw", "cluster", "slots"])
        .output()
        .expect("redis-cli");
    // --raw prints: start, end, ip, port, id, (next range) start, end, …
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut i = 0;
    while i + 3 < lines.len() {
        if let (Ok(start), Ok(end), Ok(port)) = (
            lines[i].parse::<u16>(),
            lines[i + 1].parse::<u16>(),
            lines[i + 3].parse::<u16>(),
        ) {
            if (start..=end).contains(&slot) && cluster.ports.contains(&port) {
                return port;
            }
        }
        i += 1;
    }
    panic!("no master serves slot {slot}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_across_masters_is_all_or_none() {
    let b = Broker::start(EngineKind::Cluster);
    let cluster = b.cluster.as_ref().expect("on a cluster");
    let names = spread_names(cluster);
    let alice = b.token("alice");
    let items: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"to": format!("mailbox:{n}"), "payload": {"i": i}}))
        .collect();
    let (s, v) = b
        .post(&alice, "/v1/messages/batch", &json!({"messages": items}))
        .await;
    assert_eq!(s, 201, "{v}");
    for (i, n) in names.iter().enumerate() {
        let msgs = b.messages(n).await;
        assert_eq!(msgs.len(), 1, "{n}");
        assert_eq!(msgs[0]["payload"], json!({"i": i}));
    }
    // The last mailbox has no room left: nothing of the batch is stored anywhere.
    let last = names.last().expect("names");
    let (s, v) = b
        .put(
            &b.token(last),
            &format!("/v1/mailboxes/{last}"),
            &json!({"max_len": 1}),
        )
        .await;
    assert!(s == 200 || s == 201, "{v}");
    let items: Vec<_> = names
        .iter()
        .map(|n| json!({"to": format!("mailbox:{n}"), "payload": "second"}))
        .collect();
    let (s, v) = b
        .post(&alice, "/v1/messages/batch", &json!({"messages": items}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (507, Some("mailbox_full")),
        "{v}"
    );
    for n in &names {
        assert_eq!(b.total(n).await, 1, "nothing more stored in {n}");
    }
    // No intent is left behind by either batch.
    let intents: usize = cluster
        .ports
        .iter()
        .map(|&p| cluster.keys_on(p, &format!("{PREFIX}:{{intents}}:*")).len())
        .sum();
    assert_eq!(intents, 0, "intents are removed when a batch ends");
}

fn record(from: &str, to: &str, payload: serde_json::Value) -> NewRecord {
    let req = SendRequest {
        to: format!("mailbox:{to}"),
        payload: Some(payload.into()),
        ..Default::default()
    };
    let mut env = req.into_envelope(from, mailbox_actors::model::new_id(), Utc::now());
    env.mailbox = Some(to.to_owned());
    NewRecord::of(&env, None).expect("record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_batch_is_rolled_forward_at_start() {
    let cluster = RedisCluster::start();
    let names = spread_names(&cluster);
    let groups: Vec<intent::IntentGroup> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), vec![record("alice", n, json!({"batch": i}))]))
        .collect();
    let ids: Vec<String> = groups.iter().map(|(_, r)| r[0].id.clone()).collect();
    // What a broker that died right after writing the intent leaves: the intent, 60 s old.
    let client = redis::cluster::ClusterClient::new(cluster.urls()).expect("cluster client");
    let mut c = client.get_async_connection().await.expect("connect");
    let stamp = Utc::now().timestamp_millis() - 60_000;
    let body = intent::encode(&groups);
    let _: () = redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg(format!("{PREFIX}:{{intents}}:body"))
        .arg("01JINTENT0000000000000000")
        .arg(body)
        .ignore()
        .cmd("ZADD")
        .arg(format!("{PREFIX}:{{intents}}:due"))
        .arg(stamp)
        .arg("01JINTENT0000000000000000")
        .ignore()
        .query_async(&mut c)
        .await
        .expect("intent written");
    let b = Broker::on_cluster(cluster, &[]);
    let cluster = b.cluster.as_ref().expect("cluster");
    let ports = cluster.ports.clone();
    let intents_left = || {
        ports
            .iter()
            .map(|&p| cluster.keys_on(p, &format!("{PREFIX}:{{intents}}:*")).len())
            .sum::<usize>()
    };
    wait_until(
        Duration::from_secs(30),
        "the intent to be rolled forward",
        || intents_left() == 0,
    );
    for (n, id) in names.iter().zip(&ids) {
        let msgs = b.messages(n).await;
        assert_eq!(msgs.len(), 1, "{n} holds the batch's item once");
        assert_eq!(msgs[0]["id"].as_str(), Some(id.as_str()));
        assert_eq!(msgs[0]["from"], "alice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_on_one_node_is_pushed_on_another() {
    let a = Broker::start(EngineKind::Cluster);
    let b = Broker::another_node(&a);
    // Several mailboxes, so announcements travel on several sharded channels.
    for name in ["bob", "carol", "dave", "erin"] {
        let mut ws = connect(&b, name).await;
        subscribe(&mut ws, &format!("mailbox:{name}"), "latest").await;
        a.send("alice", name, json!({"payload": format!("hi {name}")}))
            .await;
        let f = recv(&mut ws).await;
        assert_eq!(f["type"], "message", "{f}");
        assert_eq!(f["message"]["payload"], json!(format!("hi {name}")));
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--raw"])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Moves `slot` from master `from` to master `to` the way `redis-cli --cluster reshard` does
/// (IMPORTING/MIGRATING, MIGRATE the keys, SETSLOT NODE on every master).
fn move_slot(cluster: &RedisCluster, slot: u16, from: u16, to: u16) {
    let (from_id, to_id) = (
        cli(from, &["cluster", "myid"]),
        cli(to, &["cluster", "myid"]),
    );
    let s = slot.to_string();
    assert_eq!(
        cli(to, &["cluster", "setslot", &s, "importing", &from_id]),
        "OK"
    );
    assert_eq!(
        cli(from, &["cluster", "setslot", &s, "migrating", &to_id]),
        "OK"
    );
    loop {
        let keys = cli(from, &["cluster", "getkeysinslot", &s, "100"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let mut args = vec!["migrate", "127.0.0.1"];
        let port = to.to_string();
        args.push(&port);
        args.extend(["", "0", "5000", "KEYS"]);
        args.extend(keys);
        assert_eq!(cli(from, &args), "OK", "migrate");
    }
    for &p in &cluster.ports {
        assert_eq!(cli(p, &["cluster", "setslot", &s, "node", &to_id]), "OK");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_whose_slot_moves_to_another_master_keeps_working() {
    let b = Broker::start(EngineKind::Cluster);
    let cluster = b.cluster.as_ref().expect("cluster");
    for i in 0..3 {
        b.send("alice", "mover", json!({"payload": i})).await;
    }
    let key = format!("{PREFIX}:mb:{{mover}}:msgs");
    let slot: u16 = cli(cluster.ports[0], &["cluster", "keyslot", &key])
        .parse()
        .expect("slot");
    let from = owner_of(cluster, slot);
    let to = *cluster
        .ports
        .iter()
        .find(|&&p| p != from)
        .expect("another master");
    move_slot(cluster, slot, from, to);
    assert!(
        !cluster
            .keys_on(to, &format!("{PREFIX}:mb:{{mover}}:*"))
            .is_empty(),
        "the mailbox's keys moved"
    );
    // The broker's slot map is stale: MOVED answers are followed, nothing fails.
    for i in 3..5 {
        b.send("alice", "mover", json!({"payload": i})).await;
    }
    let got: Vec<_> = b
        .messages("mover")
        .await
        .iter()
        .map(|m| m["payload"].clone())
        .collect();
    assert_eq!(got, (0..5).map(|i| json!(i)).collect::<Vec<_>>());
    // A fan-out (pipelined per slot) reaches it too.
    let (s, v) = b
        .post(
            &b.admin_token("admin"),
            "/v1/messages",
            &json!({"to": "broadcast", "payload": "all"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(b.total("mover").await, 6);
}

/// Waits until `master`'s replica has every write the master has.
fn wait_replicated(master: u16) {
    wait_until(Duration::from_secs(20), "the replica to catch up", || {
        let info = cli(master, &["info", "replication"]);
        let offset = info
            .lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .map(str::trim)
            .unwrap_or("?")
            .to_owned();
        info.lines()
            .any(|l| l.starts_with("slave0:") && l.contains(&format!("offset={offset},")))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failover_loses_nothing_accepted() {
    let mut b = Broker::on_cluster(RedisCluster::start_with(1), &[]);
    let names: Vec<String> = (0..12).map(|i| format!("fo-{i}")).collect();
    for n in &names {
        b.send("alice", n, json!({"payload": format!("before {n}")}))
            .await;
    }
    let cluster = b.cluster.as_ref().expect("cluster");
    let key = format!("{PREFIX}:mb:{{victim}}:msgs");
    let slot: u16 = cli(cluster.ports[0], &["cluster", "keyslot", &key])
        .parse()
        .expect("slot");
    b.send("alice", "victim", json!({"payload": "before"}))
        .await;
    let master = owner_of(cluster, slot);
    wait_replicated(master);
    b.cluster.as_mut().expect("cluster").kill_node(master);

    // While the replica takes over (node timeout 3 s, then the election), a send is stored
    // (201), spooled (202) or refused (503, retry later); never a 500. Sends every 100 ms for
    // 12 s, then until one is stored again.
    let alice = b.token("alice");
    let mut accepted = vec![];
    let start = std::time::Instant::now();
    let mut n = 0;
    let mut seen: std::collections::BTreeMap<u16, usize> = Default::default();
    loop {
        let (s, v) = b
            .post(
                &alice,
                "/v1/messages",
                &json!({"to": "mailbox:victim", "payload": n}),
            )
            .await;
        n += 1;
        *seen.entry(s).or_default() += 1;
        match s {
            201 | 202 => accepted.push(v["id"].as_str().expect("id").to_owned()),
            503 => {}
            other => panic!("send during a failover answered {other}: {v}"),
        }
        if s == 201 && start.elapsed() > Duration::from_secs(12) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "sends are stored again after the failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("answers during the failover (status: count): {seen:?}");
    // Everything accepted is there (spooled sends once the spool drained), and so is what was
    // stored before the failover, on every master.
    let start = std::time::Instant::now();
    loop {
        let (s, v) = b
            .get(
                &b.token("victim"),
                "/v1/mailboxes/victim/messages?limit=500",
            )
            .await;
        let ids: Vec<String> = v["messages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if s == 200 && accepted.iter().all(|id| ids.contains(id)) {
            assert_eq!(
                ids.len(),
                accepted.len() + 1,
                "each once, plus the one before"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "every accepted message is stored: {s} {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in &names {
        let msgs = b.messages(n).await;
        assert_eq!(msgs.len(), 1, "{n}");
    }
}
