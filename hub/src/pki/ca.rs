//! The hub as a certificate authority for its UI servers.
//!
//! Every spawned server gets a fresh key and a certificate naming it
//! (`<server>.<owner>.uiserver.steward`), handed over on its stdin. The hub's internal
//! listener and its client identity use certificates from the same CA, so the internal
//! plane trusts only this CA and nothing else. The CA key lives in the data directory
//! (0600); a restarted hub keeps talking to servers it started before.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::Path;
use std::sync::Arc;
use steward_protocol::bootstrap::{uiserver_dns_name, HUB_INTERNAL_NAME};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate authority: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("certificate authority file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
}

pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    /// The hub's client identity towards UI servers.
    hub_client: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    /// The internal listener's server identity.
    hub_server: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Steward hub internal CA");
    dn.push(DnType::OrganizationName, "Steward");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    Ok(params)
}

fn write_private(path: &Path, data: &str) -> Result<(), CaError> {
    crate::util::fsutil::write_private(path, data.as_bytes()).map_err(|source| CaError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    cn: &str,
    dns: Vec<String>,
    client: bool,
    server: bool,
) -> Result<Issued, CaError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(dns)?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = [
        client.then_some(ExtendedKeyUsagePurpose::ClientAuth),
        server.then_some(ExtendedKeyUsagePurpose::ServerAuth),
    ]
    .into_iter()
    .flatten()
    .collect();
    let now = time_now();
    params.not_before = now - std::time::Duration::from_secs(300);
    params.not_after = now + std::time::Duration::from_secs(400 * 24 * 3600);
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn time_now() -> time::OffsetDateTime {
    let secs = chrono::Utc::now().timestamp();
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn parse_chain(
    issued: &Issued,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CaError> {
    let cert = pem_to_der(&issued.cert_pem)?;
    let key = pem_to_der(&issued.key_pem)?;
    Ok((
        vec![CertificateDer::from(cert)],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
    ))
}

/// The single base64 block of a PEM document.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, CaError> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| CaError::Tls(format!("bad PEM: {e}")))
}

impl Ca {
    /// Loads the CA from `dir`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> Result<Ca, CaError> {
        let key_path = dir.join("ca.key");
        let cert_path = dir.join("ca.crt");
        let params = ca_params()?;
        let (key, ca_pem) = if key_path.exists() && cert_path.exists() {
            let key_pem = std::fs::read_to_string(&key_path).map_err(|source| CaError::Io {
                path: key_path.display().to_string(),
                source,
            })?;
            let ca_pem = std::fs::read_to_string(&cert_path).map_err(|source| CaError::Io {
                path: cert_path.display().to_string(),
                source,
            })?;
            (KeyPair::from_pem(&key_pem)?, ca_pem)
        } else {
            let key = KeyPair::generate()?;
            let cert = params.self_signed(&key)?;
            write_private(&key_path, &key.serialize_pem())?;
            write_private(&cert_path, &cert.pem())?;
            (key, cert.pem())
        };
        let ca_der = CertificateDer::from(pem_to_der(&ca_pem)?);
        let issuer = Issuer::new(params, key);
        let hub_client = parse_chain(&leaf(
            &issuer,
            "steward-hub",
            vec![HUB_INTERNAL_NAME.into()],
            true,
            false,
        )?)?;
        let hub_server = parse_chain(&leaf(
            &issuer,
            "steward-hub",
            vec![HUB_INTERNAL_NAME.into()],
            false,
            true,
        )?)?;
        Ok(Ca {
            issuer,
            ca_pem,
            ca_der,
            hub_client,
            hub_server,
        })
    }

    /// A fresh identity for one UI server; never stored by the hub.
    pub fn issue_uiserver(&self, owner: &str, server: &str) -> Result<Issued, CaError> {
        leaf(
            &self.issuer,
            &format!("{owner}/{server}"),
            vec![uiserver_dns_name(owner, server)],
            true,
            true,
        )
    }

    fn roots(&self) -> Result<rustls::RootCertStore, CaError> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .map_err(|e| CaError::Tls(e.to_string()))?;
        Ok(roots)
    }

    /// Client config for hub → UI server connections (presents the hub identity).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, CaError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CaError::Tls(e.to_string()))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.hub_client.0.clone(), self.hub_client.1.clone_key())
            .map_err(|e| CaError::Tls(e.to_string()))?;
        Ok(Arc::new(cfg))
    }

    /// Server config for the internal listener: only certificates from this CA get in.
    pub fn internal_server_config(&self) -> Result<rustls::ServerConfig, CaError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.roots()?),
            provider.clone(),
        )
        .build()
        .map_err(|e| CaError::Tls(e.to_string()))?;
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CaError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.hub_server.0.clone(), self.hub_server.1.clone_key())
            .map_err(|e| CaError::Tls(e.to_string()))
    }
}

fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<rustls::sign::CertifiedKey>, CaError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| CaError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let mut chain = vec![];
    for block in cert_pem.split("-----END CERTIFICATE-----") {
        if block.contains("-----BEGIN CERTIFICATE-----") {
            chain.push(CertificateDer::from(pem_to_der(&format!(
                "{block}-----END CERTIFICATE-----"
            ))?));
        }
    }
    if chain.is_empty() {
        return Err(CaError::Tls(format!(
            "{}: no certificate found",
            cert.display()
        )));
    }
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pem_to_der(&key_pem)?));
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| CaError::Tls(format!("{}: {e}", key.display())))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(chain, signing)))
}

/// The public certificate, swappable at runtime (SIGHUP) without restarting listeners.
#[derive(Debug)]
pub struct ReloadableCert {
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl ReloadableCert {
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<ReloadableCert>, CaError> {
        Ok(Arc::new(ReloadableCert {
            current: std::sync::RwLock::new(load_certified_key(cert, key)?),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }))
    }

    /// Re-reads both files; on any error the certificate in use stays.
    pub fn reload(&self) -> Result<(), CaError> {
        let fresh = load_certified_key(&self.cert, &self.key)?;
        if let Ok(mut c) = self.current.write() {
            *c = fresh;
        }
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for ReloadableCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// Public listener TLS using the reloadable certificate.
pub fn public_server_config(cert: Arc<ReloadableCert>) -> Result<rustls::ServerConfig, CaError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A self-signed CA plus a server certificate for `names`, for `steward demo`.
pub fn self_signed_public(names: Vec<String>) -> Result<(String, String, String), CaError> {
    let ca_key = KeyPair::generate()?;
    let mut params = ca_params()?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Steward demo CA");
    let ca_cert = params.self_signed(&ca_key)?;
    let issuer = Issuer::new(params, ca_key);
    let issued = leaf(&issuer, "steward demo", names, false, true)?;
    Ok((issued.cert_pem, issued.key_pem, ca_cert.pem()))
}
