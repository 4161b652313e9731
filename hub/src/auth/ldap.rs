//! Who is this person? A simple bind against an LDAP directory, over TLS or `ldapi://`.
//!
//! One connection per login: find the user's DN (from a template, or by a search with an
//! optional service bind), bind as that DN with the password, ask the server who we are
//! now (RFC 4532 "Who am I?") and check it is that DN, then read the user's groups
//! (posixGroup `memberUid`, groupOfNames `member`, groupOfUniqueNames `uniqueMember`)
//! and, when asked, the groups containing those groups (bounded depth, cycle-safe).
//!
//! Defences that do not depend on the hub's own precheck:
//! * an empty password is refused before any connection: an LDAP simple bind with a DN
//!   and no password is an *unauthenticated* bind (RFC 4513 §5.1.2), which servers
//!   configured like Active Directory (`allow bind_anon_dn` in slapd) answer with success;
//! * NUL and control characters in the user name, NUL in the password, are refused;
//! * the user name is escaped for DNs (RFC 4514) and for filters (RFC 4515), so `*`,
//!   `)(`, `,`, `=` are matched literally and never widen a search;
//! * passwords never travel in clear: `ldaps://`, `ldap://` with StartTLS (required) or
//!   the local `ldapi://` socket; TLS verifies the server against `ca_file` (or the
//!   system's roots) and its name (or IP address) in the URL.
//!
//! Failures map onto [`AuthError`]: anything the person typed wrong (unknown user, wrong
//! password, ambiguous or refused identity) is `Rejected` (one text for all); a directory
//! that cannot be reached, times out, fails TLS or is misconfigured is `Unavailable`.

use crate::auth::AuthError;
use ldap3::exop::WhoAmI;
use ldap3::{dn_escape, ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Group filter used when `group_filter` is not set. `{user}` is the login name,
/// `{dn}` the user's DN, both filter-escaped.
pub const DEFAULT_GROUP_FILTER: &str = "(|(memberUid={user})(member={dn})(uniqueMember={dn}))";
/// How many levels of "group in group" are followed when `nested_groups` is on.
pub const MAX_NESTING_DEPTH: usize = 8;
/// At most this many groups are collected (a runaway directory must not stall a login).
pub const MAX_GROUPS: usize = 1024;
/// Longest user name / password sent to the directory.
pub const MAX_USER_LEN: usize = 256;
pub const MAX_PASSWORD_LEN: usize = 4096;
/// Group DNs per nested-membership query.
const NESTED_BATCH: usize = 64;

fn default_timeout_secs() -> u64 {
    5
}

/// `[auth.ldap]` in the hub's configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://host:636`, `ldap://host:389` (needs `starttls = true`), or
    /// `ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi` (local socket, no TLS).
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    /// PEM trust anchor(s) for `ldaps://` and StartTLS; the system's roots when unset.
    pub ca_file: Option<PathBuf>,
    /// `uid={user},ou=people,dc=example,dc=org`: bind directly (either this...)
    pub user_dn_template: Option<String>,
    /// ... or search `search_base` (subtree) with `search_filter`, e.g. `(uid={user})`,
    pub search_base: Option<String>,
    pub search_filter: Option<String>,
    /// optionally after binding as this service account (password read from the file).
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    /// Where groups live (subtree); no group lookup when unset.
    pub group_base: Option<String>,
    /// Defaults to [`DEFAULT_GROUP_FILTER`].
    pub group_filter: Option<String>,
    /// Also return groups that contain the user's groups (groupOfNames /
    /// groupOfUniqueNames membership of groups), up to [`MAX_NESTING_DEPTH`] levels.
    #[serde(default)]
    pub nested_groups: bool,
    /// Bound on the whole login: connect, TLS, binds, searches.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Ldaps,
    StartTls,
    Ldapi,
}

impl LdapConfig {
    /// A configuration for `url` with everything else unset (tests, examples).
    pub fn new(url: impl Into<String>) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            starttls: false,
            ca_file: None,
            user_dn_template: None,
            search_base: None,
            search_filter: None,
            bind_dn: None,
            bind_password_file: None,
            group_base: None,
            group_filter: None,
            nested_groups: false,
            timeout_secs: default_timeout_secs(),
        }
    }

    /// Checks the configuration's shape; call it when loading the hub's configuration so
    /// that a mistake stops the hub at start rather than at the first login.
    /// [`authenticate`] checks again and answers `Unavailable` on an invalid one.
    pub fn validate(&self) -> Result<(), String> {
        self.transport()?;
        match (
            &self.user_dn_template,
            &self.search_base,
            &self.search_filter,
        ) {
            (Some(t), None, None) => {
                if !t.contains("{user}") {
                    return Err("user_dn_template must contain {user}".into());
                }
                if self.bind_dn.is_some() || self.bind_password_file.is_some() {
                    return Err(
                        "bind_dn/bind_password_file only apply with search_base + search_filter"
                            .into(),
                    );
                }
            }
            (None, Some(_), Some(f)) => {
                if !f.contains("{user}") {
                    return Err("search_filter must contain {user}".into());
                }
                check_filter_shape("search_filter", f)?;
            }
            _ => {
                return Err(
                    "set either user_dn_template, or search_base and search_filter (not both)"
                        .into(),
                )
            }
        }
        if self.bind_dn.is_some() != self.bind_password_file.is_some() {
            return Err("bind_dn and bind_password_file go together".into());
        }
        if let Some(f) = &self.group_filter {
            if self.group_base.is_none() {
                return Err("group_filter needs group_base".into());
            }
            check_filter_shape("group_filter", f)?;
        }
        if self.nested_groups && self.group_base.is_none() {
            return Err("nested_groups needs group_base".into());
        }
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            return Err("timeout_secs must be between 1 and 300".into());
        }
        Ok(())
    }

    fn transport(&self) -> Result<Transport, String> {
        let scheme = self
            .url
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase())
            .ok_or_else(|| format!("url {:?} has no scheme", self.url))?;
        match (scheme.as_str(), self.starttls) {
            ("ldaps", false) => Ok(Transport::Ldaps),
            ("ldap", true) => Ok(Transport::StartTls),
            ("ldapi", false) => Ok(Transport::Ldapi),
            ("ldap", false) => Err(
                "ldap:// sends passwords in clear: set starttls = true, or use ldaps:// or ldapi://"
                    .into(),
            ),
            ("ldaps" | "ldapi", true) => Err("starttls applies to ldap:// URLs only".into()),
            (s, _) => Err(format!("unsupported URL scheme {s:?} (ldaps, ldap, ldapi)")),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.clamp(1, 300))
    }
}

/// A filter template must at least be one parenthesised filter.
fn check_filter_shape(what: &str, f: &str) -> Result<(), String> {
    let probe = fill(f, &[("user", "x"), ("dn", "cn=x")]);
    ldap3::parse_filter(&probe)
        .map(|_| ())
        .map_err(|_| format!("{what} {f:?} is not a valid LDAP filter"))
}

fn rejected(detail: impl Into<String>) -> AuthError {
    AuthError::Rejected {
        detail: format!("ldap: {}", detail.into()),
    }
}

fn unavailable(detail: impl Into<String>) -> AuthError {
    AuthError::Unavailable {
        detail: format!("ldap: {}", detail.into()),
    }
}

/// Refuses, before any I/O, what must never reach the directory.
pub fn check_credentials(user: &str, password: &str) -> Result<(), AuthError> {
    if user.is_empty() {
        return Err(rejected("empty user name"));
    }
    if password.is_empty() {
        // A simple bind with a DN and no password is an anonymous bind that may "succeed".
        return Err(rejected(
            "empty password (would be an unauthenticated bind)",
        ));
    }
    if user.len() > MAX_USER_LEN {
        return Err(rejected("user name too long"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(rejected("password too long"));
    }
    if user.chars().any(char::is_control) {
        return Err(rejected("user name contains NUL or control characters"));
    }
    if password.contains('\0') {
        return Err(rejected("password contains NUL"));
    }
    Ok(())
}

/// Replaces `{name}` placeholders in one pass (a value containing `{dn}` stays literal).
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    'outer: while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        for (name, value) in vars {
            if let Some(tail) = after.strip_prefix(name).and_then(|t| t.strip_prefix('}')) {
                out.push_str(value);
                rest = tail;
                continue 'outer;
            }
        }
        out.push('{');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The DN `user_dn_template` names for `user` (value escaped per RFC 4514).
pub fn user_dn(template: &str, user: &str) -> String {
    fill(template, &[("user", &dn_escape(user))])
}

/// `filter` with `{user}` and `{dn}` replaced by RFC 4515-escaped values.
pub fn expand_filter(filter: &str, user: &str, dn: &str) -> String {
    fill(
        filter,
        &[("user", &ldap_escape(user)), ("dn", &ldap_escape(dn))],
    )
}

/// `val` without its trailing spaces, except those at or before `protected` (escaped).
fn unpadded(val: &[u8], protected: usize) -> &[u8] {
    let trailing = val[protected..]
        .iter()
        .rev()
        .take_while(|&&x| x == b' ')
        .count();
    &val[..val.len() - trailing]
}

/// Parses a DN (RFC 4514 string form) into RDNs of (type, value) pairs, escapes
/// (`\,`, `\2c`) decoded and insignificant spaces dropped. Lenient: never fails.
fn parse_dn(dn: &str) -> Vec<Vec<(String, String)>> {
    let b = dn.as_bytes();
    let mut rdns = vec![];
    let mut rdn = vec![];
    let mut typ: Vec<u8> = vec![];
    let mut val: Vec<u8> = vec![];
    let mut in_value = false;
    // Length of `val` up to the last escaped byte: trailing spaces before it are kept.
    let mut protected = 0;
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !in_value {
            match c {
                b'=' => in_value = true,
                b' ' => {}
                _ => typ.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            b'\\' if i + 1 < b.len() => {
                let hex = |x: u8| (x as char).to_digit(16);
                match (hex(b[i + 1]), b.get(i + 2).and_then(|&x| hex(x))) {
                    (Some(h), Some(l)) => {
                        val.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        val.push(b[i + 1]);
                        i += 2;
                    }
                }
                protected = val.len();
                continue;
            }
            b',' | b';' | b'+' => {
                rdn.push((text(&typ), text(unpadded(&val, protected))));
                typ.clear();
                val.clear();
                protected = 0;
                in_value = false;
                if c != b'+' {
                    rdns.push(std::mem::take(&mut rdn));
                }
            }
            b' ' if val.is_empty() => {}
            _ => val.push(c),
        }
        i += 1;
    }
    if in_value || !typ.is_empty() {
        rdn.push((text(&typ), text(unpadded(&val, protected))));
    }
    if !rdn.is_empty() {
        rdns.push(rdn);
    }
    rdns
}

/// A comparable form of a DN: attribute types and values lower-cased, escapes
/// normalised, insignificant spaces dropped, multi-valued RDNs sorted. Enough to compare
/// the DN we bound with and the one the server reports; not a schema-aware matcher.
pub fn normalize_dn(dn: &str) -> String {
    parse_dn(dn)
        .into_iter()
        .map(|rdn| {
            let mut avas: Vec<String> = rdn
                .into_iter()
                .map(|(t, v)| format!("{}={}", t.to_lowercase(), dn_escape(v.to_lowercase())))
                .collect();
            avas.sort();
            avas.join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The value of a DN's first RDN (`admins` for `cn=admins,ou=groups,...`), unescaped.
fn first_rdn_value(dn: &str) -> String {
    parse_dn(dn)
        .into_iter()
        .next()
        .and_then(|rdn| rdn.into_iter().next())
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// Aborts the connection's driver task when the login ends (also on timeout).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Authenticates `user` with `password` against the directory and returns the names
/// (`cn`) of their groups, sorted. Never sends an empty password.
pub async fn authenticate(
    cfg: &LdapConfig,
    user: &str,
    password: &str,
) -> Result<Vec<String>, AuthError> {
    check_credentials(user, password)?;
    cfg.validate()
        .map_err(|e| unavailable(format!("configuration: {e}")))?;
    let transport = cfg
        .transport()
        .map_err(|e| unavailable(format!("configuration: {e}")))?;
    let tls = match transport {
        Transport::Ldapi => None,
        Transport::Ldaps | Transport::StartTls => Some(tls_config(cfg.ca_file.as_deref())?),
    };
    let timeout = cfg.timeout();
    match tokio::time::timeout(timeout, login(cfg, transport, tls, user, password)).await {
        Ok(r) => r,
        Err(_) => Err(unavailable(format!(
            "no answer from {} within {} s",
            cfg.url,
            timeout.as_secs()
        ))),
    }
}

async fn login(
    cfg: &LdapConfig,
    transport: Transport,
    tls: Option<Arc<rustls::ClientConfig>>,
    user: &str,
    password: &str,
) -> Result<Vec<String>, AuthError> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(cfg.timeout())
        .set_starttls(transport == Transport::StartTls);
    if let Some(tls) = tls {
        settings = settings.set_config(tls);
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &cfg.url)
        .await
        .map_err(|e| unavailable(format!("connecting to {}: {e}", cfg.url)))?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!("ldap connection ended: {e}");
        }
    }));
    let result = session(cfg, &mut ldap, user, password).await;
    let _ = ldap.unbind().await;
    result
}

async fn session(
    cfg: &LdapConfig,
    ldap: &mut Ldap,
    user: &str,
    password: &str,
) -> Result<Vec<String>, AuthError> {
    let dn = match (&cfg.user_dn_template, &cfg.search_base, &cfg.search_filter) {
        (Some(template), _, _) => user_dn(template, user),
        (None, Some(base), Some(filter)) => find_user(cfg, ldap, base, filter, user).await?,
        _ => return Err(unavailable("configuration: no way to find the user's DN")),
    };

    let res = ldap
        .simple_bind(&dn, password)
        .await
        .map_err(|e| unavailable(format!("bind as {dn:?}: {e}")))?;
    match res.rc {
        0 => {}
        // invalidDNSyntax, noSuchObject, constraintViolation (locked), inappropriate
        // authentication, invalidCredentials, insufficientAccessRights, unwillingToPerform
        19 | 32 | 34 | 48 | 49 | 50 | 53 => {
            return Err(rejected(format!(
                "bind as {dn:?} refused: rc={} {}",
                res.rc,
                res.text.trim()
            )))
        }
        rc => {
            return Err(unavailable(format!(
                "bind as {dn:?}: rc={rc} {}",
                res.text.trim()
            )))
        }
    }

    check_whoami(ldap, &dn).await?;
    if let Some(template) = &cfg.user_dn_template {
        check_exact_name(ldap, &dn, template, user).await?;
    }

    match &cfg.group_base {
        Some(base) => groups(cfg, ldap, base, user, &dn).await,
        None => Ok(vec![]),
    }
}

/// Search mode: optional service bind, then exactly one entry must match.
async fn find_user(
    cfg: &LdapConfig,
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    user: &str,
) -> Result<String, AuthError> {
    if let (Some(bind_dn), Some(file)) = (&cfg.bind_dn, &cfg.bind_password_file) {
        let pw = read_secret(file)?;
        let res = ldap
            .simple_bind(bind_dn, &pw)
            .await
            .map_err(|e| unavailable(format!("service bind as {bind_dn:?}: {e}")))?;
        if res.rc != 0 {
            return Err(unavailable(format!(
                "service bind as {bind_dn:?} refused: rc={} {}",
                res.rc,
                res.text.trim()
            )));
        }
    }
    let attrs = user_attributes(filter);
    let filter = expand_filter(filter, user, "");
    let wanted: Vec<&str> = if attrs.is_empty() {
        vec!["1.1"]
    } else {
        attrs.iter().map(String::as_str).collect()
    };
    let res = ldap
        .with_search_options(ldap3::SearchOptions::new().sizelimit(2))
        .search(base, Scope::Subtree, &filter, wanted)
        .await
        .map_err(|e| unavailable(format!("searching {base:?} for {filter:?}: {e}")))?;
    let entries: Vec<_> = res
        .0
        .into_iter()
        .filter(|e| !e.is_ref() && !e.is_intermediate())
        .collect();
    match res.1.rc {
        0 => {}
        4 => return Err(rejected(format!("{filter:?} matches several entries"))),
        32 => {
            return Err(unavailable(format!(
                "search base {base:?} does not exist: {}",
                res.1.text.trim()
            )))
        }
        rc => {
            return Err(unavailable(format!(
                "searching {base:?} for {filter:?}: rc={rc} {}",
                res.1.text.trim()
            )))
        }
    }
    match entries.len() {
        0 => Err(rejected(format!("no entry matches {filter:?}"))),
        1 => {
            let entry = SearchEntry::construct(entries.into_iter().next().expect("one"));
            if entry.dn.is_empty() {
                return Err(rejected("the matching entry has an empty DN"));
            }
            if !attrs.is_empty() && !has_exact_value(&entry, &attrs, user) {
                return Err(rejected(format!(
                    "{} matches {filter:?} only loosely (case or spaces): no {attrs:?} is exactly {user:?}",
                    entry.dn
                )));
            }
            Ok(entry.dn)
        }
        n => Err(rejected(format!("{filter:?} matches {n} entries"))),
    }
}

/// Attributes a filter template compares for equality with `{user}`: `uid` and `mail`
/// in `(|(uid={user})(mail={user}))`.
fn user_attributes(filter: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for (i, _) in filter.match_indices("={user}") {
        let head = &filter[..i];
        let start = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.'))
            .map(|j| j + 1)
            .unwrap_or(0);
        // `~=`, `>=`, `<=` end in a character that stops the scan and leave nothing.
        let name = &head[start..];
        if !name.is_empty()
            && head[..start].ends_with('(')
            && !out.iter().any(|a| a.eq_ignore_ascii_case(name))
        {
            out.push(name.to_string());
        }
    }
    out
}

/// Whether one of `attrs` of `entry` holds exactly `user` (byte for byte).
fn has_exact_value(entry: &SearchEntry, attrs: &[String], user: &str) -> bool {
    entry.attrs.iter().any(|(k, vals)| {
        attrs.iter().any(|a| a.eq_ignore_ascii_case(k)) && vals.iter().any(|v| v == user)
    })
}

/// Directory matching is mostly case- and space-insensitive (`uid=ALICE` binds as
/// alice): the name typed must be exactly the entry's, or the hub would know one
/// person under several names (and name-based policy could be sidestepped).
async fn check_exact_name(
    ldap: &mut Ldap,
    dn: &str,
    template: &str,
    user: &str,
) -> Result<(), AuthError> {
    let Some((attr, _)) = parse_dn(template)
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
    else {
        return Ok(());
    };
    // Only a template whose first RDN is `attr={user}` names the attribute to check.
    if !template
        .trim_start()
        .to_ascii_lowercase()
        .starts_with(&format!("{}={{user}}", attr.to_ascii_lowercase()))
    {
        return Ok(());
    }
    let res = ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec![attr.as_str()])
        .await
        .map_err(|e| unavailable(format!("reading {dn:?}: {e}")))?;
    if res.1.rc != 0 {
        return Err(unavailable(format!(
            "reading own entry {dn:?}: rc={} {}",
            res.1.rc,
            res.1.text.trim()
        )));
    }
    let entry = res
        .0
        .into_iter()
        .find(|e| !e.is_ref() && !e.is_intermediate())
        .map(SearchEntry::construct)
        .ok_or_else(|| unavailable(format!("cannot read own entry {dn:?}")))?;
    if has_exact_value(&entry, std::slice::from_ref(&attr), user) {
        Ok(())
    } else {
        Err(rejected(format!(
            "{dn:?} matched {} only loosely (case or spaces): no {attr} is exactly {user:?}",
            entry.dn
        )))
    }
}

/// The service account's password: the file's first line, which must not be empty.
fn read_secret(file: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| unavailable(format!("reading {}: {e}", file.display())))?;
    let pw = text.lines().next().unwrap_or("").to_string();
    if pw.is_empty() || pw.contains('\0') {
        return Err(unavailable(format!(
            "{} holds no usable password",
            file.display()
        )));
    }
    Ok(pw)
}

/// Belt and braces: after the bind, the connection must be authenticated as `dn`.
async fn check_whoami(ldap: &mut Ldap, dn: &str) -> Result<(), AuthError> {
    let res = ldap
        .extended(WhoAmI)
        .await
        .map_err(|e| unavailable(format!("whoami: {e}")))?;
    match res.1.rc {
        0 => {}
        // protocolError, unavailableCriticalExtension, unwillingToPerform: the server does
        // not implement RFC 4532. The bind itself used a non-empty password and succeeded.
        2 | 12 | 53 => {
            tracing::debug!("ldap server does not answer whoami (rc={})", res.1.rc);
            return Ok(());
        }
        rc => {
            return Err(unavailable(format!(
                "whoami: rc={rc} {}",
                res.1.text.trim()
            )))
        }
    }
    let authzid = res
        .0
        .val
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default();
    if let Some(bound) = authzid.strip_prefix("dn:") {
        if normalize_dn(bound) == normalize_dn(dn) && !bound.is_empty() {
            return Ok(());
        }
        return Err(rejected(format!("bound as {bound:?}, expected {dn:?}")));
    }
    if authzid.strip_prefix("u:").is_some_and(|u| !u.is_empty()) {
        // e.g. Active Directory's "u:DOMAIN\user": authenticated, not anonymous.
        return Ok(());
    }
    Err(rejected(format!(
        "after the bind the server says the connection is {:?} (anonymous?)",
        authzid
    )))
}

/// Direct groups, then (optionally) the groups containing them, breadth first.
async fn groups(
    cfg: &LdapConfig,
    ldap: &mut Ldap,
    base: &str,
    user: &str,
    dn: &str,
) -> Result<Vec<String>, AuthError> {
    let filter = expand_filter(
        cfg.group_filter.as_deref().unwrap_or(DEFAULT_GROUP_FILTER),
        user,
        dn,
    );
    let mut seen: HashSet<String> = HashSet::new();
    seen.insert(normalize_dn(dn));
    let mut names = BTreeSet::new();
    let mut frontier = search_groups(ldap, base, &filter, &mut seen, &mut names).await?;
    if cfg.nested_groups {
        for _depth in 1..MAX_NESTING_DEPTH {
            if frontier.is_empty() || names.len() >= MAX_GROUPS {
                break;
            }
            let mut next = vec![];
            for batch in frontier.chunks(NESTED_BATCH) {
                let mut f = String::from("(|");
                for g in batch {
                    let g = ldap_escape(g.as_str());
                    f.push_str(&format!("(member={g})(uniqueMember={g})"));
                }
                f.push(')');
                next.extend(search_groups(ldap, base, &f, &mut seen, &mut names).await?);
            }
            frontier = next;
        }
    }
    Ok(names.into_iter().take(MAX_GROUPS).collect())
}

/// One group search; returns the DNs of groups not seen before.
async fn search_groups(
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    seen: &mut HashSet<String>,
    names: &mut BTreeSet<String>,
) -> Result<Vec<String>, AuthError> {
    let res = ldap
        .with_search_options(ldap3::SearchOptions::new().sizelimit(MAX_GROUPS as i32))
        .search(base, Scope::Subtree, filter, vec!["cn"])
        .await
        .map_err(|e| unavailable(format!("group search in {base:?}: {e}")))?;
    // sizeLimitExceeded (4) still returns the first MAX_GROUPS entries: keep them.
    if res.1.rc != 0 && res.1.rc != 4 {
        return Err(unavailable(format!(
            "group search in {base:?} for {filter:?}: rc={} {}",
            res.1.rc,
            res.1.text.trim()
        )));
    }
    let mut new = vec![];
    for e in res.0 {
        if e.is_ref() || e.is_intermediate() {
            continue;
        }
        let e = SearchEntry::construct(e);
        if !seen.insert(normalize_dn(&e.dn)) {
            continue;
        }
        let name = e
            .attrs
            .get("cn")
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_else(|| first_rdn_value(&e.dn));
        if !name.is_empty() {
            names.insert(name);
        }
        new.push(e.dn);
    }
    Ok(new)
}

/// rustls configuration trusting `ca_file` (or the system's roots), cached per file
/// version so that TLS sessions resume across logins; a replaced file is re-read.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, AuthError> {
    type Key = (Option<PathBuf>, Option<(SystemTime, u64)>);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<rustls::ClientConfig>>>> = OnceLock::new();
    let version = match ca_file {
        Some(p) => {
            let m = std::fs::metadata(p)
                .map_err(|e| unavailable(format!("CA file {}: {e}", p.display())))?;
            Some((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        }
        None => None,
    };
    let key = (ca_file.map(Path::to_path_buf), version);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    let roots = match ca_file {
        Some(p) => roots_from_pem(p)?,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(unavailable(
                    "no ca_file configured and no system CA certificates found",
                ));
            }
            roots
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| unavailable(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let config = Arc::new(config);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    // Drop older versions of the same file.
    map.retain(|(p, _), _| p.as_deref() != ca_file);
    map.insert(key, config.clone());
    Ok(config)
}

fn roots_from_pem(path: &Path) -> Result<rustls::RootCertStore, AuthError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unavailable(format!("CA file {}: {e}", path.display())))?;
    for c in certs {
        let c = c.map_err(|e| unavailable(format!("CA file {}: {e}", path.display())))?;
        roots
            .add(c)
            .map_err(|e| unavailable(format!("CA file {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(unavailable(format!(
            "CA file {} holds no certificate",
            path.display()
        )));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template_cfg() -> LdapConfig {
        let mut c = LdapConfig::new("ldaps://127.0.0.1:1");
        c.user_dn_template = Some("uid={user},ou=people,dc=example,dc=org".into());
        c
    }

    #[test]
    fn escapes_user_for_dn_and_filter() {
        assert_eq!(
            user_dn("uid={user},ou=people,dc=example,dc=org", "a,b=c+d\\e"),
            "uid=a\\2cb\\3dc\\2bd\\5ce,ou=people,dc=example,dc=org"
        );
        assert_eq!(user_dn("uid={user},dc=x", " #lead"), "uid=\\20#lead,dc=x");
        assert_eq!(
            expand_filter("(uid={user})", "*)(uid=*", ""),
            "(uid=\\2a\\29\\28uid=\\2a)"
        );
        // One pass: a user called "{dn}" is not replaced by the DN.
        assert_eq!(
            expand_filter("(|(memberUid={user})(member={dn}))", "{dn}", "uid=x,dc=y"),
            "(|(memberUid={dn})(member=uid=x,dc=y))"
        );
        assert_eq!(
            expand_filter("(member={dn})", "", "cn=a\\2cb,dc=y"),
            "(member=cn=a\\5c2cb,dc=y)"
        );
    }

    #[test]
    fn refuses_empty_nul_and_control_before_io() {
        for (u, p) in [
            ("alice", ""),
            ("", "pw"),
            ("al\0ice", "pw"),
            ("alice", "p\0w"),
            ("al\nice", "pw"),
        ] {
            let e = check_credentials(u, p).unwrap_err();
            assert!(matches!(e, AuthError::Rejected { .. }), "{u:?}/{p:?}");
            assert_eq!(e.to_string(), crate::auth::GENERIC_FAILURE);
        }
        check_credentials("a*)(,=", "pw").unwrap();
    }

    #[tokio::test]
    async fn empty_password_is_rejected_without_config_or_network() {
        // The URL points nowhere: an attempt to connect would give Unavailable.
        let e = authenticate(&template_cfg(), "alice", "")
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::Rejected { .. }), "{e:?}");
    }

    #[test]
    fn validates_configuration() {
        template_cfg().validate().unwrap();
        let mut c = template_cfg();
        c.url = "ldap://h:389".into();
        assert!(c.validate().unwrap_err().contains("starttls"));
        c.starttls = true;
        c.validate().unwrap();
        c.url = "ldapi://%2Frun%2Fldapi".into();
        assert!(c.validate().is_err());
        c.starttls = false;
        c.validate().unwrap();
        c.search_base = Some("dc=x".into());
        assert!(c.validate().is_err(), "template and search together");
        c.user_dn_template = None;
        assert!(c.validate().is_err(), "search without filter");
        c.search_filter = Some("(uid={user})".into());
        c.validate().unwrap();
        c.bind_dn = Some("cn=svc".into());
        assert!(c.validate().is_err(), "bind_dn without password file");
        c.bind_password_file = Some("/x".into());
        c.validate().unwrap();
        c.search_filter = Some("uid={user}(".into());
        assert!(c.validate().is_err(), "bad filter");
        c.search_filter = Some("(uid=x)".into());
        assert!(c.validate().is_err(), "filter without {{user}}");
        let mut c = template_cfg();
        c.url = "http://x".into();
        assert!(c.validate().is_err());
        let mut c = template_cfg();
        c.nested_groups = true;
        assert!(c.validate().is_err());
        c.group_base = Some("ou=groups,dc=x".into());
        c.validate().unwrap();
        c.timeout_secs = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn parses_toml_and_refuses_unknown_keys() {
        let c: LdapConfig = toml::from_str(
            r#"url = "ldaps://ldap.example.org"
               ca_file = "/etc/steward/ldap-ca.pem"
               search_base = "ou=people,dc=example,dc=org"
               search_filter = "(uid={user})"
               group_base = "ou=groups,dc=example,dc=org"
               nested_groups = true"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.timeout_secs, 5);
        assert!(toml::from_str::<LdapConfig>("url = \"ldaps://x\"\nbind_pw = \"x\"").is_err());
    }

    #[test]
    fn finds_the_attributes_compared_with_the_user() {
        assert_eq!(user_attributes("(uid={user})"), ["uid"]);
        assert_eq!(
            user_attributes(
                "(&(objectClass=posixAccount)(|(uid={user})(mail={user})(UID={user})))"
            ),
            ["uid", "mail"]
        );
        assert!(user_attributes("(cn~={user})").is_empty());
        assert!(user_attributes("(cn=*{user}*)").is_empty());
    }

    #[test]
    fn normalizes_dns() {
        let n = normalize_dn;
        assert_eq!(
            n("UID=Alice, ou=People,dc=Example,DC=org"),
            "uid=alice,ou=people,dc=example,dc=org"
        );
        assert_eq!(n("uid=a\\2cb,dc=x"), n("uid=a\\,b,dc=x"));
        assert_ne!(n("uid=a\\2cb,dc=x"), n("uid=a,b,dc=x"));
        assert_eq!(n("cn = x ,dc=y"), "cn=x,dc=y");
        assert_eq!(n("cn=x\\20,dc=y"), n("cn=x\\ ,dc=y"));
        assert_ne!(n("cn=x\\20,dc=y"), n("cn=x ,dc=y"));
        assert_eq!(first_rdn_value("cn=Ad\\2cmins,ou=g"), "Ad,mins");
        assert_eq!(n("cn=b+uid=a,dc=x"), n("UID=a + CN=b,dc=x"));
    }
}
