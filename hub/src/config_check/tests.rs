//! The shipped examples load with the real loaders and name every key the structs
//! accept; `config check` reports each kind of bad input at its line and column.

use super::*;
use std::collections::BTreeSet;

const SPAWN_EXAMPLE: &str = include_str!("../../../etc/spawn.toml");

/// The fields a struct at `path` of the document accepts, as its derived deserializer
/// lists them when it meets an unknown one; `None` when the table takes any key (a map)
/// or did not refuse the probe.
fn accepted_at(
    full: &toml::Table,
    path: &[&str],
    load: &dyn Fn(toml::Value) -> Result<(), String>,
) -> Option<BTreeSet<String>> {
    const PROBE: &str = "zz_probe_zz";
    let mut doc = full.clone();
    let mut t = &mut doc;
    for p in path {
        t = t.get_mut(*p)?.as_table_mut()?;
    }
    t.insert(PROBE.into(), toml::Value::Table(Default::default()));
    let msg = load(toml::Value::Table(doc)).err()?;
    if !msg.contains(&format!("unknown field `{PROBE}`")) {
        return None;
    }
    // serde's list: "`a`", "`a` or `b`", "one of `a`, `b`, `c`"; maybe followed by
    // where it was.
    let mut rest = msg.split_once("expected")?.1;
    rest = rest.strip_prefix(" one of").unwrap_or(rest);
    let mut fields = BTreeSet::new();
    while let Some(r) = rest.strip_prefix(' ').and_then(|r| r.strip_prefix('`')) {
        let (name, after) = r.split_once('`')?;
        fields.insert(name.to_string());
        rest = after
            .strip_prefix(',')
            .or_else(|| after.strip_prefix(" or"))
            .unwrap_or(after);
    }
    Some(fields)
}

/// Compares, table by table, the keys written in `full` with the keys the loader
/// accepts there; returns the differences. `skip` lists tables checked elsewhere.
fn undocumented(
    full: &toml::Table,
    load: &dyn Fn(toml::Value) -> Result<(), String>,
    skip: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let dotted = path.join(".");
        if skip.contains(&dotted.as_str()) {
            continue;
        }
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        let mut table = full;
        for p in &refs {
            table = table[*p].as_table().unwrap();
        }
        let Some(accepted) = accepted_at(full, &refs, load) else {
            problems.push(format!("[{dotted}] takes any key; add it to the skip list"));
            continue;
        };
        let written: BTreeSet<String> = table.keys().cloned().collect();
        for k in accepted.difference(&written) {
            problems.push(format!("[{dotted}] {k} is accepted but not in the example"));
        }
        for k in written.difference(&accepted) {
            problems.push(format!("[{dotted}] {k} is in the example but not accepted"));
        }
        for (k, v) in table {
            if v.is_table() {
                let mut sub = path.clone();
                sub.push(k.clone());
                todo.push(sub);
            }
        }
    }
    problems
}

fn load_hub(v: toml::Value) -> Result<(), String> {
    v.try_into::<HubConfig>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn example_loads_with_the_real_loader_and_checks_clean() {
    let path = Path::new("etc/steward.toml");
    HubConfig::parse(EXAMPLE, path).unwrap();
    let full = example_uncommented();
    let cfg = HubConfig::parse(&full, path).unwrap();
    assert!(cfg.auth.ldap.is_some() && cfg.testing.clock_offset_file.is_some());
    assert_eq!(cfg.elevation.group_secs.get("ops"), Some(&1800));
    assert!(check_source(EXAMPLE, path).is_empty());
    assert!(check_source(&full, path).is_empty());
}

#[test]
fn example_names_every_key_the_config_accepts() {
    let full: toml::Table = toml::from_str(&example_uncommented()).unwrap();
    let problems = undocumented(&full, &load_hub, FREE_FORM);
    assert!(problems.is_empty(), "etc/steward.toml: {problems:#?}");
    // The probe itself works: a key missing from the example is found.
    let mut short = full.clone();
    short["limits"]
        .as_table_mut()
        .unwrap()
        .remove("ops_per_sec");
    let problems = undocumented(&short, &load_hub, FREE_FORM);
    assert_eq!(
        problems,
        ["[limits] ops_per_sec is accepted but not in the example"]
    );
}

#[test]
fn spawn_example_loads_and_names_every_key() {
    use steward_spawner::config::HelperConfig;
    let path = Path::new("etc/spawn.toml");
    HelperConfig::parse(SPAWN_EXAMPLE, path).unwrap();
    let full_text = uncomment(SPAWN_EXAMPLE);
    let cfg = HelperConfig::parse(&full_text, path).unwrap();
    assert_eq!(cfg.user_limits.io.len(), 1);
    let full: toml::Table = toml::from_str(&full_text).unwrap();
    let load = |v: toml::Value| {
        v.try_into::<HelperConfig>()
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // Profiles and Slurm clusters are named by the site; each profile is the user limits
    // plus its own keys, and each cluster's keys are checked below.
    let problems = undocumented(
        &full,
        &load,
        &["executables", "profiles", "user_limits.io", "slurm"],
    );
    assert!(problems.is_empty(), "etc/spawn.toml: {problems:#?}");
    let limits = accepted_at(&full, &["user_limits"], &load).unwrap();
    let io = full["user_limits"]["io"][0].as_table().unwrap();
    let io_keys: BTreeSet<String> = io.keys().cloned().collect();
    assert_eq!(
        io_keys,
        ["device", "read_bps", "write_bps"].map(String::from).into()
    );
    let profile: BTreeSet<String> = full["profiles"]["default"]
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let own: BTreeSet<String> = ["gpus", "hosts", "allowed", "description"]
        .map(String::from)
        .into();
    let missing: Vec<_> = limits
        .union(&own)
        .filter(|k| *k != "io" && !profile.contains(*k))
        .collect();
    assert!(missing.is_empty(), "[profiles.default] lacks {missing:?}");
    // A Slurm cluster table names every key the helper accepts there.
    let cluster: BTreeSet<String> = full["slurm"]["main"]
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        cluster,
        ["conf", "bin_dir", "bootstrap_dir", "timeout_secs"]
            .map(String::from)
            .into()
    );
    assert!(
        toml::from_str::<HelperConfig>(&format!("{full_text}\n[slurm.x]\nnope = 1\n")).is_err(),
        "a cluster table refuses unknown keys"
    );
}

fn check(src: &str) -> Vec<String> {
    check_source(src, Path::new("s.toml"))
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The example with `old` (which must occur once) replaced.
fn example_with(old: &str, new: &str) -> String {
    assert_eq!(EXAMPLE.matches(old).count(), 1, "{old}");
    EXAMPLE.replace(old, new)
}

fn line_of(src: &str, needle: &str) -> usize {
    src.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn unknown_keys_are_all_reported_with_position_and_suggestion() {
    let src = example_with("ops_per_sec = 20", "ops_per_sec = 20\nops_per_second = 5")
        .replace("[sessions]", "[sessions]\n  idle = 5");
    let diags = check(&src);
    let l1 = line_of(&src, "ops_per_second");
    let l2 = line_of(&src, "  idle = 5");
    assert_eq!(
        diags,
        [
            format!("s.toml:{l2}:3: error: unknown key `idle` in [sessions]"),
            format!("s.toml:{l1}:1: error: unknown key `ops_per_second` in [limits]; did you mean `limits.ops_per_sec`?"),
        ]
    );
    let diags = check(&example_with("[audit]", "[audti]"));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].contains("unknown key `audti` at the top level; did you mean `audit`?"),
        "{diags:?}"
    );
}

#[test]
fn wrong_types_are_all_reported_at_the_value() {
    let src = example_with("listen = \"0.0.0.0:443\"", "listen = 443").replace(
        "owners_must_elevate = true",
        "owners_must_elevate = \"yes\"",
    );
    let l1 = line_of(&src, "listen = 443");
    let l2 = line_of(&src, "owners_must_elevate =");
    assert_eq!(
        check(&src),
        [
            format!("s.toml:{l1}:10: error: `listen` must be a string, not an integer"),
            format!("s.toml:{l2}:23: error: `elevation.owners_must_elevate` must be true or false, not a string"),
        ]
    );
    let src = example_with("[tls]\n", "tls = 1\n[tlsx]\n");
    assert!(check(&src)[0].contains("`tls` must be a table, not an integer"));
}

#[test]
fn values_out_of_range_are_reported_at_the_key_or_value() {
    let src = example_with("default_secs = 900", "default_secs = 99999");
    let l = line_of(&src, "default_secs = 99999");
    assert_eq!(
        check(&src),
        [format!(
            "s.toml:{l}:1: error: elevation.default_secs: 99999 must be between 1 and elevation.max_secs (3600)"
        )]
    );
    let src = example_with("ws_per_user = 32", "ws_per_user = -3");
    let l = line_of(&src, "ws_per_user = -3");
    let d = check(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].starts_with(&format!("s.toml:{l}:15: error: ")),
        "{d:?}"
    );
    assert!(d[0].contains("-3"), "{d:?}");
    let src = example_with("listen = \"0.0.0.0:443\"", "listen = \"0.0.0.0:99999\"");
    let d = check(&src);
    assert!(
        d[0].starts_with(&format!("s.toml:{}:10: error: ", line_of(&src, "99999"))),
        "{d:?}"
    );
    let src = example_with("mode = \"direct\"", "mode = \"setuid\"");
    let d = check(&src);
    assert!(d[0].contains("setuid") && d[0].contains("direct"), "{d:?}");
    let src = example_with("concurrency = 8", "concurrency = 0");
    let l = line_of(&src, "concurrency = 0");
    assert_eq!(
        check(&src),
        [format!(
            "s.toml:{l}:1: error: spawner.concurrency: must be at least 1"
        )]
    );
    // A missing section is reported at the nearest key that is there.
    let src = example_with("backend = \"pam\"", "backend = \"ldap\"");
    let d = check(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].contains(&format!(
            ":{}:2: error: auth.ldap:",
            line_of(&src, "[auth]")
        )),
        "{d:?}"
    );
}

#[test]
fn syntax_errors_and_unreadable_files() {
    let src = example_with("body_bytes = 65536", "body_bytes = = 65536");
    let d = check(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].starts_with(&format!("s.toml:{}:", line_of(&src, "body_bytes"))),
        "{d:?}"
    );
    let missing = "public_url = \"https://x/\"\n";
    let d = check(missing);
    assert!(d[0].contains("missing field"), "{d:?}");
}

#[test]
fn exit_codes_follow_policy_check() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&good, EXAMPLE).unwrap();
    std::fs::write(&bad, "nonsense = 1\n").unwrap();
    let args = |files: Vec<PathBuf>| ConfigCommand::Check(CheckArgs { files, json: true });
    assert_eq!(run(args(vec![good.clone()])), 0);
    assert_eq!(run(args(vec![good.clone(), bad])), 1);
    assert_eq!(run(args(vec![dir.path().join("absent.toml")])), 1);
}
