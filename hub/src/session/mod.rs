//! Who is asking, right now: server-side sessions behind the cookie, their CSRF token,
//! elevation deadlines, and bearer API tokens for scripts. Handlers get a session
//! through the extractors of [`extract`] — the one choke point where "not logged in"
//! and a wrong CSRF token are answered.
//!
//! This module must not check passwords (that is `auth`), decide operations (`decide`)
//! or write the audit log: what it notices that must be audited (an elevation that
//! expired) it returns as a record for the caller to write.

pub mod extract;
pub mod tokens;

pub use crate::store::{Session, SessionKind};
pub use extract::{Authed, CsrfChecked};

use crate::auth::Groups;
use crate::http::ApiError;
use crate::store::{hash_secret, Store, StoreError};
use crate::util::random_token;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::HttpRequest;
use std::sync::Arc;
use steward_audit::{events, AuditRecord, RecordKind};
use steward_protocol::OpClass;
use subtle::ConstantTimeEq;

/// `__Host-`: a browser accepts this cookie only from this https origin, with `Path=/`
/// and no `Domain`, so a sibling host or a plain-http service on another port of this
/// host cannot plant one (cookie tossing, JupyterHub CVE-2024-28233).
pub const SESSION_COOKIE: &str = "__Host-steward_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub struct Sessions {
    store: Arc<dyn Store>,
    groups: Arc<Groups>,
    idle_secs: i64,
    lifetime_secs: i64,
    accounts: AccountCache,
}

/// Which uid each name resolves to now, asked of NSS at most every [`ACCOUNT_TTL`] per
/// name while it agrees with the session: every request checks that its session's
/// account still is the one that logged in, and NSS may be a directory behind the
/// network. An account changed behind the hub's back is seen within the TTL.
#[derive(Default)]
struct AccountCache(
    std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Option<u32>)>>,
);

const ACCOUNT_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The uid `user` resolves to through NSS now (None: no such account).
pub fn uid_of(user: &str) -> Option<u32> {
    nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

impl AccountCache {
    fn uid(&self, user: &str) -> Option<u32> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, uid)) = map.get(user) {
            if at.elapsed() < ACCOUNT_TTL {
                return *uid;
            }
        }
        drop(map);
        self.refresh(user)
    }

    fn refresh(&self, user: &str) -> Option<u32> {
        let uid = uid_of(user);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(user.to_string(), (std::time::Instant::now(), uid));
        uid
    }
}

pub fn deadline_rfc3339(deadline: Option<i64>) -> Option<String> {
    deadline
        .and_then(|d| chrono::DateTime::from_timestamp(d, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The cookie carrying a session id (empty value: the cookie that removes it).
pub fn session_cookie(id: &str) -> Cookie<'static> {
    let mut c = Cookie::build(SESSION_COOKIE, id.to_string())
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    if id.is_empty() {
        c.make_removal();
    }
    c
}

/// A short reference for the audit log that reveals nothing usable.
pub fn session_ref(s: &Session) -> String {
    s.kind.reference()
}

impl Sessions {
    pub fn new(
        store: Arc<dyn Store>,
        groups: Arc<Groups>,
        idle_secs: u64,
        lifetime_secs: u64,
    ) -> Sessions {
        Sessions {
            store,
            groups,
            idle_secs: idle_secs as i64,
            lifetime_secs: lifetime_secs as i64,
            accounts: AccountCache::default(),
        }
    }

    pub fn now(&self) -> i64 {
        self.store.now()
    }

    /// The session behind the request's cookie or bearer token, if it is live (idle
    /// time and lifetime checked).
    pub async fn of_request(&self, req: &HttpRequest) -> Option<Session> {
        if let Some(value) = req.headers().get("authorization") {
            let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
            return tokens::validate(self, token, &crate::http::peer_addr(req)).await;
        }
        // Two session cookies mean one was planted: use neither rather than guess.
        let id_hash = {
            let cookies = req.cookies().ok()?;
            let mut ours = cookies.iter().filter(|c| c.name() == SESSION_COOKIE);
            let cookie = ours.next()?;
            if ours.next().is_some() {
                return None;
            }
            hash_secret(cookie.value())
        };
        let s = self.store.session(&id_hash).await.ok()??;
        if !self.same_account(&s) {
            let _ = self.store.delete_session(&id_hash).await;
            return None;
        }
        let now = self.store.now();
        if now - s.last_seen > self.idle_secs || now - s.created > self.lifetime_secs {
            let _ = self.store.delete_session(&id_hash).await;
            return None;
        }
        if now - s.last_seen > 30 {
            let _ = self.store.touch_session(&id_hash, now).await;
        }
        Some(s)
    }

    /// Whether the session's name still resolves to the account that logged in (sudo-rs
    /// GHSA-c978-wq47-pvvw: what was granted to a person must not pass to whoever gets
    /// their name next).
    pub fn same_account(&self, s: &Session) -> bool {
        // The cache only ever spares a lookup when it agrees: a disagreement is checked
        // against NSS at once, so a name that got its account back (or a new one) is
        // not judged on a stale answer.
        self.accounts.uid(&s.user) == s.uid || self.accounts.refresh(&s.user) == s.uid
    }

    /// Creates a fresh session (new id: no fixation); returns it with its cookie value.
    pub async fn create(
        &self,
        user: &str,
        addr: &str,
        class: OpClass,
        deadline: Option<i64>,
        directory_groups: &[String],
    ) -> Result<(Session, String), StoreError> {
        let id = random_token();
        let now = self.store.now();
        let mut groups = self.groups.of(user);
        groups.extend(directory_groups.iter().cloned());
        groups.sort();
        groups.dedup();
        let s = Session {
            kind: SessionKind::Cookie {
                id_hash: hash_secret(&id),
            },
            user: user.to_string(),
            groups,
            class,
            deadline,
            csrf: random_token(),
            created: now,
            last_seen: now,
            addr: addr.to_string(),
            expiry_audited: false,
            uid: uid_of(user),
        };
        self.store.insert_session(&s).await?;
        Ok((s, id))
    }

    /// Ends a login session (a token session has nothing to end: revoke the token).
    pub async fn end(&self, s: &Session) {
        if let Some(id_hash) = s.id_hash() {
            let _ = self.store.delete_session(id_hash).await;
        }
    }

    /// Every login session, for hub admins.
    pub async fn all(&self) -> Vec<Session> {
        self.store.sessions().await.unwrap_or_default()
    }

    /// The audit record of an elevation that has silently dropped back to read, the
    /// first time anyone notices (None afterwards, and while it has not expired).
    pub async fn expiry_event(&self, s: &Session) -> Option<AuditRecord> {
        let now = self.store.now();
        let expired = s.class != OpClass::Read && s.deadline.is_some_and(|d| now >= d);
        if !expired || s.expiry_audited {
            return None;
        }
        let id_hash = s.id_hash()?;
        match self.store.mark_expiry_audited(id_hash).await {
            Ok(true) => Some(AuditRecord {
                session: Some(session_ref(s)),
                elevation: Some(s.class.name().into()),
                elevation_deadline: deadline_rfc3339(s.deadline),
                ..AuditRecord::new(RecordKind::Event, events::EXPIRE, &s.user)
            }),
            _ => None,
        }
    }

    /// Reads the session again (it may have been revoked, or its elevation may have
    /// expired, since a connection opened). None: it has ended. The record, if any, is
    /// the expiry to audit.
    pub async fn refresh(&self, s: &Session) -> Option<(Session, Option<AuditRecord>)> {
        let fresh = match &s.kind {
            SessionKind::Token { id } => tokens::revalidate(self, id, &s.addr).await?,
            SessionKind::Cookie { id_hash } => self.store.session(id_hash).await.ok().flatten()?,
        };
        if !self.same_account(&fresh) {
            if let Some(id_hash) = fresh.id_hash() {
                let _ = self.store.delete_session(id_hash).await;
            }
            return None;
        }
        let expiry = self.expiry_event(&fresh).await;
        Some((fresh, expiry))
    }
}

/// A state-changing request must carry the session's CSRF token. Bearer tokens are not
/// sent by browsers on their own, so they need none.
pub fn check_csrf(req: &HttpRequest, s: &Session) -> Result<(), ApiError> {
    if s.is_token() {
        return Ok(());
    }
    match req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(t) if bool::from(t.as_bytes().ct_eq(s.csrf.as_bytes())) => Ok(()),
        _ => Err(ApiError::forbidden(
            "missing or wrong CSRF token (send the X-CSRF-Token header from /hub/api/me)",
        )),
    }
}
