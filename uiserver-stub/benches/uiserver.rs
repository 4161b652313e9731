//! Benchmarks for the UI server (run: `cargo bench -p steward-uiserver-stub`).
//!
//! 1. Delta fan-out: a stand-in scheduler on the workflow's socket pushes 1,000 task
//!    state changes per second (one delta each, no batching) into the real release
//!    binary; 50 WebSocket clients over mutual TLS receive them. Latency per (client,
//!    change) = arrival at the client − the moment the change was written to the socket.
//! 2. Log search: 100 MB of job logs; `GET /api/search` through the real server
//!    (literal, case-insensitive, regex) against `grep -rn` on the same files.
//!
//! Not a test: it prints figures for docs/benchmarks.md and asserts nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use futures_util::StreamExt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use steward_protocol::wire::TaskState;
use steward_uiserver::flow::Flow;
use steward_uiserver::sched_proto::SchedEvent;
use steward_uiserver::state::{WorkflowState, WorkflowStatus};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const CLIENTS: usize = 50;
const RATE: u64 = 1000; // changes per second
const SECONDS: u64 = 10;
const TASKS: usize = 1000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    if only.as_deref().is_none_or(|o| o == "fanout") {
        rt.block_on(fanout());
    }
    if only.as_deref().is_none_or(|o| o == "search") {
        rt.block_on(search());
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn fanout() {
    let mut env = Env::new();
    let mut flow = String::from("[tasks]\n");
    for i in 0..TASKS {
        flow.push_str(&format!("t{i:04} = {{ script = \"true\" }}\n"));
    }
    env.write_flow("bench", &flow);
    let parsed = Flow::parse(&flow).unwrap();
    let mut st = WorkflowState::fresh("bench", &parsed);
    st.status = WorkflowStatus::Running;
    st.scheduler_pid = Some(std::process::id());

    // Stand-in scheduler: answers `subscribe` with the state, then we push deltas.
    let run = env.run_dir("bench");
    std::fs::create_dir_all(&run).unwrap();
    let listener = tokio::net::UnixListener::bind(run.join("scheduler.sock")).unwrap();
    let (conn_tx, conn_rx) = tokio::sync::oneshot::channel();
    let state_line = serde_json::to_string(&SchedEvent::State { state: st }).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = stream.into_split();
        let mut lines = BufReader::new(rd).lines();
        let first = lines.next_line().await.unwrap().unwrap();
        assert!(first.contains("subscribe"));
        wr.write_all(state_line.as_bytes()).await.unwrap();
        wr.write_all(b"\n").await.unwrap();
        let _ = conn_tx.send(wr);
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    env.start(600);
    let mut wr = conn_rx.await.unwrap();

    let total = (RATE * SECONDS) as usize;
    let recv: Arc<Vec<Mutex<Vec<Option<Instant>>>>> = Arc::new(
        (0..CLIENTS)
            .map(|_| Mutex::new(vec![None; total]))
            .collect(),
    );
    let mut readers = Vec::new();
    for c in 0..CLIENTS {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", env.port()))
            .await
            .unwrap();
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("wss://{}:{}/ws", dns(), env.port())
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", env.jwt.read()).parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::client_async_tls_with_config(
            req,
            stream,
            None,
            Some(tokio_tungstenite::Connector::Rustls(Arc::new(client_tls(
                &env.pki,
                Identity::Hub,
            )))),
        )
        .await
        .unwrap();
        let (_sink, mut stream) = ws.split();
        let recv = recv.clone();
        readers.push(tokio::spawn(async move {
            let mut got = 0usize;
            while let Some(Ok(m)) = stream.next().await {
                let now = Instant::now();
                let t = match m.to_text() {
                    Ok(t) => t,
                    Err(_) => continue,
                };
                if !t.starts_with("{\"type\":\"delta\"") {
                    continue;
                }
                // The sequence number rides in `job` (several when deltas were merged).
                let mut rest = t;
                let mut slots = recv[c].lock().unwrap();
                while let Some(i) = rest.find("\"job\":") {
                    rest = &rest[i + 6..];
                    let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                    if let Ok(seq) = n.parse::<usize>() {
                        if seq < slots.len() && slots[seq].is_none() {
                            slots[seq] = Some(now);
                            got += 1;
                        }
                    }
                }
                drop(slots);
                if got == total {
                    break;
                }
            }
            drop(_sink);
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut sent = vec![Instant::now(); total];
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    for (seq, slot) in sent.iter_mut().enumerate() {
        tick.tick().await;
        let ev = SchedEvent::Delta {
            status: None,
            tasks: vec![TaskState {
                cycle: "1".into(),
                task: format!("t{:04}", seq % TASKS),
                state: if seq % 2 == 0 { "running" } else { "succeeded" }.into(),
                job: Some(seq as u32),
            }],
        };
        let mut line = serde_json::to_vec(&ev).unwrap();
        line.push(b'\n');
        *slot = Instant::now();
        wr.write_all(&line).await.unwrap();
    }
    let send_secs = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(10);
    for r in readers {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, r).await;
    }
    let mut lat = Vec::with_capacity(total * CLIENTS);
    let mut missing = 0;
    for c in 0..CLIENTS {
        let v = recv[c].lock().unwrap();
        for (seq, t) in v.iter().enumerate() {
            match t {
                Some(t) => lat.push(t.duration_since(sent[seq]).as_secs_f64() * 1000.0),
                None => missing += 1,
            }
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("## delta fan-out");
    println!(
        "changes: {total} in {send_secs:.2} s ({:.0}/s), clients: {CLIENTS}, deliveries: {} (missing {missing})",
        total as f64 / send_secs,
        lat.len()
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        pct(&lat, 0.50),
        pct(&lat, 0.90),
        pct(&lat, 0.99),
        pct(&lat, 0.999),
        lat.last().copied().unwrap_or(f64::NAN)
    );
}

async fn search() {
    let mut env = Env::new();
    env.write_flow("logs", "[tasks.a]\nscript = \"true\"\n");
    // 100 MB of job logs: 50 cycles x 4 tasks x (job.out 480 KB + job.err 20 KB).
    let target: u64 = 100 * 1024 * 1024;
    let per_file_out = (target / 200) * 96 / 100;
    let per_file_err = target / 200 - per_file_out;
    let mut total = 0u64;
    let mut files = 0;
    let mut seed = 0x9e3779b97f4a7c15u64;
    for cycle in 1..=50 {
        for task in ["prep", "model", "post", "archive"] {
            let dir = env.job_dir("logs", &cycle.to_string(), task, 1);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, size) in [("job.out", per_file_out), ("job.err", per_file_err)] {
                let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).unwrap());
                let mut written = 0u64;
                let mut line_no = 0u64;
                while written < size {
                    line_no += 1;
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let line = if cycle == 37
                        && task == "model"
                        && name == "job.out"
                        && line_no == 4242
                    {
                        "2026-11-23T10:15:02Z CRITICAL [37/model] Segmentation Fault in solver\n"
                            .to_string()
                    } else {
                        format!(
                            "2026-11-23T10:{:02}:{:02}Z INFO [{cycle}/{task}] step {line_no} residual={:.6} dt=0.{:04} cells={} status=ok\n",
                            (seed >> 8) % 60,
                            (seed >> 16) % 60,
                            (seed % 1_000_000) as f64 / 1e6,
                            (seed >> 24) % 10_000,
                            (seed >> 32) % 100_000
                        )
                    };
                    f.write_all(line.as_bytes()).unwrap();
                    written += line.len() as u64;
                }
                total += written;
                files += 1;
            }
        }
    }
    env.start(600);
    let root = env.run_dir("logs").join("log/job");
    println!("## log search");
    println!("corpus: {files} files, {:.1} MB", total as f64 / 1e6);
    let cases: [(&str, &str, &[&str]); 3] = [
        (
            "literal",
            "q=Segmentation%20Fault",
            &["-rn", "Segmentation Fault"],
        ),
        (
            "case-insensitive",
            "q=segmentation%20fault&case_insensitive=true",
            &["-rni", "segmentation fault"],
        ),
        (
            "regex",
            "q=CRITICAL.*Fault%20in%20%5Cw%2B&regex=true",
            &["-rnE", "CRITICAL.*Fault in \\w+"],
        ),
    ];
    // Warm the page cache once (both sides read the same files).
    let _ = std::process::Command::new("grep")
        .args(["-rn", "x-never-x"])
        .arg(&root)
        .output();
    for (name, q, grep_args) in cases {
        let mut ours = Vec::new();
        let mut hits = 0;
        for _ in 0..5 {
            let token = env
                .jwt
                .token(&[steward_protocol::Operation::Read], Some("logs"));
            let t = Instant::now();
            let r: serde_json::Value = env
                .get(&format!("/api/search?workflow=logs&{q}"), Some(&token))
                .await
                .json()
                .await
                .unwrap();
            ours.push(t.elapsed().as_secs_f64());
            hits = r["matches"].as_array().unwrap().len();
            assert_eq!(r["bytes_scanned"].as_u64().unwrap(), total);
        }
        let mut grep = Vec::new();
        let mut grep_hits = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let out = std::process::Command::new("grep")
                .args(grep_args)
                .arg(&root)
                .output()
                .unwrap();
            grep.push(t.elapsed().as_secs_f64());
            grep_hits = String::from_utf8_lossy(&out.stdout).lines().count();
        }
        ours.sort_by(|a, b| a.partial_cmp(b).unwrap());
        grep.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (o, g) = (ours[2], grep[2]);
        println!(
            "{name:>16}: /api/search median {:.0} ms ({} match) | grep {} median {:.0} ms ({} match) | ratio {:.2}x",
            o * 1000.0,
            hits,
            grep_args[0],
            g * 1000.0,
            grep_hits,
            o / g
        );
    }
}
