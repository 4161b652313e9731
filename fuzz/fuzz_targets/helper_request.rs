//! The privileged helper's request parser and its system-call-free checks
//! (`steward_spawner::request`), on arbitrary bytes, under a realistic config. Never a
//! panic; whatever passes names an allow-listed executable, a pattern-matching user, a
//! safe server name and a relative path; and no forbidden variable (LD_*, PYTHON*,
//! PATH, ...) is ever let through to a server's environment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use steward_protocol::helper::HelperRequest;
use steward_spawner::config::{is_forbidden_env, HelperConfig};
use steward_spawner::request;

const CONFIG: &str = r#"
min_uid = 1000
env_allow = ["LANG", "LC_*", "STEWARD_*", "TZ"]
[executables]
uiserver = "/usr/local/bin/steward-uiserver"
[profiles.default]
[profiles.big]
cpu = 4.0
"#;

fn config() -> &'static (HelperConfig, regex::Regex) {
    static C: OnceLock<(HelperConfig, regex::Regex)> = OnceLock::new();
    C.get_or_init(|| {
        let cfg = HelperConfig::parse(CONFIG, Path::new("spawn.toml"))
            .unwrap_or_else(|e| panic!("fuzz config: {e}"));
        let re = regex::Regex::new(&cfg.user_pattern).unwrap_or_else(|e| panic!("{e}"));
        (cfg, re)
    })
}

fuzz_target!(|data: &[u8]| {
    let (cfg, re) = config();
    let Ok(req) = request::decode(data) else {
        return;
    };
    if request::precheck(cfg, re, &req).is_err() {
        return;
    }
    match &req {
        HelperRequest::Start(s) => {
            assert!(cfg.executables.contains_key(&s.executable));
            assert!(re.is_match(&s.user) && request::server_name_ok(&s.server));
            assert!(!s.server.contains('/') && s.server != "." && s.server != "..");
            for name in s.env.keys() {
                if cfg.env_allowed(name) {
                    assert!(!is_forbidden_env(name), "{name} would reach the server");
                }
            }
        }
        HelperRequest::ReadUserFile { path, .. } => {
            assert!(!path.starts_with('/') && !path.split('/').any(|c| c == ".."));
        }
        _ => {}
    }
});
