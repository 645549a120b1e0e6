//! Opening PostgreSQL connections, for the store and for database sources alike.
//!
//! TLS is used when the URL asks for it (`sslmode=require`, or `prefer`), and then the
//! server's certificate is always verified: against the system's certificate authorities and
//! the PEM file named by `PGSSLROOTCERT` (libpq's variable), for a private CA or a
//! self-signed server. A URL without `sslmode` connects without TLS, like a URL to a server
//! on the same host or a private network usually means; say `sslmode=require` otherwise.

use postgres::config::SslMode;
use postgres::{Client, Config};
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Connects to the database at `url`. Errors name the fix.
pub fn connect(url: &str) -> Result<Client, String> {
    let mut config: Config = url.parse().map_err(|e| format!("the PostgreSQL URL is not valid: {e}"))?;
    if !url.contains("sslmode=") {
        config.ssl_mode(SslMode::Disable);
    }
    if config.get_ssl_mode() == SslMode::Disable {
        return config.connect(postgres::NoTls).map_err(|e| describe(&e));
    }
    config.connect(MakeRustlsConnect::new(tls_config()?)).map_err(|e| describe(&e))
}

/// What the server or the TLS layer said, not only the client's "db error" or "error performing TLS handshake".
fn describe(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: PGSSLROOTCERT may be all that is needed.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = std::env::var_os("PGSSLROOTCERT") {
        let pem = std::fs::read(&path).map_err(|e| format!("PGSSLROOTCERT {}: {e}", path.to_string_lossy()))?;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("PGSSLROOTCERT {} is not a PEM certificate file: {e:?}", path.to_string_lossy()))?;
        for cert in certs {
            roots.add(cert).map_err(|e| format!("PGSSLROOTCERT {}: {e}", path.to_string_lossy()))?;
        }
    }
    if roots.is_empty() {
        return Err("TLS was asked for (sslmode), but no certificate authority is known to verify the server with: \
                    install the system's CA certificates or set PGSSLROOTCERT to the server's CA (PEM)"
            .into());
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}
