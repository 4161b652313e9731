//! TLS for both directions, always with the ring provider and the hub CA only.
//!
//! Server side: our certificate and key from the bootstrap; a client certificate is
//! REQUIRED and must chain to the hub CA (`WebPkiClientVerifier`). Client side (the
//! registration call): the hub's certificate must chain to the same CA and name
//! `steward-hub.internal`; we present our own certificate as client identity.

use rustls::crypto::ring::default_provider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use steward_protocol::bootstrap::UiServerBootstrap;

fn certs(pem: &str, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{what}: bad PEM certificate: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("{what}: no certificate in PEM");
    }
    Ok(certs)
}

fn key(pem: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    // Deliberately no detail from the parser: it must not quote key material.
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| anyhow::anyhow!("key_pem: not a PEM private key"))
}

fn roots(ca_pem: &str) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_pem, "ca_pem")? {
        roots
            .add(c)
            .map_err(|e| anyhow::anyhow!("ca_pem: unusable CA certificate: {e}"))?;
    }
    Ok(roots)
}

pub fn server_config(b: &UiServerBootstrap) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&b.ca_pem)?), provider.clone())
            .build()
            .map_err(|e| anyhow::anyhow!("client verifier: {e}"))?;
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&b.cert_pem, "cert_pem")?, key(&b.key_pem)?)
        .map_err(|e| anyhow::anyhow!("cert_pem/key_pem: {e}"))?;
    Ok(cfg)
}

pub fn client_config(b: &UiServerBootstrap) -> anyhow::Result<ClientConfig> {
    let cfg = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(&b.ca_pem)?)
        .with_client_auth_cert(certs(&b.cert_pem, "cert_pem")?, key(&b.key_pem)?)
        .map_err(|e| anyhow::anyhow!("client identity: {e}"))?;
    Ok(cfg)
}
