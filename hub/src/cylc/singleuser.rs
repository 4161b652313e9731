//! How Steward starts a JupyterHub single-user server (`cylc hubapp`): the
//! `JUPYTERHUB_*` environment JupyterHub 6.1's `Spawner.get_env` gives it, and the
//! command line that keeps it reachable only through the hub.
//!
//! Pure builders: the hub hands the result to `steward-spawn` with the start request
//! (the helper's environment allow-list must admit `JUPYTERHUB_*` and `JPY_API_TOKEN`
//! for `jupyterhub-singleuser` profiles). Nothing here starts a process or reads a file.

use serde_json::json;
use std::path::Path;

/// What the hub knows about one spawn.
#[derive(Debug, Clone)]
pub struct SpawnEnv<'a> {
    pub owner: &'a str,
    /// The server's own API token (also its OAuth client secret).
    pub api_token: &'a str,
    /// The hub's API as the server reaches it, e.g. `http://127.0.0.1:8081/hub/api`
    /// (no trailing slash).
    pub api_url: &'a str,
    /// The public host the browser uses (`JUPYTERHUB_HOST`); empty when the server is
    /// reached under the same origin as the hub.
    pub public_host: &'a str,
    /// Where the server listens when it has a TCP port (`JUPYTERHUB_SERVICE_URL`);
    /// `None` for a Unix socket, so the server does not bind the URL's port.
    pub service_url: Option<&'a str>,
    /// `JUPYTERHUB_SSL_KEYFILE`, `…_CERTFILE`, `…_CLIENT_CA` when the server must serve
    /// TLS and require the hub's client certificate.
    pub tls: Option<(&'a Path, &'a Path, &'a Path)>,
}

/// The scopes a visitor needs to be let in by the owner's server (JupyterHub's
/// `Spawner.oauth_access_scopes` default for the default server).
pub fn access_scopes(owner: &str) -> Vec<String> {
    vec![
        format!("access:servers!server={owner}/"),
        format!("access:servers!user={owner}"),
    ]
}

/// The environment, names and values as JupyterHub 6.1's `Spawner.get_env` sets them
/// for the default (unnamed) server, in a stable order.
pub fn jupyterhub_env(s: &SpawnEnv) -> Vec<(String, String)> {
    let owner = s.owner;
    let prefix = format!("/user/{owner}/");
    let access = json!(access_scopes(owner)).to_string();
    let mut env: Vec<(&str, String)> = vec![
        ("JUPYTERHUB_API_TOKEN", s.api_token.to_string()),
        // The pre-1.0 name; jupyterhub-singleuser still reads it as a fallback.
        ("JPY_API_TOKEN", s.api_token.to_string()),
        ("JUPYTERHUB_CLIENT_ID", super::oauth::client_id_for(owner)),
        ("JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED", "0".to_string()),
        ("JUPYTERHUB_HOST", s.public_host.to_string()),
        (
            "JUPYTERHUB_OAUTH_CALLBACK_URL",
            super::oauth::callback_for(owner),
        ),
        ("JUPYTERHUB_OAUTH_SCOPES", access.clone()),
        ("JUPYTERHUB_OAUTH_ACCESS_SCOPES", access),
        (
            "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES",
            json!([format!("access:servers!server={owner}/")]).to_string(),
        ),
        ("JUPYTERHUB_USER", owner.to_string()),
        ("JUPYTERHUB_SERVER_NAME", String::new()),
        ("JUPYTERHUB_API_URL", s.api_url.to_string()),
        (
            "JUPYTERHUB_ACTIVITY_URL",
            format!("{}/users/{owner}/activity", s.api_url),
        ),
        ("JUPYTERHUB_BASE_URL", "/".to_string()),
        ("JUPYTERHUB_SERVICE_PREFIX", prefix),
    ];
    if let Some(url) = s.service_url {
        env.push(("JUPYTERHUB_SERVICE_URL", url.to_string()));
    }
    if let Some((key, cert, ca)) = s.tls {
        env.push(("JUPYTERHUB_SSL_KEYFILE", key.display().to_string()));
        env.push(("JUPYTERHUB_SSL_CERTFILE", cert.display().to_string()));
        env.push(("JUPYTERHUB_SSL_CLIENT_CA", ca.display().to_string()));
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// `cylc hubapp`'s arguments (after `cylc hubapp`) for a server the hub reaches on a
/// Unix socket: no TCP listener (a local user who finds a port cannot reach it), no
/// web terminal (it would sit outside every audit), and no XSRF check of its own
/// (the hub injects `Authorization: token …` and enforces its own CSRF and Origin
/// rules; the server's check would fail every relayed POST).
pub fn hubapp_args(sock: &Path) -> Vec<String> {
    vec![
        format!("--ServerApp.sock={}", sock.display()),
        "--ServerApp.sock_mode=0600".to_string(),
        "--ServerApp.terminals_enabled=False".to_string(),
        "--ServerApp.disable_check_xsrf=True".to_string(),
        // The hub serves the browser; the server must not try to open one.
        "--ServerApp.open_browser=False".to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn env_matches_jupyterhub_6s_get_env() {
        let env = jupyterhub_env(&SpawnEnv {
            owner: "alice",
            api_token: "tok",
            api_url: "http://127.0.0.1:8081/hub/api",
            public_host: "",
            service_url: None,
            tls: None,
        });
        assert_eq!(get(&env, "JUPYTERHUB_API_TOKEN"), Some("tok"));
        assert_eq!(
            get(&env, "JUPYTERHUB_CLIENT_ID"),
            Some("jupyterhub-user-alice")
        );
        assert_eq!(get(&env, "JUPYTERHUB_SERVICE_PREFIX"), Some("/user/alice/"));
        assert_eq!(get(&env, "JUPYTERHUB_BASE_URL"), Some("/"));
        assert_eq!(get(&env, "JUPYTERHUB_USER"), Some("alice"));
        assert_eq!(get(&env, "JUPYTERHUB_SERVER_NAME"), Some(""));
        assert_eq!(
            get(&env, "JUPYTERHUB_OAUTH_CALLBACK_URL"),
            Some("/user/alice/oauth_callback")
        );
        assert_eq!(
            get(&env, "JUPYTERHUB_ACTIVITY_URL"),
            Some("http://127.0.0.1:8081/hub/api/users/alice/activity")
        );
        // JSON lists, as json.dumps writes them.
        let scopes: Vec<String> =
            serde_json::from_str(get(&env, "JUPYTERHUB_OAUTH_ACCESS_SCOPES").unwrap()).unwrap();
        assert_eq!(
            scopes,
            ["access:servers!server=alice/", "access:servers!user=alice"]
        );
        assert!(get(&env, "JUPYTERHUB_SERVICE_URL").is_none(), "socket mode");
        assert!(get(&env, "JUPYTERHUB_SSL_KEYFILE").is_none());
        assert!(env
            .iter()
            .all(|(k, _)| k.starts_with("JUPYTERHUB_") || k == "JPY_API_TOKEN"));
    }

    #[test]
    fn tls_and_tcp_add_their_variables() {
        let (k, c, a) = (Path::new("/k"), Path::new("/c"), Path::new("/a"));
        let env = jupyterhub_env(&SpawnEnv {
            owner: "bob",
            api_token: "t",
            api_url: "https://hub:8081/hub/api",
            public_host: "https://steward.example",
            service_url: Some("https://127.0.0.1:40001/user/bob/"),
            tls: Some((k, c, a)),
        });
        assert_eq!(get(&env, "JUPYTERHUB_SSL_CLIENT_CA"), Some("/a"));
        assert_eq!(
            get(&env, "JUPYTERHUB_SERVICE_URL"),
            Some("https://127.0.0.1:40001/user/bob/")
        );
        assert_eq!(
            get(&env, "JUPYTERHUB_HOST"),
            Some("https://steward.example")
        );
    }

    #[test]
    fn hubapp_listens_only_on_its_socket_without_terminals() {
        let a = hubapp_args(Path::new("/run/steward/alice.sock"));
        assert!(a.contains(&"--ServerApp.sock=/run/steward/alice.sock".to_string()));
        assert!(a.contains(&"--ServerApp.sock_mode=0600".to_string()));
        assert!(a.contains(&"--ServerApp.terminals_enabled=False".to_string()));
        assert!(a.contains(&"--ServerApp.disable_check_xsrf=True".to_string()));
    }
}
