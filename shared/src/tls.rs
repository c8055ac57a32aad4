//! TLS for both HTTP clients of a Lambda instance, the upstream's (`reqwest`) and the AWS SDK's:
//! rustls with one crypto provider, ring, and one set of trust anchors, Mozilla's root
//! certificates compiled into the binary (`webpki-root-certs`).
//!
//! Why not the clients' defaults (measured in BENCHMARKS.md, "Tuning log"):
//! - each client read and parsed the operating system's certificate store while it was built,
//!   one after the other (the SDK's on purpose, reqwest's platform verifier too): that was most
//!   of a cold start; compiled-in roots need no file access, so `sms-auth` reaches its first
//!   poll in less than half the time, and they are the same on every Lambda runtime version;
//! - both clients' defaults link aws-lc, a C library, beside rustls; ring is smaller.
//!
//! The price: trusting a new root authority takes a rebuild with a newer `webpki-root-certs`
//! rather than an operating-system update, and the TLS handshakes do not offer the post-quantum
//! key exchange aws-lc has (X25519MLKEM768).

use std::{fmt::Write as _, sync::Arc};

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::{
    Builder,
    tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use rustls::{ClientConfig, RootCertStore, crypto::ring};
use webpki_root_certs::TLS_SERVER_ROOT_CERTS;

/// The rustls configuration of the upstream client ([`crate::ciba::CibaClient`]): ring, the
/// compiled-in roots, TLS 1.2 and 1.3.
pub fn upstream_client_config() -> ClientConfig {
    let mut roots = RootCertStore::empty();
    let (_added, _unparsable) = roots.add_parsable_certificates(TLS_SERVER_ROOT_CERTS.iter().cloned());
    ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls' default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The HTTPS client of every AWS SDK client ([`crate::aws::sdk_config_from_env`]): the SDK's own
/// hyper client, with ring and the same compiled-in roots (the SDK takes them as PEM).
pub fn sdk_http_client() -> Result<SharedHttpClient, aws_smithy_http_client::HttpClientError> {
    let trust_store = TrustStore::empty().with_native_roots(false).with_pem_certificate(roots_pem());
    Ok(Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(TlsContext::builder().with_trust_store(trust_store).build()?)
        .build_https())
}

/// The compiled-in roots as one PEM text.
fn roots_pem() -> String {
    let mut pem = String::with_capacity(TLS_SERVER_ROOT_CERTS.len() * 2200);
    for certificate in TLS_SERVER_ROOT_CERTS {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let base64 = STANDARD.encode(certificate.as_ref());
        for line in base64.as_bytes().chunks(64) {
            // Base64 is ASCII, so every chunk is valid UTF-8.
            let _ = writeln!(pem, "{}", std::str::from_utf8(line).unwrap_or_default());
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    use super::*;

    #[test]
    fn every_compiled_in_root_is_a_trust_anchor_for_both_clients() {
        assert!(TLS_SERVER_ROOT_CERTS.len() > 100, "Mozilla's program has well over 100 roots");
        // The upstream client's store takes them all.
        let mut roots = RootCertStore::empty();
        let (added, unparsable) = roots.add_parsable_certificates(TLS_SERVER_ROOT_CERTS.iter().cloned());
        assert_eq!((added, unparsable), (TLS_SERVER_ROOT_CERTS.len(), 0));
        // The SDK reads the PEM back the way it does (it panics on a certificate it cannot add).
        let from_pem: Vec<CertificateDer> =
            CertificateDer::pem_slice_iter(roots_pem().as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(from_pem.len(), TLS_SERVER_ROOT_CERTS.len());
        assert!(from_pem.iter().zip(TLS_SERVER_ROOT_CERTS).all(|(a, b)| a.as_ref() == b.as_ref()));
        let mut sdk_roots = RootCertStore::empty();
        for certificate in from_pem {
            sdk_roots.add(certificate).expect("the SDK adds each root");
        }
        assert!(sdk_http_client().is_ok());
    }
}
