//! TLS for the panel listener (optional): rustls with the *ring* provider
//! (it builds without cmake or a system OpenSSL), served by `axum-server`.
//! The certificate chain and key are PEM files named in `[panel]`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::TlsFiles;

/// How long open connections get to finish when the listener stops.
const GRACE: Duration = Duration::from_secs(3);

/// Reads the certificate chain and key into a server configuration.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("certificate {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate {}: no certificate found",
            files.cert.display()
        ));
    }
    // The key's contents never appear in the message.
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("private key {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not fit: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    config: Arc<rustls::ServerConfig>,
    cancel: CancellationToken,
) {
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "Panel TLS listener failed.");
            return;
        }
    };
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        cancel.cancelled().await;
        stopper.graceful_shutdown(Some(GRACE));
    });
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(config));
    if let Err(error) = server.handle(handle).serve(app).await {
        tracing::error!(%error, "Panel TLS listener failed.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_config_reports_missing_files_by_name() {
        let files = TlsFiles {
            cert: "/nonexistent/panel.crt".into(),
            key: "/nonexistent/panel.key".into(),
        };
        let error = server_config(&files).expect_err("missing files");
        assert!(error.contains("/nonexistent/panel.crt"), "{error}");
    }
}
