//! Forwarding durable records to syslog (RFC 5424) over UDP and a unix datagram socket.

mod common;

use common::*;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use steward_audit::{
    events, AuditConfig, AuditLog, AuditRecord, Decision, SyslogFormat, SyslogTarget, CURRENT_FILE,
};

fn recv_udp(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).expect("no syslog message arrived");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn human_lines_go_to_a_udp_collector_after_they_are_durable() {
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t = tempfile::tempdir().unwrap();
    let mut c = AuditConfig::new(t.path());
    let mut target = SyslogTarget::udp(collector.local_addr().unwrap());
    target.hostname = Some("hub1".into());
    c.syslog = Some(target);
    let log = AuditLog::open(c).unwrap();

    let i = AuditRecord {
        time: "2026-11-23T10:15:01Z".into(),
        owner: Some("jacintar".into()),
        actor: "jacintar".into(),
        task: Some("1234/climb".into()),
        ..intent("jacintar", 1234)
    };
    let s = log.append_blocking(i.clone()).unwrap();
    let o = AuditRecord {
        time: "2026-11-23T10:15:02Z".into(),
        ..outcome(&i, s)
    };
    log.append_blocking(o).unwrap();
    // The intent has no human line, so the first message is the outcome's.
    assert_eq!(
        recv_udp(&collector),
        "<85>1 2026-11-23T10:15:02.000000Z hub1 steward - - - 2026-11-23T10:15:02Z User jacintar stopped atmosphere_stage.clouds.climb.1234 task"
    );
    let denied = AuditRecord {
        time: "2026-11-23T10:16:00Z".into(),
        decision: Some(Decision::Deny),
        reason: Some("no grant".into()),
        ..event(events::OP, "bob")
    };
    log.append_blocking(AuditRecord {
        owner: Some("alice".into()),
        workflow: Some("demo".into()),
        op: Some("pause".into()),
        ..denied
    })
    .unwrap();
    // Refusals are severity warning (4): authpriv * 8 + 4 = 84.
    assert_eq!(
        recv_udp(&collector),
        "<84>1 2026-11-23T10:16:00.000000Z hub1 steward - - - 2026-11-23T10:16:00Z User bob was denied pause on alice's demo workflow: \"no grant\""
    );
    assert_eq!(log.stats().syslog_dropped, 0);
}

#[test]
fn json_chain_lines_go_to_a_unix_datagram_socket() {
    let t = tempfile::tempdir().unwrap();
    let sock_path = t.path().join("log.sock");
    let collector = UnixDatagram::bind(&sock_path).unwrap();
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let dir = t.path().join("audit");
    let mut c = AuditConfig::new(&dir);
    let mut target = SyslogTarget::unix(&sock_path);
    target.format = SyslogFormat::Json;
    target.hostname = Some("hub1".into());
    c.syslog = Some(target);
    let log = AuditLog::open(c).unwrap();
    log.append_blocking(intent("bob", 1)).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = collector.recv(&mut buf).unwrap();
    let msg = String::from_utf8(buf[..n].to_vec()).unwrap();
    let line = lines(&dir.join(CURRENT_FILE)).remove(0);
    assert!(msg.starts_with("<85>1 "), "{msg}");
    assert!(
        msg.ends_with(&format!("hub1 steward - - - {line}")),
        "{msg}"
    );
}

#[test]
fn an_absent_collector_never_holds_up_the_log() {
    let t = tempfile::tempdir().unwrap();
    let mut c = AuditConfig::new(t.path().join("audit"));
    c.syslog = Some(SyslogTarget::unix(t.path().join("nobody-listens")));
    let log = AuditLog::open(c).unwrap();
    for k in 0..3 {
        log.append_blocking(AuditRecord {
            actor_addr: None,
            ..event(events::LOGIN, &format!("u{k}"))
        })
        .unwrap();
    }
    assert_eq!(log.stats().syslog_dropped, 3);
    log.health().unwrap();
}
