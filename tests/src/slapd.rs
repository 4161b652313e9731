//! A private, real OpenLDAP `slapd` for tests and benchmarks.
//!
//! [`Slapd::start`] writes a `slapd.conf` into a fresh temporary directory (schemas core,
//! cosine, nis, inetorgperson; `back_mdb`; suffix `dc=example,dc=org`), makes a test CA
//! and a server certificate for `127.0.0.1`/`localhost` with rcgen, loads a generated
//! LDIF with `slapadd` (users, posix and groupOfNames groups, a nested group, a cycle),
//! and runs `slapd -d 0` in the foreground listening on `ldap://127.0.0.1:P/` (StartTLS),
//! `ldaps://127.0.0.1:P2/` and an `ldapi://` socket in the directory. Dropping it kills
//! slapd and removes the directory. No root needed; no system configuration touched.
//!
//! This file depends only on `std`, `tempfile`, `rcgen` and `nix`, so a benchmark can
//! include it with `#[path]`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SLAPD: &str = "/usr/sbin/slapd";
pub const BASE: &str = "dc=example,dc=org";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PW: &str = "admin-secret";
/// Template binding users directly.
pub const USER_DN_TEMPLATE: &str = "uid={user},ou=people,dc=example,dc=org";

/// Users in the directory: (uid, password).
/// * `alice`: posixGroup `devs`, groupOfNames `admins`; `admins` is a member of `ops`.
/// * `bob`: `devs`, and `ring-a`, which contains `ring-b`, which contains `ring-a` (a cycle).
/// * `dave`: groupOfUniqueNames `auditors` only.
/// * `a,b=c*`: a real uid full of DN and filter metacharacters; group `odd`.
pub const USERS: &[(&str, &str)] = &[
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("dave", "dave-pw"),
    ("a,b=c*", "odd-pw"),
];

#[derive(Debug, Clone, Default)]
pub struct SlapdOptions {
    /// `allow bind_anon_dn`: a bind with a DN and an empty password succeeds as anonymous
    /// (what Active Directory does), instead of "unwilling to perform" (53).
    pub allow_bind_anon_dn: bool,
}

pub struct Slapd {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    /// `ldap://127.0.0.1:PORT/`: plain LDAP, use with StartTLS.
    pub ldap_url: String,
    /// `ldaps://127.0.0.1:PORT/`.
    pub ldaps_url: String,
    /// `ldapi://%2Ftmp%2F...%2Fldapi`.
    pub ldapi_url: String,
    pub ldap_port: u16,
    pub ldaps_port: u16,
    /// The CA that signed the server's certificate (PEM).
    pub ca_file: PathBuf,
    /// Another CA, which did not (PEM).
    pub other_ca_file: PathBuf,
}

/// Whether slapd and its tools are installed; under `CI=true` a missing one is a
/// failure, otherwise the caller skips (after this prints why).
pub fn available(test: &str) -> bool {
    let missing: Vec<&str> = [
        SLAPD,
        "/usr/sbin/slapadd",
        "/usr/sbin/slappasswd",
        "/usr/bin/ldapwhoami",
    ]
    .into_iter()
    .filter(|p| !Path::new(p).exists())
    .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} missing (apt-get install slapd ldap-utils; scripts/install-deps.sh does)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}, and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

pub fn user_dn(uid: &str) -> String {
    let mut v = String::new();
    for c in uid.chars() {
        if matches!(c, ',' | '=' | '+' | '"' | '\\' | '<' | '>' | ';') {
            v.push_str(&format!("\\{:02x}", c as u32));
        } else {
            v.push(c);
        }
    }
    format!("uid={v},{PEOPLE}")
}

pub fn password_of(uid: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _)| *u == uid)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("no test user {uid:?}"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ssha(password: &str) -> String {
    run(Command::new("/usr/sbin/slappasswd").args(["-h", "{SSHA}", "-s", password]))
        .trim()
        .to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// (CA PEM, server cert PEM, server key PEM) for 127.0.0.1 and localhost, and another CA.
fn make_certs() -> (String, String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca = |name: &str| {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2049, 12, 31);
        let cert = p.self_signed(&key).expect("CA cert");
        (cert.pem(), Issuer::new(p, key))
    };
    let (ca_pem, issuer) = ca("Steward test LDAP CA");
    let (other_pem, _) = ca("Some other CA");
    let key = KeyPair::generate().expect("server key");
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    p.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // Shaped like a real CA's: bounded validity, authority key identifier.
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2049, 12, 31);
    p.use_authority_key_identifier_extension = true;
    let cert = p.signed_by(&key, &issuer).expect("server cert");
    (ca_pem, cert.pem(), key.serialize_pem(), other_pem)
}

fn ldif() -> String {
    let mut s = format!(
        "dn: {BASE}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n\
         o: Example\ndc: example\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for (n, (uid, pw)) in USERS.iter().enumerate() {
        s += &format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             objectClass: shadowAccount\nuid: {uid}\ncn: {uid}\nsn: Example\n\
             uidNumber: {id}\ngidNumber: 20000\nhomeDirectory: /home/user{n}\n\
             loginShell: /bin/bash\nuserPassword: {hash}\n\n",
            dn = user_dn(uid),
            id = 20001 + n,
            hash = ssha(pw),
        );
    }
    let alice = user_dn("alice");
    let bob = user_dn("bob");
    let dave = user_dn("dave");
    let odd = user_dn("a,b=c*");
    s += &format!(
        "dn: cn=devs,{GROUPS}\nobjectClass: posixGroup\ncn: devs\ngidNumber: 20000\n\
         memberUid: alice\nmemberUid: bob\n\n\
         dn: cn=admins,{GROUPS}\nobjectClass: groupOfNames\ncn: admins\nmember: {alice}\n\n\
         dn: cn=ops,{GROUPS}\nobjectClass: groupOfNames\ncn: ops\nmember: cn=admins,{GROUPS}\n\n\
         dn: cn=ring-a,{GROUPS}\nobjectClass: groupOfNames\ncn: ring-a\nmember: {bob}\n\
         member: cn=ring-b,{GROUPS}\n\n\
         dn: cn=ring-b,{GROUPS}\nobjectClass: groupOfNames\ncn: ring-b\n\
         member: cn=ring-a,{GROUPS}\n\n\
         dn: cn=auditors,{GROUPS}\nobjectClass: groupOfUniqueNames\ncn: auditors\n\
         uniqueMember: {dave}\n\n\
         dn: cn=odd,{GROUPS}\nobjectClass: groupOfNames\ncn: odd\nmember: {odd}\n\n"
    );
    s
}

fn write(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Runs `slapd -d 0` on `d/slapd.conf` listening on `hosts`, logging to `d/slapd.log`.
fn spawn_slapd(d: &Path, hosts: &str) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join("slapd.log"))
        .map_err(|e| e.to_string())?;
    // -d 0: stay in the foreground (our child, reaped by us) without debug output.
    let mut cmd = Command::new(SLAPD);
    // If the test process dies without dropping us (killed, aborted), so does slapd.
    // (Linux sends this when the spawning *thread* exits: keep the Slapd on it.)
    // SAFETY: the closure runs in the forked child before exec and only calls prctl,
    // which is async-signal-safe; an Errno becomes an io::Error without allocating.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    cmd.arg("-f")
        .arg(d.join("slapd.conf"))
        .arg("-h")
        .arg(hosts)
        .args(["-d", "0"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("spawning {SLAPD}: {e}"))
}

impl Slapd {
    /// Starts slapd (panics if it cannot); call [`available`] first.
    pub fn start(opts: SlapdOptions) -> Slapd {
        let mut last = String::new();
        // Ports are picked free and released: another process may take one meanwhile.
        for _ in 0..3 {
            match Self::try_start(&opts) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("slapd did not start: {last}");
    }

    fn try_start(opts: &SlapdOptions) -> Result<Slapd, String> {
        let dir = tempfile::Builder::new()
            .prefix("steward-slapd-")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        std::fs::create_dir(d.join("db")).map_err(|e| e.to_string())?;
        let (ca, cert, key, other) = make_certs();
        let ca_file = d.join("ca.pem");
        let other_ca_file = d.join("other-ca.pem");
        write(&ca_file, &ca);
        write(&other_ca_file, &other);
        write(&d.join("server.pem"), &cert);
        write(&d.join("server.key"), &key);
        let conf = d.join("slapd.conf");
        write(
            &conf,
            &format!(
                "include /etc/ldap/schema/core.schema\n\
                 include /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/nis.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\n\
                 pidfile {d}/slapd.pid\n\
                 argsfile {d}/slapd.args\n\
                 modulepath /usr/lib/ldap\n\
                 moduleload back_mdb\n\
                 {anon}\
                 TLSCertificateFile {d}/server.pem\n\
                 TLSCertificateKeyFile {d}/server.key\n\
                 database mdb\n\
                 maxsize 67108864\n\
                 suffix \"{BASE}\"\n\
                 rootdn \"{ADMIN_DN}\"\n\
                 rootpw {rootpw}\n\
                 directory {d}/db\n\
                 index objectClass,uid,cn,memberUid,member,uniqueMember eq\n\
                 access to attrs=userPassword by self write by anonymous auth by * none\n\
                 access to * by * read\n",
                d = d.display(),
                anon = if opts.allow_bind_anon_dn {
                    "allow bind_anon_dn\n"
                } else {
                    ""
                },
                rootpw = ssha(ADMIN_PW),
            ),
        );
        let ldif_path = d.join("data.ldif");
        write(&ldif_path, &ldif());
        run(Command::new("/usr/sbin/slapadd")
            .arg("-q")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&ldif_path));

        let ldap_port = free_port();
        let mut ldaps_port = free_port();
        while ldaps_port == ldap_port {
            ldaps_port = free_port();
        }
        let socket = d.join("ldapi");
        let ldapi_url = format!(
            "ldapi://{}",
            socket.display().to_string().replace('/', "%2F")
        );
        let ldap_url = format!("ldap://127.0.0.1:{ldap_port}/");
        let ldaps_url = format!("ldaps://127.0.0.1:{ldaps_port}/");
        let child = spawn_slapd(d, &format!("{ldap_url} {ldaps_url} {ldapi_url}"))?;
        let mut s = Slapd {
            child: Some(child),
            dir: Some(dir),
            ldap_url,
            ldaps_url,
            ldapi_url,
            ldap_port,
            ldaps_port,
            ca_file,
            other_ca_file,
        };
        s.wait_ready(Duration::from_secs(15))?;
        Ok(s)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!("slapd exited with {status}: {}", self.log()));
                }
            }
            let tcp = [self.ldap_port, self.ldaps_port].iter().all(|p| {
                std::net::TcpStream::connect_timeout(
                    &([127, 0, 0, 1], *p).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
            });
            if tcp && self.whoami(&self.ldapi_url, None, "").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {timeout:?}: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("slapd dir").path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("slapd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `ldapwhoami -x` against `url` (StartTLS for `ldap://`, trusting our CA), binding as
    /// `dn` with `password` when `dn` is given; Ok(its output) or Err(its error).
    pub fn whoami(&self, url: &str, dn: Option<&str>, password: &str) -> Result<String, String> {
        let mut cmd = Command::new("/usr/bin/ldapwhoami");
        // Not LDAPNOINIT: it also disables the LDAPTLS_* variables.
        cmd.env("LDAPCONF", "/dev/null")
            .env("LDAPRC", self.dir().join("no-ldaprc"))
            .env("LDAPTLS_CACERT", &self.ca_file)
            .env("LDAPTLS_REQCERT", "demand")
            .args(["-x", "-o", "nettimeout=5", "-H", url]);
        if url.starts_with("ldap://") {
            cmd.arg("-ZZ");
        }
        if let Some(dn) = dn {
            cmd.args(["-D", dn, "-w", password]);
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "{} {}",
                text,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Stops slapd (SIGTERM, then SIGKILL after 5 s) and waits for it; the directory
    /// and the URLs stay, so clients now find nobody listening.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts slapd again on the same directory, database and ports after [`Slapd::kill`]
    /// (a directory server coming back after an outage).
    pub fn revive(&mut self) {
        if self.child.is_some() {
            return;
        }
        let hosts = format!("{} {} {}", self.ldap_url, self.ldaps_url, self.ldapi_url);
        let child = spawn_slapd(self.dir(), &hosts)
            .unwrap_or_else(|e| panic!("slapd did not come back: {e}"));
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("slapd did not come back: {e}"));
    }

    /// Writes a file in slapd's directory (e.g. a service account's password file).
    pub fn write_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir().join(name);
        let mut f = std::fs::File::create(&p).expect("create");
        f.write_all(content.as_bytes()).expect("write");
        p
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
        // TempDir removes the directory (database, certificates, socket).
        self.dir.take();
    }
}
