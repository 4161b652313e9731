//! LDAP authentication against a real, private slapd (see `steward_e2e::slapd`).
//!
//! No root needed. When slapd is not installed the tests skip with a printed reason,
//! except under `CI=true`, where that is a failure.

use std::net::TcpListener;
use std::time::{Duration, Instant};
use steward_e2e::slapd::{self, password_of, Slapd, SlapdOptions, USER_DN_TEMPLATE};
use steward_hub::auth::{AuthError, GENERIC_FAILURE};
use steward_hub::ldap::{authenticate, LdapConfig};

const UNAVAILABLE: &str = "authentication service unavailable";

/// Template-bind configuration for `url`, groups with nesting.
fn template(s: &Slapd, url: &str) -> LdapConfig {
    let mut c = LdapConfig::new(url);
    c.starttls = url.starts_with("ldap://");
    c.ca_file = Some(s.ca_file.clone());
    c.user_dn_template = Some(USER_DN_TEMPLATE.into());
    c.group_base = Some(slapd::GROUPS.into());
    c.nested_groups = true;
    c
}

/// Search configuration (anonymous search unless a service bind is added).
fn search(s: &Slapd, url: &str) -> LdapConfig {
    let mut c = template(s, url);
    c.user_dn_template = None;
    c.search_base = Some(slapd::PEOPLE.into());
    c.search_filter = Some("(&(objectClass=posixAccount)(uid={user}))".into());
    c
}

async fn login(c: &LdapConfig, user: &str, password: &str) -> Result<Vec<String>, AuthError> {
    authenticate(c, user, password).await
}

fn v(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[track_caller]
fn assert_rejected(r: Result<Vec<String>, AuthError>, what: &str) {
    match r {
        Err(e @ AuthError::Rejected { .. }) => assert_eq!(e.to_string(), GENERIC_FAILURE),
        other => panic!("{what}: expected Rejected, got {other:?}"),
    }
}

#[track_caller]
fn assert_unavailable(r: Result<Vec<String>, AuthError>, what: &str) {
    match r {
        Err(e @ AuthError::Unavailable { .. }) => assert_eq!(e.to_string(), UNAVAILABLE),
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

/// A loopback listener that never accepts: counts who tried to connect.
struct Trap(TcpListener);

impl Trap {
    fn new() -> Trap {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Trap(l)
    }
    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }
    fn connections(&self) -> usize {
        std::iter::from_fn(|| self.0.accept().ok()).count()
    }
}

#[tokio::test]
async fn ldaps_login_returns_direct_and_nested_groups() {
    if !slapd::available("ldaps_login_returns_direct_and_nested_groups") {
        return;
    }
    let s = Slapd::start(SlapdOptions::default());
    let mut c = template(&s, &s.ldaps_url);
    // posixGroup devs (memberUid), groupOfNames admins (member), ops contains admins.
    assert_eq!(
        login(&c, "alice", password_of("alice")).await.unwrap(),
        v(&["admins", "devs", "ops"])
    );
    // ring-a contains bob and ring-b, ring-b contains ring-a: the cycle ends.
    assert_eq!(
        login(&c, "bob", password_of("bob")).await.unwrap(),
        v(&["devs", "ring-a", "ring-b"])
    );
    // groupOfUniqueNames uniqueMember.
    assert_eq!(
        login(&c, "dave", password_of("dave")).await.unwrap(),
        v(&["auditors"])
    );
    c.nested_groups = false;
    assert_eq!(
        login(&c, "alice", password_of("alice")).await.unwrap(),
        v(&["admins", "devs"])
    );
    // Only posix groups.
    c.group_filter = Some("(memberUid={user})".into());
    assert_eq!(
        login(&c, "alice", password_of("alice")).await.unwrap(),
        v(&["devs"])
    );
    // No group base: authentication only.
    c.group_base = None;
    c.group_filter = None;
    assert_eq!(
        login(&c, "alice", password_of("alice")).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn starttls_and_ldapi_logins_work() {
    if !slapd::available("starttls_and_ldapi_logins_work") {
        return;
    }
    let s = Slapd::start(SlapdOptions::default());
    for url in [&s.ldap_url, &s.ldapi_url] {
        for c in [template(&s, url), search(&s, url)] {
            assert_eq!(
                login(&c, "alice", password_of("alice")).await.unwrap(),
                v(&["admins", "devs", "ops"]),
                "{url}"
            );
            assert_rejected(login(&c, "alice", "bob-pw").await, url);
        }
    }
}

#[tokio::test]
async fn search_mode_with_a_service_account() {
    if !slapd::available("search_mode_with_a_service_account") {
        return;
    }
    let s = Slapd::start(SlapdOptions::default());
    let mut c = search(&s, &s.ldaps_url);
    c.bind_dn = Some(slapd::ADMIN_DN.into());
    c.bind_password_file = Some(s.write_file("bind.pw", &format!("{}\n", slapd::ADMIN_PW)));
    assert_eq!(
        login(&c, "bob", password_of("bob")).await.unwrap(),
        v(&["devs", "ring-a", "ring-b"])
    );
    assert_rejected(login(&c, "bob", "alice-pw").await, "wrong password");
    assert_rejected(login(&c, "nobody", "x").await, "unknown user");
    // A broken service account is the operator's problem, not the user's.
    c.bind_password_file = Some(s.write_file("wrong.pw", "not-the-password\n"));
    assert_unavailable(
        login(&c, "bob", password_of("bob")).await,
        "wrong service password",
    );
    // An empty service password would be an anonymous bind: refused, not sent.
    c.bind_password_file = Some(s.write_file("empty.pw", "\n"));
    assert_unavailable(
        login(&c, "bob", password_of("bob")).await,
        "empty service password",
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    if !slapd::available("wrong_password_and_unknown_user_look_the_same") {
        return;
    }
    let s = Slapd::start(SlapdOptions::default());
    for c in [template(&s, &s.ldaps_url), search(&s, &s.ldaps_url)] {
        let wrong = login(&c, "alice", "not-alice-pw").await.unwrap_err();
        let unknown = login(&c, "mallory", "alice-pw").await.unwrap_err();
        assert!(matches!(wrong, AuthError::Rejected { .. }), "{wrong:?}");
        assert!(matches!(unknown, AuthError::Rejected { .. }), "{unknown:?}");
        assert_eq!(wrong.to_string(), GENERIC_FAILURE);
        assert_eq!(unknown.to_string(), wrong.to_string());
        // The precise reason is kept for the log.
        assert!(wrong.detail().contains("rc=49"), "{}", wrong.detail());
        // Another user's password is just a wrong password.
        assert_rejected(
            login(&c, "bob", "alice-pw").await,
            "bob with alice's password",
        );
    }
}

#[tokio::test]
async fn empty_password_never_reaches_the_server() {
    if !slapd::available("empty_password_never_reaches_the_server") {
        return;
    }
    let alice = slapd::user_dn("alice");
    // A default slapd refuses a DN with an empty password (53, unwilling to perform) ...
    let strict = Slapd::start(SlapdOptions::default());
    let e = strict
        .whoami(&strict.ldaps_url, Some(&alice), "")
        .unwrap_err();
    assert!(e.contains("(53)"), "{e}");
    drop(strict);
    // ... but one configured like Active Directory lets it in, as anonymous.
    let s = Slapd::start(SlapdOptions {
        allow_bind_anon_dn: true,
    });
    assert_eq!(
        s.whoami(&s.ldaps_url, Some(&alice), "").unwrap(),
        "anonymous"
    );
    for url in [&s.ldaps_url, &s.ldap_url, &s.ldapi_url] {
        for c in [template(&s, url), search(&s, url)] {
            assert_rejected(login(&c, "alice", "").await, url);
        }
    }
    // Nothing was sent: a listener standing in for the directory sees no connection.
    let trap = Trap::new();
    let mut c = template(&s, &format!("ldaps://127.0.0.1:{}/", trap.port()));
    let e = login(&c, "alice", "").await.unwrap_err();
    assert!(e.detail().contains("empty password"), "{}", e.detail());
    c.search_base = None;
    assert_rejected(login(&c, "alice", "").await, "even with a broken config");
    assert_eq!(trap.connections(), 0);
}

#[tokio::test]
async fn metacharacters_in_user_names_are_escaped() {
    if !slapd::available("metacharacters_in_user_names_are_escaped") {
        return;
    }
    let s = Slapd::start(SlapdOptions::default());
    let pw = password_of("alice");
    for c in [template(&s, &s.ldaps_url), search(&s, &s.ldaps_url)] {
        for user in [
            "*",
            "al*",
            "a*e",
            "alice)(uid=*",
            "*)(|(uid=*",
            "alice)(objectClass=*",
            "alice,ou=people",
            "alice,ou=people,dc=example,dc=org",
            "uid=alice",
            "alice+cn=alice",
            "alice\\",
            "alice\0",
            "al\0ice",
            " alice",
            "alice ",
            "#alice",
        ] {
            assert_rejected(login(&c, user, pw).await, &format!("{user:?}"));
        }
        // A real uid made of metacharacters is found and bound, literally.
        assert_eq!(
            login(&c, "a,b=c*", password_of("a,b=c*")).await.unwrap(),
            v(&["odd"])
        );
        assert_rejected(login(&c, "a,b=c", password_of("a,b=c*")).await, "prefix");
    }
    // The shell tools agree: `*` in a filter is a wildcard, which is what we escape.
    let out = std::process::Command::new("ldapsearch")
        .env("LDAPCONF", "/dev/null")
        .args([
            "-x",
            "-LLL",
            "-H",
            &s.ldapi_url,
            "-b",
            slapd::PEOPLE,
            "(uid=al*)",
            "dn",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("uid=alice"));
}

#[tokio::test]
async fn names_must_match_the_directory_exactly() {
    if !slapd::available("names_must_match_the_directory_exactly") {
        return;
    }
    let s = Slapd::start(SlapdOptions::default());
    // The directory itself matches uids without regard to case or surrounding spaces ...
    let loose = slapd::user_dn("ALICE");
    assert!(s
        .whoami(&s.ldaps_url, Some(&loose), password_of("alice"))
        .unwrap()
        .starts_with("dn:"));
    // ... but "ALICE" must not become a second hub identity for alice.
    for c in [template(&s, &s.ldaps_url), search(&s, &s.ldaps_url)] {
        for user in ["ALICE", "Alice", "alice "] {
            let e = login(&c, user, password_of("alice")).await.unwrap_err();
            assert!(matches!(e, AuthError::Rejected { .. }), "{user:?}: {e:?}");
            // Caught by the exact-name check, or (trailing space) by whoami's DN check.
            let d = e.detail();
            assert!(
                d.contains("loosely") || d.contains("bound as"),
                "{user:?}: {d}"
            );
        }
    }
}

#[tokio::test]
async fn directory_down_is_unavailable() {
    if !slapd::available("directory_down_is_unavailable") {
        return;
    }
    let mut s = Slapd::start(SlapdOptions::default());
    let urls = [s.ldaps_url.clone(), s.ldap_url.clone(), s.ldapi_url.clone()];
    for url in &urls {
        login(&template(&s, url), "alice", password_of("alice"))
            .await
            .unwrap();
    }
    s.kill();
    for url in &urls {
        let t = Instant::now();
        let r = login(&template(&s, url), "alice", password_of("alice")).await;
        assert_unavailable(r, url);
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{url}: {:?}",
            t.elapsed()
        );
    }
}

#[tokio::test]
async fn tls_with_the_wrong_ca_is_unavailable() {
    if !slapd::available("tls_with_the_wrong_ca_is_unavailable") {
        return;
    }
    let s = Slapd::start(SlapdOptions::default());
    for url in [&s.ldaps_url, &s.ldap_url] {
        let mut c = template(&s, url);
        c.ca_file = Some(s.other_ca_file.clone());
        let r = login(&c, "alice", password_of("alice")).await;
        let detail = format!("{r:?}");
        assert_unavailable(r, url);
        assert!(detail.contains("certificate"), "{detail}");
        // A CA file that is not there is a configuration problem too.
        c.ca_file = Some(s.dir().join("missing.pem"));
        assert_unavailable(login(&c, "alice", password_of("alice")).await, url);
    }
    // The server's certificate names 127.0.0.1 and localhost: both verify.
    let c = template(&s, &format!("ldaps://localhost:{}/", s.ldaps_port));
    login(&c, "alice", password_of("alice")).await.unwrap();
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // No slapd needed: a listener that never answers.
    let trap = Trap::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])
            .unwrap()
            .cert
            .pem(),
    )
    .unwrap();
    let mut c = LdapConfig::new(format!("ldaps://127.0.0.1:{}/", trap.port()));
    c.ca_file = Some(ca);
    c.user_dn_template = Some(USER_DN_TEMPLATE.into());
    c.timeout_secs = 1;
    let t = Instant::now();
    let r = login(&c, "alice", "alice-pw").await;
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_unavailable(r, "silent server");
    assert_eq!(trap.connections(), 1);
}

#[tokio::test]
async fn plain_ldap_without_starttls_is_refused() {
    let trap = Trap::new();
    let mut c = LdapConfig::new(format!("ldap://127.0.0.1:{}/", trap.port()));
    c.user_dn_template = Some(USER_DN_TEMPLATE.into());
    let r = login(&c, "alice", "alice-pw").await;
    let detail = format!("{r:?}");
    assert_unavailable(r, "ldap:// without StartTLS");
    assert!(detail.contains("starttls"), "{detail}");
    assert_eq!(
        trap.connections(),
        0,
        "the password must not go out in clear"
    );
}
