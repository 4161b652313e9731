//! Synthetic policies for the benchmarks: 10,000 users in 1,000 groups, each user in
//! 10 groups (100,000 memberships), and a site file and a user file of N entries each.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt::Write;
use steward_policy::{Operation, SitePolicy, Subject, UserPolicy};

pub const USERS: usize = 10_000;
pub const GROUPS: usize = 1_000;
pub const GROUPS_PER_USER: usize = 10;

/// xorshift64*: a deterministic generator so every run measures the same policy.
/// Hand-written (six lines) rather than pulling `rand` into the policy crate.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub fn user(i: usize) -> String {
    format!("u{i:05}")
}
pub fn group(j: usize) -> String {
    format!("g{j:04}")
}
pub fn groups_of(i: usize) -> Vec<String> {
    (0..GROUPS_PER_USER)
        .map(|k| group((i * 7 + k * 101) % GROUPS))
        .collect()
}

const LISTS: &[&str] = &[
    "\"READ\"",
    "[\"READ\", \"CONTROL\"]",
    "[\"READ\", \"CONTROL\", \"!clean\"]",
    "[\"READ\", \"pause\", \"resume\"]",
    "\"ALL\"",
    "[\"ALL\", \"!broadcast\"]",
    "[\"READ\", \"!stop\", \"hold\", \"release\"]",
];

pub struct Query {
    /// Indices into `Fixture::subjects`.
    pub owner: usize,
    pub actor: usize,
    pub workflow: String,
    pub op: Operation,
}

pub struct Fixture {
    pub n: usize,
    pub site_src: String,
    pub user_src: String,
    pub site: SitePolicy,
    pub user: UserPolicy,
    /// Every user's subject, groups resolved: what the hub holds in a session, so a
    /// decision does no group lookup.
    pub subjects: Vec<Subject>,
    pub queries: Vec<Query>,
}

fn key(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => "\"*\"".to_string(),
        1..=5 => format!("\"{}\"", user(rng.below(USERS))),
        _ => format!("\"group:{}\"", group(rng.below(GROUPS))),
    }
}

pub fn site_source(n: usize, rng: &mut Rng) -> String {
    let mut s = String::from("[owners.\"*\".\"*\"]\ndefault = \"READ\"\n");
    let mut seen = HashSet::new();
    seen.insert(("\"*\"".to_string(), "\"*\"".to_string()));
    while seen.len() < n {
        let (o, u) = (key(rng), key(rng));
        if !seen.insert((o.clone(), u.clone())) {
            continue;
        }
        let _ = write!(
            s,
            "\n[owners.{o}.{u}]\ndefault = {}\n",
            LISTS[rng.below(LISTS.len())]
        );
        if rng.below(2) == 0 {
            let _ = writeln!(s, "limit = {}", LISTS[rng.below(LISTS.len())]);
        }
    }
    s
}

pub fn user_source(n: usize, rng: &mut Rng) -> String {
    let n_workflows = n / 20;
    let n_grants = n.saturating_sub(2 * n_workflows).max(1);
    let mut s = String::from("[grants]\n");
    let mut seen = HashSet::new();
    while seen.len() < n_grants {
        let k = key(rng);
        if seen.insert(k.clone()) {
            let _ = writeln!(s, "{k} = {}", LISTS[rng.below(LISTS.len())]);
        }
    }
    for w in 0..n_workflows {
        let pat = match w % 3 {
            0 => format!("suite{w}/*"),
            1 => format!("suite{w}/**"),
            _ => format!("suite{w}/run{{1,2,3}}"),
        };
        let (k1, mut k2) = (key(rng), key(rng));
        while k2 == k1 {
            k2 = key(rng);
        }
        let _ = write!(
            s,
            "\n[[workflows]]\nmatch = \"{pat}\"\ngrants = {{ {k1} = {}, {k2} = {} }}\n",
            LISTS[rng.below(LISTS.len())],
            LISTS[rng.below(LISTS.len())]
        );
    }
    s
}

/// `owner`: Some(i) puts every query on user i's workflows (one UI server, as in
/// Cylc and as the casbin export models it); None draws owners at random.
pub fn fixture(n: usize, owner: Option<usize>, n_queries: usize) -> Fixture {
    let mut rng = Rng::new(0x5eed ^ n as u64);
    let site_src = site_source(n, &mut rng);
    let user_src = user_source(n, &mut rng);
    let site = SitePolicy::parse(&site_src, "site.toml").expect("bench site parses");
    let user_policy = UserPolicy::parse(&user_src, "user.toml").expect("bench user parses");
    let subjects = (0..USERS)
        .map(|i| Subject::new(user(i), groups_of(i)))
        .collect();
    let n_suites = n / 20 + 10;
    let queries = (0..n_queries)
        .map(|_| Query {
            owner: owner.unwrap_or_else(|| rng.below(USERS)),
            actor: rng.below(USERS),
            workflow: format!("suite{}/run{}", rng.below(n_suites), rng.below(4)),
            op: Operation::ALL[rng.below(Operation::ALL.len())],
        })
        .collect();
    Fixture {
        n,
        site_src,
        user_src,
        site,
        user: user_policy,
        subjects,
        queries,
    }
}

/// All 100,000 memberships as casbin role links.
pub fn membership_links() -> String {
    let mut s = String::with_capacity(USERS * GROUPS_PER_USER * 20);
    for i in 0..USERS {
        for g in groups_of(i) {
            let _ = writeln!(s, "g, {}, group:{g}", user(i));
        }
    }
    s
}

/// The people a [`disjoint_fixture`] asks about: owner `user(i)` and actor
/// `user(100 + i)` for each pair `i`.
pub const PAIRS: usize = 2;

fn pair_actor(i: usize) -> usize {
    100 + i
}

/// A policy of `n` site and `n` user entries whose decisions merge the same entries
/// at every `n`: a fixed core names the queried people (by name, by a group of
/// theirs, by `*`, and a `[[workflows]]` glob for half of them), and every other entry
/// names users, groups and workflows none of them has (`x…` names, `xg…` groups,
/// `xsuite…` workflows). So a decision's own work is constant and what grows is only
/// what the decision must not look at. The core is 5 site and 6 user entries, so
/// `n` ≥ 6.
pub fn disjoint_fixture(n: usize, n_queries: usize) -> Fixture {
    let mut rng = Rng::new(0xd15_0000 ^ n as u64);
    let first_group = |i: usize| groups_of(pair_actor(i))[0].clone();
    let second_group = |i: usize| groups_of(pair_actor(i))[1].clone();
    let list = |rng: &mut Rng| LISTS[rng.below(LISTS.len())];

    let mut site = String::from("[owners.\"*\".\"*\"]\ndefault = \"READ\"\n");
    for i in 0..PAIRS {
        let (o, a) = (user(i), user(pair_actor(i)));
        let _ = write!(
            site,
            "\n[owners.\"{o}\".\"{a}\"]\ndefault = {}\nlimit = \"ALL\"\n\n[owners.\"{o}\".\"group:{}\"]\ndefault = {}\n",
            list(&mut rng),
            first_group(i),
            list(&mut rng)
        );
    }
    let mut extra = 0;
    while 1 + 2 * PAIRS + extra < n {
        let _ = write!(
            site,
            "\n[owners.\"{}\".\"{}\"]\ndefault = {}\n",
            other_key(&mut rng, "x"),
            other_key(&mut rng, &format!("y{extra}_")),
            list(&mut rng)
        );
        extra += 1;
    }

    // User file: 2 `[grants]` keys per pair, and for even pairs a `[[workflows]]`
    // entry of 2 keys (counted as 2 entries, as in `user_source`).
    let mut user_src = String::from("[grants]\n");
    for i in 0..PAIRS {
        let _ = writeln!(
            user_src,
            "\"{}\" = {}\n\"group:{}\" = {}",
            user(pair_actor(i)),
            list(&mut rng),
            second_group(i),
            list(&mut rng)
        );
    }
    let core_user = 2 * PAIRS + 2 * PAIRS.div_ceil(2);
    let extra_workflows = n.saturating_sub(core_user) / 20;
    let mut extra_grants = n.saturating_sub(core_user + 2 * extra_workflows);
    let mut k = 0;
    while extra_grants > 0 {
        let _ = writeln!(
            user_src,
            "\"{}\" = {}",
            other_key(&mut rng, &format!("z{k}_")),
            list(&mut rng)
        );
        extra_grants -= 1;
        k += 1;
    }
    for i in (0..PAIRS).step_by(2) {
        let _ = write!(
            user_src,
            "\n[[workflows]]\nmatch = \"suite{i}/*\"\ngrants = {{ \"{}\" = {}, \"group:{}\" = {} }}\n",
            user(pair_actor(i)),
            list(&mut rng),
            second_group(i),
            list(&mut rng)
        );
    }
    for w in 0..extra_workflows {
        let _ = write!(
            user_src,
            "\n[[workflows]]\nmatch = \"xsuite{w}/*\"\ngrants = {{ \"{}\" = {}, \"{}\" = {} }}\n",
            other_key(&mut rng, "w1_"),
            list(&mut rng),
            other_key(&mut rng, "w2_"),
            list(&mut rng)
        );
    }

    let site_policy = SitePolicy::parse(&site, "site.toml").expect("bench site parses");
    let user_policy = UserPolicy::parse(&user_src, "user.toml").expect("bench user parses");
    let subjects = (0..USERS)
        .map(|i| Subject::new(user(i), groups_of(i)))
        .collect();
    let queries = (0..n_queries)
        .map(|q| {
            let i = q % PAIRS;
            Query {
                owner: i,
                actor: pair_actor(i),
                // Even pairs hit their `[[workflows]]` entry, odd ones use `[grants]`.
                workflow: format!("suite{i}/run{}", q % 3),
                op: Operation::ALL[(q / PAIRS) % Operation::ALL.len()],
            }
        })
        .collect();
    Fixture {
        n,
        site_src: site,
        user_src,
        site: site_policy,
        user: user_policy,
        subjects,
        queries,
    }
}

/// A key no subject has: a user `x…`, a group `xg…` (nobody is in one), unique by
/// `tag` and a random number.
fn other_key(rng: &mut Rng, tag: &str) -> String {
    let r = rng.next() % 1_000_000_000;
    if rng.below(2) == 0 {
        format!("x{tag}{r}")
    } else {
        format!("group:xg{tag}{r}")
    }
}
