//! The delivery state machine at the engine level, run against both engines (a private
//! `redis-server` on a free port, and the memory engine), with millisecond timeouts.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use mailbox_actors::model::{new_id, SendRequest};
use mailbox_actors::storage::memory::MemoryEngine;
use mailbox_actors::storage::redis::{RedisEngine, RedisSettings};
use mailbox_actors::storage::{
    DeadQuery, DeadReason, DeliverySettings, Engine, NackOutcome, NewRecord, StorageError,
};

struct Redis {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis() -> Redis {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (make test installs it)");
    Redis {
        child,
        _dir: dir,
        port,
    }
}

async fn engines() -> (Vec<Engine>, Redis) {
    let redis = start_redis();
    let engine = RedisEngine::new(&RedisSettings {
        url: format!("redis://127.0.0.1:{}", redis.port),
        cluster_urls: Vec::new(),
        access: Default::default(),
        pool_size: 4,
        threads: 1,
        key_prefix: "t".into(),
        command_timeout: Duration::from_secs(2),
    })
    .expect("engine");
    let redis_engine = Engine::Redis(engine);
    let start = Instant::now();
    while redis_engine.ping().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "redis answers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (
        vec![redis_engine, Engine::Memory(MemoryEngine::new())],
        redis,
    )
}

fn record(payload: &str, ack: bool, priority: &str, ttl: Option<u64>) -> NewRecord {
    let req: SendRequest = serde_json::from_value(serde_json::json!({
        "to": "mailbox:bob", "payload": payload, "require_ack": ack, "priority": priority,
        "ttl_seconds": ttl,
    }))
    .expect("request");
    let env = req.into_envelope("alice", new_id(), Utc::now());
    NewRecord::of(&env, None).expect("record")
}

fn quick() -> DeliverySettings {
    DeliverySettings {
        ack_timeout: Duration::from_millis(40),
        backoff_base_ms: 30,
        backoff_multiplier: 2.0,
        backoff_max_ms: 1000,
        max_attempts: 2,
    }
}

/// Runs scheduler passes until `receive` hands something over (at most 2 s).
async fn receive_eventually(
    e: &Engine,
    s: &DeliverySettings,
) -> Vec<mailbox_actors::storage::Handed> {
    let start = Instant::now();
    loop {
        e.retry_due(100, s).await.expect("retry pass");
        let got = e.receive("bob", 10, s).await.expect("receive");
        if !got.is_empty() || start.elapsed() > Duration::from_secs(2) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs scheduler passes until there are `n` dead letters (at most 2 s).
async fn dead_eventually(e: &Engine, s: &DeliverySettings, n: u64) {
    let start = Instant::now();
    while e.dlq_count().await.expect("count") < n && start.elapsed() < Duration::from_secs(2) {
        e.retry_due(100, s).await.expect("retry pass");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_state_machine_on_both_engines() {
    let (engines, _redis) = engines().await;
    for e in &engines {
        let kind = e.kind();
        let s = quick();
        let recs = vec![
            record("low", true, "low", None),
            record("urgent", true, "urgent", None),
            record("plain", false, "normal", None),
        ];
        let ids: Vec<String> = recs.iter().map(|r| r.id.clone()).collect();
        e.append("bob", recs, 100).await.expect("append");

        // take: a WebSocket push of seq 1 counts as attempt 1; a seq not receivable is left out.
        let taken = e.take("bob", vec![1, 99], &s).await.expect("take");
        assert_eq!(taken, vec![(1, 1)], "{kind}");
        assert!(
            e.take("bob", vec![1], &s).await.expect("take").is_empty(),
            "{kind}"
        );

        // receive: urgent first; the plain one is consumed by its one hand-over.
        let got = e.receive("bob", 10, &s).await.expect("receive");
        let seqs: Vec<(u64, u32)> = got.iter().map(|h| (h.seq, h.attempt)).collect();
        assert_eq!(seqs, vec![(2, 1), (3, 1)], "{kind}");
        assert_eq!(
            e.stats("bob", "bob").await.expect("stats").pending_acks,
            2,
            "{kind}"
        );

        // ack / nack refusals name their cause.
        assert!(
            matches!(
                e.ack("bob", &ids[2]).await,
                Err(StorageError::NotPending { .. })
            ),
            "{kind}"
        );
        assert!(
            matches!(
                e.ack("bob", "nope").await,
                Err(StorageError::UnknownMessage(_))
            ),
            "{kind}"
        );
        assert_eq!(e.ack("bob", &ids[1]).await.expect("ack"), 1, "{kind}");
        assert!(
            matches!(
                e.ack("bob", &ids[1]).await,
                Err(StorageError::NotPending { .. })
            ),
            "{kind}"
        );

        // The pushed one times out, comes back with attempt 2, times out again: max_attempts.
        let back = receive_eventually(e, &s).await;
        assert_eq!(
            back.iter().map(|h| (h.seq, h.attempt)).collect::<Vec<_>>(),
            vec![(1, 2)],
            "{kind}"
        );
        dead_eventually(e, &s, 1).await;
        let page = e
            .dlq_list(DeadQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(page.dead_letters.len(), 1, "{kind}");
        let d = &page.dead_letters[0];
        assert_eq!(
            (
                d.reason,
                d.attempts,
                d.mailbox.as_str(),
                d.message.id.as_str()
            ),
            (DeadReason::MaxAttempts, 2, "bob", ids[0].as_str()),
            "{kind}"
        );
        assert_eq!(
            e.stats("bob", "bob").await.expect("stats").pending_acks,
            0,
            "{kind}"
        );
        // Repeated passes make no second dead letter.
        for _ in 0..10 {
            e.retry_due(100, &s).await.expect("retry pass");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(e.dlq_count().await.expect("count"), 1, "{kind}");

        // nack with requeue past the last attempt dead-letters too.
        e.append("bob", vec![record("again", true, "high", None)], 100)
            .await
            .expect("append");
        let h = e.receive("bob", 1, &s).await.expect("receive");
        let id = e
            .dlq_get(&d.id)
            .await
            .expect("get")
            .expect("present")
            .message
            .id;
        assert_eq!(id, ids[0]);
        let nack_id = &h[0].decode().expect("decode").id;
        let out = e
            .nack("bob", nack_id, true, "busy", &s)
            .await
            .expect("nack");
        assert!(
            matches!(out, NackOutcome::Requeued { attempt: 1, .. }),
            "{kind}: {out:?}"
        );
        let again = receive_eventually(e, &s).await;
        assert_eq!((again.len(), again[0].attempt), (1, 2), "{kind}");
        let out = e
            .nack("bob", nack_id, true, "still busy", &s)
            .await
            .expect("nack");
        assert_eq!(
            out,
            NackOutcome::DeadLettered {
                attempt: 2,
                reason: DeadReason::MaxAttempts
            },
            "{kind}"
        );

        // retract removes exactly what a failed batch stored.
        let r = record("oops", false, "normal", None);
        let rid = r.id.clone();
        let out = e.append("carol", vec![r], 100).await.expect("append");
        let seq = match out.results[0] {
            mailbox_actors::storage::Appended::Stored { seq } => seq,
            _ => panic!("stored"),
        };
        assert_eq!(
            e.retract("carol", vec![(rid.clone(), seq), ("other".into(), seq)])
                .await
                .expect("retract"),
            1,
            "{kind}"
        );
        assert!(
            e.receive("carol", 10, &s)
                .await
                .expect("receive")
                .is_empty(),
            "{kind}"
        );
        assert_eq!(
            e.stats("carol", "carol").await.expect("stats").total,
            0,
            "{kind}"
        );

        // Purge by age.
        assert_eq!(
            e.dlq_purge(Utc::now().timestamp_millis() - 60_000)
                .await
                .expect("purge"),
            0,
            "{kind}"
        );
        assert_eq!(
            e.dlq_purge(Utc::now().timestamp_millis() + 1)
                .await
                .expect("purge"),
            2,
            "{kind}"
        );
        assert_eq!(e.dlq_count().await.expect("count"), 0, "{kind}");
    }
}

/// An append of a message id the mailbox already holds (a spool replay, a write whose answer
/// was lost) answers `Duplicate` with the first seq and stores nothing, alone or in a pipeline.
#[tokio::test]
async fn a_message_id_is_stored_once() {
    use mailbox_actors::storage::Appended;
    let (engines, _redis) = engines().await;
    for e in &engines {
        let kind = e.kind();
        let r = record("once", false, "normal", None);
        let id = r.id.clone();
        let first = e
            .append("dave", vec![r.clone()], 100)
            .await
            .expect("append");
        assert_eq!(first.results, vec![Appended::Stored { seq: 1 }], "{kind}");
        let again = e
            .append("dave", vec![r.clone()], 100)
            .await
            .expect("append");
        assert_eq!(
            again.results,
            vec![Appended::Duplicate {
                id: id.clone(),
                seq: 1
            }],
            "{kind}"
        );
        let many = e
            .append_many(vec![("dave".into(), vec![r])], 100)
            .await
            .expect("append_many");
        let one = many.into_iter().next().expect("one").expect("append");
        assert_eq!(
            one.results,
            vec![Appended::Duplicate { id, seq: 1 }],
            "{kind}"
        );
        assert_eq!(
            e.stats("dave", "dave").await.expect("stats").total,
            1,
            "{kind}"
        );
    }
}

/// Delivery state an earlier version wrote (a three-field `dm` entry, the attempts in `att`) is
/// still handed over, counted and settled, and its `att` entry goes with it.
#[tokio::test]
async fn delivery_state_of_an_earlier_version_still_settles() {
    let (engines, redis) = engines().await;
    let e = &engines[0];
    assert_eq!(e.kind(), "redis");
    let cli = |args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli must be installed (make test installs it)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let s = DeliverySettings {
        ack_timeout: Duration::from_secs(60),
        ..quick()
    };
    let recs = vec![
        record("delivered before", true, "normal", None),
        record("stored before", true, "normal", None),
    ];
    let ids: Vec<String> = recs.iter().map(|r| r.id.clone()).collect();
    e.append("erin", recs, 100).await.expect("append");
    // Seq 1 as an earlier version left it after one delivery: in flight, its attempt in `att`.
    cli(&["HSET", "t:mb:{erin}:dm", "1", "2:1:0"]);
    cli(&["HSET", "t:mb:{erin}:att", "1", "1"]);
    cli(&["ZREM", "t:mb:{erin}:ready", "1"]);
    cli(&["ZADD", "t:mb:{erin}:flight", "99999999999999", "1"]);
    // Seq 2 as an earlier version stored it: not delivered yet.
    cli(&["HSET", "t:mb:{erin}:dm", "2", "2:1:0"]);

    let got = e.receive("erin", 10, &s).await.expect("receive");
    let seqs: Vec<(u64, u32)> = got.iter().map(|h| (h.seq, h.attempt)).collect();
    assert_eq!(seqs, vec![(2, 1)]);
    assert_eq!(
        e.stats("erin", "erin").await.expect("stats").pending_acks,
        2
    );
    assert_eq!(e.ack("erin", &ids[0]).await.expect("ack seq 1"), 1);
    assert_eq!(e.ack("erin", &ids[1]).await.expect("ack seq 2"), 1);
    assert!(matches!(
        e.ack("erin", &ids[0]).await,
        Err(StorageError::NotPending { .. })
    ));
    assert_eq!(cli(&["HLEN", "t:mb:{erin}:att"]), "0");
    assert_eq!(cli(&["HLEN", "t:mb:{erin}:dm"]), "0");
    assert_eq!(
        e.stats("erin", "erin").await.expect("stats").pending_acks,
        0
    );
}
