//! How a node reaches PostgreSQL: the database URL read into the driver's settings, with
//! TLS as libpq's `sslmode` and `sslrootcert` ask for it.
//!
//! Owns the URL's TLS parameters and the certificate checks they stand for:
//! - `disable`: plain TCP;
//! - `prefer` (the default, as in libpq): TLS when the server offers it, without checking
//!   its certificate, else plain TCP;
//! - `require`: TLS or no connection; the certificate is not checked unless `sslrootcert`
//!   names a file, which makes it `verify-ca`, as in libpq;
//! - `verify-ca`: TLS, the certificate chained to `sslrootcert` (a PEM file) or, without
//!   it, to the Mozilla roots compiled in;
//! - `verify-full`: `verify-ca`, and the certificate names the host connected to.
//!
//! It must never accept a certificate it was asked to verify without verifying it, and never
//! let a mode that requires TLS fall back to plain text.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asks of the connection's encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Why a database URL cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("sslmode must be disable, prefer, require, verify-ca or verify-full, not {0:?}")]
    Mode(String),
    #[error("sslrootcert {path}: {why}")]
    RootCert { path: String, why: String },
    #[error("{0}")]
    Driver(String),
}

/// The URL's own settings, and its TLS parameters taken out of it (pure).
#[derive(Debug, PartialEq, Eq)]
struct Split {
    /// The URL without `sslmode` and `sslrootcert`, for the driver.
    rest: String,
    mode: Mode,
    root_cert: Option<String>,
}

fn split(url: &str) -> Result<Split, UrlError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let (mut mode, mut root_cert, mut kept) = (None, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "sslmode" => {
                mode = Some(match value.as_str() {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => return Err(UrlError::Mode(other.to_owned())),
                })
            }
            "sslrootcert" => root_cert = Some(value),
            _ => kept.push(pair),
        }
    }
    let mut mode = mode.unwrap_or(Mode::Prefer);
    if mode == Mode::Require && root_cert.is_some() {
        mode = Mode::VerifyCa;
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Split {
        rest,
        mode,
        root_cert,
    })
}

/// `%XX` sequences decoded (a path in a URL's query is written so).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The driver's settings for `url` and the TLS connector its `sslmode` asks for.
pub fn connection(url: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), UrlError> {
    let split = split(url)?;
    let mut config: tokio_postgres::Config = split
        .rest
        .parse()
        .map_err(|e: tokio_postgres::Error| UrlError::Driver(e.to_string()))?;
    config.ssl_mode(match split.mode {
        Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    });
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| UrlError::Driver(format!("TLS: {e}")))?;
    let tls = match split.mode {
        Mode::Disable | Mode::Prefer | Mode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(
                provider.signature_verification_algorithms,
            ))),
        Mode::VerifyCa | Mode::VerifyFull => {
            let roots = Arc::new(roots(split.root_cert.as_deref())?);
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| UrlError::Driver(format!("TLS: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Verified {
                    inner,
                    check_name: split.mode == Mode::VerifyFull,
                }))
        }
    }
    .with_no_client_auth();
    Ok((config, MakeRustlsConnect::new(tls)))
}

/// The certificates of `path` (PEM), or the Mozilla roots compiled in.
fn roots(path: Option<&str>) -> Result<RootCertStore, UrlError> {
    let Some(path) = path else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let failed = |why: String| UrlError::RootCert {
        path: path.to_owned(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(failed("holds no usable certificate".into()));
    }
    Ok(store)
}

/// `verify-ca` and `verify-full`: the chain checked against the roots; the name only for
/// `verify-full`.
#[derive(Debug)]
struct Verified {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root: encrypted, the server's identity unchecked (the
/// handshake's own signatures still are), as libpq does.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> Mode {
        split(url).expect("valid").mode
    }

    #[test]
    fn without_sslmode_a_url_prefers_tls_as_libpq_does() {
        assert_eq!(mode("postgres://u@h/db"), Mode::Prefer);
        assert_eq!(mode("postgres://u@h/db?application_name=x"), Mode::Prefer);
    }

    #[test]
    fn every_libpq_mode_is_read_and_others_are_refused_by_name() {
        for (given, want) in [
            ("disable", Mode::Disable),
            ("allow", Mode::Prefer),
            ("prefer", Mode::Prefer),
            ("require", Mode::Require),
            ("verify-ca", Mode::VerifyCa),
            ("verify-full", Mode::VerifyFull),
        ] {
            assert_eq!(mode(&format!("postgres://h/db?sslmode={given}")), want);
        }
        assert_eq!(
            split("postgres://h/db?sslmode=strict"),
            Err(UrlError::Mode("strict".into()))
        );
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
        let s = split("postgres://h/db?sslmode=require&sslrootcert=%2Fetc%2Fca.pem").expect("ok");
        assert_eq!(s.mode, Mode::VerifyCa);
        assert_eq!(s.root_cert.as_deref(), Some("/etc/ca.pem"));
    }

    #[test]
    fn the_tls_parameters_are_taken_out_and_the_rest_is_kept_in_order() {
        let s = split("postgres://u:p@h:5/db?connect_timeout=3&sslmode=verify-full&sslrootcert=ca.pem&application_name=n")
            .expect("ok");
        assert_eq!(
            s.rest,
            "postgres://u:p@h:5/db?connect_timeout=3&application_name=n"
        );
        assert_eq!(
            split("postgres://h/db?sslmode=disable").expect("ok").rest,
            "postgres://h/db"
        );
    }

    #[test]
    fn a_missing_or_empty_root_certificate_file_is_named_in_the_error() {
        let missing =
            connection("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        assert!(
            matches!(missing, Err(UrlError::RootCert { ref path, .. }) if path == "/nonexistent/ca.pem")
        );
        let dir = std::env::temp_dir().join(format!("hookgate-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let url = format!(
            "postgres://h/db?sslmode=verify-ca&sslrootcert={}",
            empty.display()
        );
        let err = connection(&url).err().expect("refused");
        assert!(err.to_string().contains("no usable certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn percent_escapes_in_a_parameter_are_decoded() {
        assert_eq!(percent_decode("%2Fa%20b%zz"), "/a b%zz");
    }
}
