//! Audit log benchmarks (a plain binary, `harness = false`; no timing asserts in tests).
//!
//!   cargo bench -p steward-audit --bench throughput
//!
//! 1. durable appends/s with group commit, many concurrent appenders, and the
//!    fsync-per-record baseline in the same run;
//! 2. added latency per append at a paced 1,000 appends/s (p50/p99/max);
//! 3. `verify` MB/s and `search` time over a generated ~1 GB log (in a temp dir under
//!    /tmp, deleted afterwards).
//!
//! Environment: STEWARD_BENCH_ONLY (comma list of append,latency,verify,search),
//! STEWARD_BENCH_DATA (keep/reuse the generated log in this directory),
//! STEWARD_BENCH_RECORDS (group-commit records, default 300000),
//! STEWARD_BENCH_GB (size of the generated log, default 1.0), STEWARD_BENCH_DIR
//! (where the durable-append logs go, default /tmp: the same disk as the hub's).

use std::path::Path;
use std::time::{Duration, Instant};
use steward_audit::testing::{generate, sample_record};
use steward_audit::{search, search_each, verify_dir, AuditConfig, AuditLog, SearchFilter};

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
}

fn base_dir() -> std::path::PathBuf {
    std::env::var("STEWARD_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| std::env::temp_dir())
}

/// `n` records from `concurrency` async tasks, each doing what the hub does per
/// operation: append the intent, then the outcome naming it; returns records/s.
fn durable_rate(
    rt: &tokio::runtime::Runtime,
    max_batch: usize,
    n: u64,
    concurrency: u64,
) -> (f64, u64) {
    let t = tempfile::tempdir_in(base_dir()).unwrap();
    let mut c = AuditConfig::new(t.path());
    c.max_batch = max_batch;
    c.signing_key = Some(key());
    let log = AuditLog::open(c).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..concurrency {
            let log = log.clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = w * 2;
                while i + 1 < n {
                    let intent = sample_record(i);
                    let seq = log.append(intent.clone()).await.unwrap();
                    log.append(intent.outcome_of(seq, steward_audit::Outcome::Ok, None))
                        .await
                        .unwrap();
                    done.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
                    i += concurrency * 2;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let st = log.stats();
    let commits = st.commits;
    println!(
        "  (max_batch {max_batch}: writer time stage {:.2} s, write {:.2} s, fsync {:.2} s of {secs:.2} s; avg fsync {:.2} ms)",
        st.stage_micros as f64 / 1e6,
        st.write_micros as f64 / 1e6,
        st.fsync_micros as f64 / 1e6,
        st.fsync_micros as f64 / 1e3 / st.commits.max(1) as f64
    );
    drop(log);
    let n = done.load(std::sync::atomic::Ordering::Relaxed);
    (n as f64 / secs, commits)
}

/// The disk alone: `write` of one 550-byte line + `fdatasync`, back to back for
/// `secs`; sorted latencies.
fn fdatasync_latency(secs: u64) -> Vec<Duration> {
    use std::io::Write;
    let t = tempfile::tempdir_in(base_dir()).unwrap();
    let mut f = std::fs::File::create(t.path().join("f")).unwrap();
    let mut lat = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let s = Instant::now();
        f.write_all(&[b'x'; 550]).unwrap();
        f.sync_data().unwrap();
        lat.push(s.elapsed());
    }
    lat.sort();
    lat
}

/// Sorted append latencies, and the longest single flush the log saw meanwhile.
fn paced_latency(rt: &tokio::runtime::Runtime, rate: u64, secs: u64) -> (Vec<Duration>, Duration) {
    let t = tempfile::tempdir_in(base_dir()).unwrap();
    let mut c = AuditConfig::new(t.path());
    c.signing_key = Some(key());
    let log = AuditLog::open(c).unwrap();
    let lat = rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = Vec::new();
        for i in 0..rate * secs {
            tick.tick().await;
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let s = Instant::now();
                log.append(sample_record(i)).await.unwrap();
                s.elapsed()
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.push(t.await.unwrap());
        }
        lat.sort();
        lat
    });
    let worst = Duration::from_micros(log.stats().fsync_max_micros);
    (lat, worst)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let s = Instant::now();
    let r = f();
    (r, s.elapsed().as_secs_f64())
}

fn search_count(dir: &Path, f: &SearchFilter) -> usize {
    let mut n = 0usize;
    search_each(dir, f, |_| {
        n += 1;
        true
    })
    .unwrap();
    n
}

fn want(section: &str) -> bool {
    std::env::var("STEWARD_BENCH_ONLY").map_or(true, |v| v.split(',').any(|s| s == section))
}

/// CPU seconds (user + system) used by this process so far.
fn cpu_secs() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(ru) = getrusage(UsageWho::RUSAGE_SELF) else {
        return 0.0;
    };
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    tv(ru.user_time()) + tv(ru.system_time())
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let n = env_f64("STEWARD_BENCH_RECORDS", 300_000.0) as u64;
    let gb = env_f64("STEWARD_BENCH_GB", 1.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# steward-audit benchmark ({} cores, appends in {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        base_dir().display()
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    if want("append") || want("latency") {
        let raw = fdatasync_latency(3);
        println!(
            "disk alone, write+fdatasync of one line, back to back: p50 {} p99 {} max {} ({} samples)",
            ms(pct(&raw, 0.5)),
            ms(pct(&raw, 0.99)),
            ms(*raw.last().unwrap()),
            raw.len()
        );
    }
    if want("append") {
        let cpu0 = cpu_secs();
        let (gc, commits) = durable_rate(&rt, 4096, n, 1024);
        let cpu = cpu_secs() - cpu0;
        println!(
            "  ({:.1} µs of CPU per durable record, all threads)",
            cpu * 1e6 / n as f64
        );
        println!(
        "group commit: {n} durable records, 1024 concurrent appenders: {gc:.0} records/s ({commits} commits, {:.0} records per fsync)",
        n as f64 / commits as f64
    );
        let base_n = (n / 100).clamp(1000, 5000);
        let (single, _) = durable_rate(&rt, 1, base_n, 1024);
        println!(
        "fsync per record (baseline): {base_n} durable records: {single:.0} records/s; group commit is {:.0}x faster",
        gc / single
    );
    }

    if want("latency") {
        let (lat, worst) = paced_latency(&rt, 1000, 5);
        println!(
            "paced 1000 appends/s for 5 s: latency p50 {} p90 {} p99 {} max {} ({} appends); longest single flush {}",
            ms(pct(&lat, 0.50)),
            ms(pct(&lat, 0.90)),
            ms(pct(&lat, 0.99)),
            ms(*lat.last().unwrap()),
            lat.len(),
            ms(worst)
        );
    }
    if !want("verify") && !want("search") {
        return;
    }

    let keep = std::env::var("STEWARD_BENCH_DATA")
        .ok()
        .map(std::path::PathBuf::from);
    let tmp = tempfile::Builder::new()
        .prefix("steward-audit-bench-")
        .tempdir_in("/tmp")
        .unwrap();
    let data = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let target = (gb * (1u64 << 30) as f64) as u64;
    let bytes = if keep
        .as_ref()
        .is_some_and(|k| k.join("audit.jsonl").exists())
    {
        steward_audit::audit_files(&data)
            .unwrap()
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum()
    } else {
        let ((records, bytes), gen_s) =
            timed(|| generate(&data, target, 64 << 20, 1000, Some(&key())).unwrap());
        println!(
            "generated {records} records, {:.0} MB in {} files ({gen_s:.1} s)",
            bytes as f64 / 1e6,
            steward_audit::audit_files(&data).unwrap().len()
        );
        bytes
    };
    let big = data.as_path();
    let vk = key().verifying_key();
    for round in 1..=2 {
        if !want("verify") {
            break;
        }
        let cpu0 = cpu_secs();
        let (report, s) = timed(|| verify_dir(big, Some(&vk)).unwrap());
        let cpu = cpu_secs() - cpu0;
        println!(
            "verify (with key, page cache warm), round {round}: {:.2} s, {:.0} MB/s wall, {:.0} MB per CPU-second ({} records, {} checkpoints)",
            s,
            report.bytes as f64 / 1e6 / s,
            report.bytes as f64 / 1e6 / cpu,
            report.records,
            report.checkpoints
        );
    }
    if !want("search") {
        return;
    }
    let day = |h: i64| chrono::DateTime::from_timestamp(1_795_000_000 + h * 3600, 0).unwrap();
    let queries: Vec<(&str, SearchFilter)> = vec![
        (
            "--actor bob (1 in 7 records match)",
            SearchFilter {
                actor: Some("bob".into()),
                ..Default::default()
            },
        ),
        (
            "--workflow atmosphere_stage/run7 --op stop",
            SearchFilter {
                workflow: Some("atmosphere_stage/run7".into()),
                op: Some("stop".into()),
                ..Default::default()
            },
        ),
        (
            "--since/--until a 1-hour window",
            SearchFilter {
                since: Some(day(2)),
                until: Some(day(3)),
                ..Default::default()
            },
        ),
        (
            "--actor nobody (no match: pure scan)",
            SearchFilter {
                actor: Some("nobody".into()),
                ..Default::default()
            },
        ),
    ];
    for (name, f) in &queries {
        let cpu0 = cpu_secs();
        let (count, s) = timed(|| search_count(big, f));
        let cpu = cpu_secs() - cpu0;
        println!(
            "search {name}: {count} records in {s:.2} s wall ({cpu:.2} CPU-s) over {:.0} MB",
            bytes as f64 / 1e6
        );
    }
    let (recs, s) = timed(|| {
        search(
            big,
            &SearchFilter {
                owner: Some("alice".into()),
                limit: Some(100),
                newest_first: true,
                ..Default::default()
            },
        )
        .unwrap()
    });
    println!(
        "search --owner alice --newest --limit 100 (hub audit page): {} records in {s:.3} s",
        recs.len()
    );
    drop(tmp);
}
