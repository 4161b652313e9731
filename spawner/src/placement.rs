//! Choosing a host of a pool for a new server, and saying why — pure: it is handed each
//! host's last `host_status` (or why it could not be read), does no I/O and keeps no
//! state, so every rule here is unit-tested and the explanation is the same value as the
//! decision (the hub prints [`Decision::render`] for `steward servers place --explain`
//! and logs it on each start).
//!
//! Exclusions apply whatever the policy: a host that is down, drained, below the free
//! memory floor, at its server cap or over the load cap gets no new server. Among the
//! rest: `least_loaded` takes the fewest Steward servers (counting starts in flight),
//! then the lowest load per CPU, then the most free memory; `round_robin` takes the next
//! eligible host after the previous winner; `sticky` gives each owner a fixed order of
//! hosts (rendezvous hashing of owner and host name), so an owner returns to the same
//! host while it is eligible, and when one host goes only its owners move.

use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::fmt::Write as _;
use steward_protocol::helper::HostStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    #[default]
    LeastLoaded,
    RoundRobin,
    Sticky,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::LeastLoaded => "least_loaded",
            Policy::RoundRobin => "round_robin",
            Policy::Sticky => "sticky",
        }
    }
}

/// Limits past which a host is skipped; `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Thresholds {
    /// Skip a host whose `MemAvailable` is below this many bytes.
    pub min_free_memory: Option<u64>,
    /// Skip a host already running this many Steward servers (starts in flight count).
    pub max_servers: Option<u32>,
    /// Skip a host whose 1-minute load per CPU, × 1000, is above this.
    pub max_load_per_cpu_milli: Option<u64>,
}

/// One host as the pool sees it at decision time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The pool's name for the host.
    pub name: String,
    pub address: String,
    pub drained: bool,
    /// Starts sent to this host whose reply has not come back yet.
    pub in_flight: u32,
    /// The host's status, or why it could not be read (the host counts as down).
    pub status: Result<HostStatus, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Eligible,
    Down(String),
    Drained,
    LowMemory { available: u64, min: u64 },
    Full { servers: u32, max: u32 },
    Overloaded { load_per_cpu_milli: u64, max: u64 },
}

impl Verdict {
    pub fn eligible(&self) -> bool {
        matches!(self, Verdict::Eligible)
    }

    fn describe(&self) -> String {
        match self {
            Verdict::Eligible => "eligible".into(),
            Verdict::Down(why) => format!("excluded: down ({why})"),
            Verdict::Drained => "excluded: drained (keeps its servers, gets no new ones)".into(),
            Verdict::LowMemory { available, min } => format!(
                "excluded: free memory {} below the floor {}",
                bytes(*available),
                bytes(*min)
            ),
            Verdict::Full { servers, max } => {
                format!("excluded: full ({servers} servers, max {max})")
            }
            Verdict::Overloaded {
                load_per_cpu_milli,
                max,
            } => format!(
                "excluded: load per CPU {} above the cap {}",
                milli(*load_per_cpu_milli),
                milli(*max)
            ),
        }
    }
}

/// One line of the host × condition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub host: String,
    pub address: String,
    pub status: Option<HostStatus>,
    pub in_flight: u32,
    pub verdict: Verdict,
    /// Position in the policy's order among eligible hosts (1 = chosen).
    pub rank: Option<usize>,
}

impl Row {
    fn servers(&self) -> u32 {
        self.status
            .as_ref()
            .map_or(0, |s| s.servers.saturating_add(self.in_flight))
    }
    fn load_per_cpu_milli(&self) -> u64 {
        self.status.as_ref().map_or(0, load_per_cpu_milli)
    }
    fn free(&self) -> u64 {
        self.status.as_ref().map_or(0, |s| s.mem_available_bytes)
    }
}

/// The placement decision and everything that determined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub policy: Policy,
    pub owner: String,
    /// Every host of the pool, in name order.
    pub rows: Vec<Row>,
    /// The chosen host, or `None` when every host was excluded.
    pub winner: Option<String>,
    /// Why the winner won (or why nothing could be chosen), in one sentence.
    pub why: String,
    /// Index (in `rows`) the next round-robin decision starts after.
    pub rr_next: usize,
}

fn load_per_cpu_milli(s: &HostStatus) -> u64 {
    s.load_milli[0] / u64::from(s.cpus.max(1))
}

fn verdict(c: &Candidate, t: &Thresholds) -> Verdict {
    let s = match &c.status {
        Err(why) => return Verdict::Down(why.clone()),
        Ok(s) => s,
    };
    if c.drained {
        return Verdict::Drained;
    }
    if let Some(min) = t.min_free_memory {
        if s.mem_available_bytes < min {
            return Verdict::LowMemory {
                available: s.mem_available_bytes,
                min,
            };
        }
    }
    let servers = s.servers.saturating_add(c.in_flight);
    if let Some(max) = t.max_servers {
        if servers >= max {
            return Verdict::Full { servers, max };
        }
    }
    if let Some(max) = t.max_load_per_cpu_milli {
        let l = load_per_cpu_milli(s);
        if l > max {
            return Verdict::Overloaded {
                load_per_cpu_milli: l,
                max,
            };
        }
    }
    Verdict::Eligible
}

/// The rendezvous score of `host` for `owner`: the owner's hosts are tried from the
/// highest score down. SHA-256 rather than std's hasher, whose output may change
/// between Rust releases (and then every owner would move at a hub upgrade).
pub fn sticky_score(owner: &str, host: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(owner.as_bytes());
    h.update([0u8]);
    h.update(host.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// Chooses a host for `owner`'s new server. `rr_cursor` is the previous decision's
/// `rr_next` (0 at first); only `round_robin` reads it.
pub fn decide(
    policy: Policy,
    thresholds: &Thresholds,
    owner: &str,
    candidates: &[Candidate],
    rr_cursor: usize,
) -> Decision {
    let mut cands: Vec<&Candidate> = candidates.iter().collect();
    cands.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rows: Vec<Row> = cands
        .iter()
        .map(|c| Row {
            host: c.name.clone(),
            address: c.address.clone(),
            status: c.status.as_ref().ok().cloned(),
            in_flight: c.in_flight,
            verdict: verdict(c, thresholds),
            rank: None,
        })
        .collect();
    let n = rows.len();
    let eligible: Vec<usize> = (0..n).filter(|&i| rows[i].verdict.eligible()).collect();
    // The policy's order over eligible hosts (indexes into rows).
    let order: Vec<usize> = match policy {
        Policy::LeastLoaded => {
            let mut o = eligible.clone();
            o.sort_by(|&a, &b| least_loaded_cmp(&rows[a], &rows[b]));
            o
        }
        Policy::RoundRobin => {
            let start = if n == 0 { 0 } else { rr_cursor % n };
            (0..n)
                .map(|k| (start + k) % n)
                .filter(|i| eligible.contains(i))
                .collect()
        }
        Policy::Sticky => {
            let mut o = eligible.clone();
            o.sort_by_key(|&i| std::cmp::Reverse(sticky_score(owner, &rows[i].host)));
            o
        }
    };
    for (rank, &i) in order.iter().enumerate() {
        rows[i].rank = Some(rank + 1);
    }
    let winner = order.first().copied();
    let why = match winner {
        None if n == 0 => "the pool has no hosts".to_string(),
        None => format!("all {n} hosts are excluded (see the table)"),
        Some(w) => explain_winner(policy, owner, &rows, &order, w),
    };
    Decision {
        policy,
        owner: owner.to_string(),
        rr_next: winner.map_or(rr_cursor, |w| w + 1),
        winner: winner.map(|w| rows[w].host.clone()),
        rows,
        why,
    }
}

fn least_loaded_cmp(a: &Row, b: &Row) -> Ordering {
    a.servers()
        .cmp(&b.servers())
        .then(a.load_per_cpu_milli().cmp(&b.load_per_cpu_milli()))
        .then(b.free().cmp(&a.free()))
        .then(a.host.cmp(&b.host))
}

fn explain_winner(policy: Policy, owner: &str, rows: &[Row], order: &[usize], w: usize) -> String {
    let win = &rows[w];
    let excluded = rows.len() - order.len();
    let skipped = if excluded == 0 {
        String::new()
    } else {
        format!("; {excluded} excluded host(s) skipped")
    };
    match policy {
        Policy::LeastLoaded => {
            let Some(&r) = order.get(1) else {
                return format!("{} is the only eligible host{skipped}", win.host);
            };
            let run = &rows[r];
            let because = if win.servers() != run.servers() {
                format!(
                    "fewest Steward servers: {} on {} vs {} on {}",
                    win.servers(),
                    win.host,
                    run.servers(),
                    run.host
                )
            } else if win.load_per_cpu_milli() != run.load_per_cpu_milli() {
                format!(
                    "same number of servers ({}), lower load per CPU: {} on {} vs {} on {}",
                    win.servers(),
                    milli(win.load_per_cpu_milli()),
                    win.host,
                    milli(run.load_per_cpu_milli()),
                    run.host
                )
            } else if win.free() != run.free() {
                format!(
                    "same servers and load, more free memory: {} on {} vs {} on {}",
                    bytes(win.free()),
                    win.host,
                    bytes(run.free()),
                    run.host
                )
            } else {
                format!("tied with {} on every measure; first by name", run.host)
            };
            format!("{} wins (least loaded): {because}{skipped}", win.host)
        }
        Policy::RoundRobin => format!(
            "{} wins (round robin): the next eligible host in name order after the previous choice{skipped}",
            win.host
        ),
        Policy::Sticky => {
            let mut pref: Vec<&Row> = rows.iter().collect();
            pref.sort_by_key(|r| std::cmp::Reverse(sticky_score(owner, &r.host)));
            let first = pref[0];
            if first.host == win.host {
                format!(
                    "{} wins (sticky): it is {owner}'s first choice and eligible",
                    win.host
                )
            } else {
                let pos = pref.iter().position(|r| r.host == win.host).unwrap_or(0) + 1;
                format!(
                    "{} wins (sticky): {owner}'s first choice {} is {}; {} is choice {pos} in {owner}'s order",
                    win.host,
                    first.host,
                    first.verdict.describe(),
                    win.host
                )
            }
        }
    }
}

fn milli(v: u64) -> String {
    format!("{}.{:02}", v / 1000, (v % 1000) / 10)
}

fn bytes(b: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if b >= GIB {
        format!("{:.1} GiB", b as f64 / GIB as f64)
    } else {
        format!("{} MiB", b / MIB)
    }
}

impl Decision {
    /// The host × condition table and the reason, as the hub prints it.
    pub fn render(&self) -> String {
        let header = [
            "host", "address", "load/cpu", "free mem", "servers", "rank", "verdict",
        ];
        let mut table: Vec<[String; 7]> = vec![header.map(str::to_string)];
        for r in &self.rows {
            let (load, free, servers) = match &r.status {
                Some(s) => (
                    milli(load_per_cpu_milli(s)),
                    bytes(s.mem_available_bytes),
                    if r.in_flight > 0 {
                        format!("{} (+{} starting)", s.servers, r.in_flight)
                    } else {
                        s.servers.to_string()
                    },
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            table.push([
                r.host.clone(),
                r.address.clone(),
                load,
                free,
                servers,
                r.rank.map_or("-".into(), |k| k.to_string()),
                r.verdict.describe(),
            ]);
        }
        let mut widths = [0usize; 7];
        for line in &table {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!(
            "placement for owner {}, policy {}\n",
            self.owner,
            self.policy.as_str()
        );
        for line in &table {
            let mut text = String::new();
            for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
                if i + 1 == line.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<w$}  ");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        match &self.winner {
            Some(w) => {
                let _ = writeln!(out, "winner: {w}: {}", self.why);
            }
            None => {
                let _ = writeln!(out, "no host chosen: {}", self.why);
            }
        }
        out
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn host(name: &str, servers: u32, load: u64, free_gib: u64) -> Candidate {
        Candidate {
            name: name.into(),
            address: format!("10.0.0.{}", name.len()),
            drained: false,
            in_flight: 0,
            status: Ok(HostStatus {
                hostname: name.into(),
                cpus: 2,
                load_milli: [load, load, load],
                mem_total_bytes: 32 * GIB,
                mem_available_bytes: free_gib * GIB,
                servers,
            }),
        }
    }

    fn down(name: &str) -> Candidate {
        Candidate {
            status: Err("connection refused".into()),
            ..host(name, 0, 0, 0)
        }
    }

    fn ll(cands: &[Candidate]) -> Decision {
        decide(
            Policy::LeastLoaded,
            &Thresholds::default(),
            "alice",
            cands,
            0,
        )
    }

    #[test]
    fn least_loaded_prefers_fewest_servers_then_load_then_memory() {
        let d = ll(&[host("h1", 3, 100, 8), host("h2", 1, 1900, 1)]);
        assert_eq!(d.winner.as_deref(), Some("h2"));
        assert!(
            d.why.contains("fewest Steward servers: 1 on h2 vs 3 on h1"),
            "{}",
            d.why
        );
        let d = ll(&[host("h1", 2, 1800, 8), host("h2", 2, 200, 1)]);
        assert_eq!(d.winner.as_deref(), Some("h2"));
        assert!(
            d.why
                .contains("lower load per CPU: 0.10 on h2 vs 0.90 on h1"),
            "{}",
            d.why
        );
        let d = ll(&[host("h1", 2, 200, 8), host("h2", 2, 200, 1)]);
        assert_eq!(d.winner.as_deref(), Some("h1"));
        assert!(d.why.contains("more free memory"), "{}", d.why);
        let d = ll(&[host("h2", 2, 200, 8), host("h1", 2, 200, 8)]);
        assert_eq!(d.winner.as_deref(), Some("h1"));
        assert!(d.why.contains("first by name"), "{}", d.why);
    }

    #[test]
    fn starts_in_flight_count_so_concurrent_starts_spread() {
        let mut a = host("h1", 0, 0, 8);
        let b = host("h2", 0, 0, 8);
        assert_eq!(ll(&[a.clone(), b.clone()]).winner.as_deref(), Some("h1"));
        a.in_flight = 1;
        let d = ll(&[a, b]);
        assert_eq!(d.winner.as_deref(), Some("h2"));
        assert!(d.render().contains("0 (+1 starting)"), "{}", d.render());
    }

    #[test]
    fn down_drained_full_low_memory_and_overloaded_hosts_are_skipped() {
        let mut drained = host("h2", 0, 0, 8);
        drained.drained = true;
        let t = Thresholds {
            min_free_memory: Some(2 * GIB),
            max_servers: Some(5),
            max_load_per_cpu_milli: Some(1500),
        };
        let cands = [
            down("h1"),
            drained,
            host("h3", 5, 0, 8),
            host("h4", 0, 0, 1),
            host("h5", 0, 4000, 8),
            host("h6", 4, 2000, 3),
        ];
        let d = decide(Policy::LeastLoaded, &t, "alice", &cands, 0);
        assert_eq!(d.winner.as_deref(), Some("h6"));
        let v: Vec<&Verdict> = d.rows.iter().map(|r| &r.verdict).collect();
        assert!(matches!(v[0], Verdict::Down(_)));
        assert_eq!(v[1], &Verdict::Drained);
        assert_eq!(v[2], &Verdict::Full { servers: 5, max: 5 });
        assert!(matches!(v[3], Verdict::LowMemory { .. }));
        assert!(matches!(v[4], Verdict::Overloaded { .. }));
        assert_eq!(v[5], &Verdict::Eligible);
        assert!(
            d.why.contains("only eligible host; 5 excluded"),
            "{}",
            d.why
        );
        let text = d.render();
        for needle in [
            "down (connection refused)",
            "drained",
            "full (5 servers, max 5)",
            "free memory 1.0 GiB below the floor 2.0 GiB",
            "load per CPU 2.00 above the cap 1.50",
            "winner: h6",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    #[test]
    fn nothing_eligible_is_no_winner_with_a_reason() {
        let d = ll(&[down("h1"), down("h2")]);
        assert_eq!(d.winner, None);
        assert!(d
            .render()
            .contains("no host chosen: all 2 hosts are excluded"));
        let d = ll(&[]);
        assert_eq!(d.winner, None);
        assert_eq!(d.why, "the pool has no hosts");
    }

    #[test]
    fn round_robin_cycles_over_eligible_hosts() {
        let cands = [
            host("h1", 9, 0, 8),
            host("h2", 0, 0, 8),
            host("h3", 0, 0, 8),
        ];
        let mut cursor = 0;
        let mut seen = vec![];
        for _ in 0..6 {
            let d = decide(
                Policy::RoundRobin,
                &Thresholds::default(),
                "a",
                &cands,
                cursor,
            );
            cursor = d.rr_next;
            seen.push(d.winner.unwrap());
        }
        assert_eq!(seen, ["h1", "h2", "h3", "h1", "h2", "h3"]);
        let cands = [host("h1", 0, 0, 8), down("h2"), host("h3", 0, 0, 8)];
        let d = decide(Policy::RoundRobin, &Thresholds::default(), "a", &cands, 1);
        assert_eq!(d.winner.as_deref(), Some("h3"));
        assert_eq!(d.rr_next, 3);
        let d = decide(Policy::RoundRobin, &Thresholds::default(), "a", &cands, 3);
        assert_eq!(d.winner.as_deref(), Some("h1"));
    }

    #[test]
    fn sticky_keeps_an_owner_on_one_host_and_moves_only_that_hosts_owners() {
        let cands: Vec<Candidate> = (1..=4).map(|i| host(&format!("h{i}"), 0, 0, 8)).collect();
        let owners: Vec<String> = (0..40).map(|i| format!("user{i}")).collect();
        let pick = |cands: &[Candidate], o: &str| {
            decide(Policy::Sticky, &Thresholds::default(), o, cands, 0)
                .winner
                .unwrap()
        };
        let before: Vec<String> = owners.iter().map(|o| pick(&cands, o)).collect();
        // Same answer every time, whatever the load.
        let mut loaded = cands.clone();
        loaded[0] = host("h1", 50, 5000, 8);
        for (o, b) in owners.iter().zip(&before) {
            assert_eq!(&pick(&loaded, o), b);
        }
        // Owners spread over the hosts.
        for h in ["h1", "h2", "h3", "h4"] {
            assert!(before.iter().any(|b| b == h), "nobody on {h}");
        }
        // h2 goes down: only its owners move.
        let mut without = cands.clone();
        without[1] = down("h2");
        for (o, b) in owners.iter().zip(&before) {
            let now = pick(&without, o);
            if b == "h2" {
                assert_ne!(now, "h2");
                let d = decide(Policy::Sticky, &Thresholds::default(), o, &without, 0);
                assert!(
                    d.why.contains("first choice h2 is excluded: down"),
                    "{}",
                    d.why
                );
            } else {
                assert_eq!(&now, b);
            }
        }
    }

    #[test]
    fn sticky_score_is_stable_across_releases() {
        // Pinned: if this changes, every owner would move hosts at an upgrade.
        assert_eq!(sticky_score("alice", "h1"), 4933485253235749003);
        assert_eq!(sticky_score("alice", "h2"), 18435128648836586345);
        assert_ne!(sticky_score("alice", "h1"), sticky_score("alice", "h2"));
        assert_ne!(sticky_score("ab", "c"), sticky_score("a", "bc"));
    }
}
