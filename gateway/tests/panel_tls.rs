//! The panel over TLS, through a whole gateway: HTTPS served with the
//! configured certificate, the setup link in `https://`, cookies marked
//! `Secure`.

use std::net::SocketAddr;
use std::sync::Arc;

use gateway::config::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
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
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
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
    let config = gateway::config::parse(&text, "tls.toml").expect("config");
    let running = gateway::app::start(config).await.expect("starts");
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
