//! Optional forwarding of durable records to syslog, RFC 5424 framing, over UDP or a
//! unix datagram socket (`/dev/log`).
//!
//! Forwarding happens after the record is fsync'd and never holds up the log: the
//! socket is non-blocking and a message that cannot be sent is counted and dropped
//! (the file stays the record of truth). Hand-written because the framing is one
//! `format!` and the syslog crates add a logger facade we do not want here.

use crate::human::quote;
use crate::record::{events, AuditRecord, Decision, Outcome};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogAddr {
    Udp(SocketAddr),
    /// A unix datagram socket such as `/dev/log`.
    Unix(PathBuf),
}

/// What the MSG part carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyslogFormat {
    /// The human line; intents and checkpoints are not forwarded.
    #[default]
    Human,
    /// The exact chain line of every record (intents and checkpoints too), so a
    /// collector holds a copy of the chain that `verify` can check.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    pub addr: SyslogAddr,
    pub format: SyslogFormat,
    /// Syslog facility number; default 10 (authpriv).
    pub facility: u8,
    /// HOSTNAME field; default the machine's host name.
    pub hostname: Option<String>,
}

impl SyslogTarget {
    pub fn udp(addr: SocketAddr) -> SyslogTarget {
        SyslogTarget {
            addr: SyslogAddr::Udp(addr),
            format: SyslogFormat::Human,
            facility: 10,
            hostname: None,
        }
    }

    pub fn unix(path: impl Into<PathBuf>) -> SyslogTarget {
        SyslogTarget {
            addr: SyslogAddr::Unix(path.into()),
            ..SyslogTarget::udp(SocketAddr::from(([127, 0, 0, 1], 514)))
        }
    }
}

/// 4 (warning) for refusals and failures, 5 (notice) for everything else.
fn severity(rec: &AuditRecord) -> u8 {
    let bad = rec.decision == Some(Decision::Deny)
        || matches!(rec.outcome, Some(Outcome::Error | Outcome::Unknown))
        || matches!(
            rec.event.as_str(),
            events::LOGIN_FAILED
                | events::ELEVATE_REFUSED
                | events::SPAWN_FAILED
                | events::AUDIT_RESUMED
                | events::AUDIT_REPAIRED
                | events::AUDIT_HEAD_MISSING
        );
    if bad {
        4
    } else {
        5
    }
}

fn host_name() -> String {
    let Ok(name) = nix::unistd::gethostname() else {
        return "-".to_string();
    };
    let name = name.to_string_lossy().into_owned();
    // RFC 5424 HOSTNAME is 1*255 PRINTUSASCII.
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        "-".to_string()
    } else {
        name
    }
}

/// `<PRI>1 TIMESTAMP HOST steward - - - MSG`, or `None` when this record is not forwarded.
pub(crate) fn format_message(
    target: &SyslogTarget,
    host: &str,
    rec: &AuditRecord,
    line: &[u8],
    human: Option<&str>,
) -> Option<Vec<u8>> {
    let pri = u32::from(target.facility.min(23)) * 8 + u32::from(severity(rec));
    let time = if rec.time.is_empty() {
        "-"
    } else {
        rec.time.as_str()
    };
    let time = if time.bytes().all(|b| b.is_ascii_graphic()) {
        time.to_string()
    } else {
        quote(time)
    };
    let mut out = format!("<{pri}>1 {time} {host} steward - - - ").into_bytes();
    match target.format {
        SyslogFormat::Human => out.extend_from_slice(human?.as_bytes()),
        SyslogFormat::Json => out.extend_from_slice(line),
    }
    Some(out)
}

enum Sock {
    Udp(UdpSocket, SocketAddr),
    Unix(UnixDatagram, PathBuf),
}

pub(crate) struct SyslogSender {
    target: SyslogTarget,
    host: String,
    sock: Sock,
    pub(crate) dropped: u64,
}

impl SyslogSender {
    pub(crate) fn new(target: &SyslogTarget) -> io::Result<SyslogSender> {
        let sock = match &target.addr {
            SyslogAddr::Udp(addr) => {
                let bind: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(bind)?;
                s.set_nonblocking(true)?;
                Sock::Udp(s, *addr)
            }
            SyslogAddr::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.set_nonblocking(true)?;
                Sock::Unix(s, path.clone())
            }
        };
        Ok(SyslogSender {
            host: target.hostname.clone().unwrap_or_else(host_name),
            target: target.clone(),
            sock,
            dropped: 0,
        })
    }

    pub(crate) fn send(&mut self, rec: &AuditRecord, line: &[u8], human: Option<&str>) {
        let Some(msg) = format_message(&self.target, &self.host, rec, line, human) else {
            return;
        };
        let sent = match &self.sock {
            Sock::Udp(s, addr) => s.send_to(&msg, addr).map(|_| ()),
            Sock::Unix(s, path) => s.send_to(&msg, path).map(|_| ()),
        };
        if sent.is_err() {
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_framing() {
        let t = SyslogTarget::udp("127.0.0.1:514".parse().unwrap());
        let rec = AuditRecord {
            time: "2026-11-23T10:15:02.000000Z".into(),
            decision: Some(Decision::Deny),
            ..Default::default()
        };
        let m = format_message(&t, "h1", &rec, b"{}", Some("x y")).unwrap();
        assert_eq!(
            String::from_utf8(m).unwrap(),
            "<84>1 2026-11-23T10:15:02.000000Z h1 steward - - - x y"
        );
        assert!(format_message(&t, "h1", &rec, b"{}", None).is_none());
    }
}
