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

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A CA and a `localhost` certificate it signed, written as PEM files;
    /// returns the files and the CA certificate (for the client).
    fn certificates(dir: &std::path::Path) -> (TlsFiles, CertificateDer<'static>) {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("leaf");
        let files = TlsFiles {
            cert: dir.join("panel.crt"),
            key: dir.join("panel.key"),
        };
        std::fs::write(&files.cert, leaf.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        (files, ca.der().clone())
    }

    /// One HTTP/1.1 GET over TLS; the whole response as text.
    async fn get(addr: SocketAddr, ca: CertificateDer<'static>, path: &str) -> String {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tls_panel_serves_https_and_marks_cookies_secure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (files, ca) = certificates(dir.path());
        let text = format!(
            "[gateway]\nestate_id = \"e\"\ngateway_id = \"g\"\ndata_dir = \"{}\"\n\
             [panel]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            dir.path().join("data").display(),
            files.cert.display(),
            files.key.display()
        );
        let config = crate::config::parse(&text, "tls.toml").expect("config");
        let running = crate::app::start(config).await.expect("starts");
        assert_eq!(running.panel_scheme, "https");
        assert!(
            running
                .setup_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
            "{:?}",
            running.setup_url
        );
        let health = get(running.panel_addr, ca.clone(), "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let login = get(running.panel_addr, ca, "/login").await;
        let cookie = login
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("set-cookie: gh_pre="))
            .unwrap_or_default();
        assert!(cookie.contains("; Secure"), "{login}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(
            login
                .to_ascii_lowercase()
                .contains("strict-transport-security: max-age=31536000"),
            "{login}"
        );
        assert!(running.shutdown().await.is_clean());
    }

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
