//! LDAP login throughput against a real, private slapd (a plain binary,
//! `harness = false`; no timing asserts in tests).
//!
//!   cargo bench -p steward-hub --bench ldap_login
//!
//! Measures full `steward_hub::ldap::authenticate` calls (connection per login, as the
//! hub does: connect, TLS, bind, whoami, exact-name check, group search with nesting)
//! from `STEWARD_BENCH_CONCURRENCY` (default 32) tasks on a 2-worker tokio runtime,
//! over ldaps://, StartTLS and ldapi://, then two baselines in the same run: a bare
//! ldap3 connect + TLS + bind loop (the floor of any LDAP login) and `ldapwhoami`
//! process-per-login (what a shell-out to OpenLDAP's tools would cost).
//! Environment: STEWARD_BENCH_SECS (per measurement, default 5).
//!
//! slapd and the benchmark share the machine; the figure is for both together.

#[path = "../../tests/src/slapd.rs"]
#[allow(dead_code)]
mod slapd;

use slapd::{password_of, Slapd, SlapdOptions, USER_DN_TEMPLATE};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use steward_hub::ldap::{authenticate, LdapConfig};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Outcome {
    rate: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `op` from `concurrency` tasks for `secs` (after a 1 s warm-up).
fn measure_async<F, Fut>(
    rt: &tokio::runtime::Runtime,
    concurrency: usize,
    secs: u64,
    op: F,
) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    rt.block_on(async move {
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let lat = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = vec![];
        for i in 0..concurrency {
            let (op, measuring, stop, done, errors, lat) = (
                op.clone(),
                measuring.clone(),
                stop.clone(),
                done.clone(),
                errors.clone(),
                lat.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut mine = vec![];
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = op(n).await;
                    n += concurrency;
                    if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                        mine.push(t.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                lat.lock().unwrap().extend(mine);
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        measuring.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let elapsed = t0.elapsed();
        for t in tasks {
            t.await.unwrap();
        }
        let mut l = lat.lock().unwrap().clone();
        l.sort();
        Outcome {
            rate: done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
            p50: pct(&l, 0.5),
            p99: pct(&l, 0.99),
            errors: errors.load(Ordering::Relaxed),
        }
    })
}

/// Runs `op` from `concurrency` OS threads for `secs` (after a 1 s warm-up).
fn measure_threads(
    concurrency: usize,
    secs: u64,
    op: impl Fn(usize) -> bool + Send + Sync + 'static,
) -> Outcome {
    let op = Arc::new(op);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..concurrency)
        .map(|i| {
            let (op, measuring, stop, done, errors, lat) = (
                op.clone(),
                measuring.clone(),
                stop.clone(),
                done.clone(),
                errors.clone(),
                lat.clone(),
            );
            std::thread::spawn(move || {
                let mut mine = vec![];
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = op(n);
                    n += concurrency;
                    if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                        mine.push(t.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                lat.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed();
    for t in threads {
        t.join().unwrap();
    }
    let mut l = lat.lock().unwrap().clone();
    l.sort();
    Outcome {
        rate: done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        p50: pct(&l, 0.5),
        p99: pct(&l, 0.99),
        errors: errors.load(Ordering::Relaxed),
    }
}

fn report(name: &str, o: &Outcome) {
    println!(
        "{name:<58} {:>8.0} logins/s   p50 {:>6.1} ms   p99 {:>6.1} ms   errors {}",
        o.rate,
        o.p50.as_secs_f64() * 1e3,
        o.p99.as_secs_f64() * 1e3,
        o.errors
    );
}

const USERS: [&str; 3] = ["alice", "bob", "dave"];

fn config(s: &Slapd, url: &str) -> LdapConfig {
    let mut c = LdapConfig::new(url);
    c.starttls = url.starts_with("ldap://");
    c.ca_file = Some(s.ca_file.clone());
    c.user_dn_template = Some(USER_DN_TEMPLATE.into());
    c.group_base = Some(slapd::GROUPS.into());
    c.nested_groups = true;
    c
}

fn main() {
    if !slapd::available("ldap_login bench") {
        return;
    }
    let secs = env_u64("STEWARD_BENCH_SECS", 5);
    let concurrency = env_u64("STEWARD_BENCH_CONCURRENCY", 32) as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = Slapd::start(SlapdOptions::default());
    println!(
        "LDAP login throughput: {cores} CPUs, concurrency {concurrency}, {secs} s per figure, \
         slapd on the same machine"
    );

    let mut full = vec![];
    for (label, url, search) in [
        (
            "authenticate() ldaps, template bind, nested groups",
            &s.ldaps_url,
            false,
        ),
        (
            "authenticate() ldap+StartTLS, template bind, nested groups",
            &s.ldap_url,
            false,
        ),
        (
            "authenticate() ldapi, template bind, nested groups",
            &s.ldapi_url,
            false,
        ),
        (
            "authenticate() ldaps, anonymous search + bind, nested groups",
            &s.ldaps_url,
            true,
        ),
    ] {
        let mut c = config(&s, url);
        if search {
            c.user_dn_template = None;
            c.search_base = Some(slapd::PEOPLE.into());
            c.search_filter = Some("(uid={user})".into());
        }
        let c = Arc::new(c);
        let o = measure_async(&rt, concurrency, secs, move |n| {
            let c = c.clone();
            async move {
                let u = USERS[n % USERS.len()];
                authenticate(&c, u, password_of(u)).await.is_ok()
            }
        });
        report(label, &o);
        full.push(o.rate);
    }

    // Floor: connect + TLS + one bind with ldap3, same TLS settings (no whoami, no groups).
    let tls = {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_file_iter(&s.ca_file).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    };
    let url = s.ldaps_url.clone();
    let bind = measure_async(&rt, concurrency, secs, move |n| {
        let (tls, url) = (tls.clone(), url.clone());
        async move {
            let u = USERS[n % USERS.len()];
            let settings = ldap3::LdapConnSettings::new().set_config(tls);
            let Ok((conn, mut ldap)) = ldap3::LdapConnAsync::with_settings(settings, &url).await
            else {
                return false;
            };
            let driver = tokio::spawn(conn.drive());
            let ok = ldap
                .simple_bind(&slapd::user_dn(u), password_of(u))
                .await
                .is_ok_and(|r| r.rc == 0);
            let _ = ldap.unbind().await;
            driver.abort();
            ok
        }
    });
    report(
        "baseline: raw ldap3 connect + TLS + bind only (ldaps)",
        &bind,
    );

    // Baseline: one `ldapwhoami` process per login (16 at a time).
    let s = Arc::new(s);
    let s2 = s.clone();
    let whoami = measure_threads(16, secs, move |n| {
        let u = USERS[n % USERS.len()];
        s2.whoami(&s2.ldaps_url, Some(&slapd::user_dn(u)), password_of(u))
            .is_ok()
    });
    report(
        "baseline: ldapwhoami process per login (ldaps, 16 at a time)",
        &whoami,
    );

    println!(
        "ratio authenticate(ldaps)/raw bind = {:.2}, authenticate(ldaps)/ldapwhoami = {:.1}",
        full[0] / bind.rate,
        full[0] / whoami.rate
    );
}
