//! Readiness for a service manager: tells systemd (`Type=notify`) that the hub is up,
//! once both listeners are bound, so `systemctl start` returns only when logins work
//! and units ordered after steward.service start against a listening hub.
//!
//! A no-op when `NOTIFY_SOCKET` is unset (started by hand, by tests, or by another
//! supervisor). It must never stop the hub: a manager that cannot be told is logged.

/// Sends `READY=1` with a status line naming the public address.
pub fn ready(public_addr: std::net::SocketAddr) {
    let status = format!("listening on https://{public_addr}");
    let states = [
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ];
    if let Err(e) = sd_notify::notify(&states) {
        tracing::warn!(error = %e, "could not tell the service manager that the hub is ready");
    }
}
