//! `server::run` in-process: it serves on the listener it is given and stops when the shutdown
//! future the caller passes resolves (here a oneshot; `serve` passes SIGTERM/SIGINT).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mailbox::config::{Config, EngineKind};

/// The status line of `GET path`, or `None` while nothing answers.
fn get_status(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().next().map(str::to_owned)
}

#[test]
fn run_serves_until_the_callers_shutdown_resolves() {
    let mut cfg = Config::defaults().expect("the built-in defaults load");
    cfg.storage.engine = EngineKind::Memory;
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let r = actix_web::rt::System::new().block_on(mailbox::server::run(
            listener,
            cfg,
            async move {
                let _ = stopped.await;
            },
        ));
        let _ = done_tx.send(r.map_err(|e| e.to_string()));
    });

    let start = Instant::now();
    loop {
        match get_status(addr, "/health/ready") {
            Some(line) => {
                assert!(line.contains(" 200 "), "{line}");
                break;
            }
            None => assert!(
                start.elapsed() < Duration::from_secs(20),
                "the server never answered"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    stop.send(()).expect("the server is waiting for its signal");
    let result = done
        .recv_timeout(Duration::from_secs(20))
        .expect("run returned after the shutdown signal");
    assert_eq!(result, Ok(()));
    assert!(
        get_status(addr, "/health/live").is_none(),
        "nothing listens after shutdown"
    );
}
