//! The plain-HTTP listeners (the panel without TLS, and the device listener
//! the plate cameras push to): hyper's HTTP/1 server with a bound on open
//! connections, a deadline for each request head, the peer's address for the
//! handlers, and a graceful stop.
//!
//! A connection over the bound waits in the kernel's accept queue (it is not
//! accepted, so it costs the gateway nothing); a client that opens a
//! connection and then trickles its request head is cut off at the deadline.
//! Body deadlines belong to the handlers, which know what a body may cost.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// How long open connections may finish their request after the stop.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long to wait after a failed accept (out of file descriptors, say)
/// before accepting again, so a failing accept does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What one listener allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a client has to send a request's head (line and headers).
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` until `cancel`, within `limits`. Handlers
/// can read the peer's address as `ConnectInfo<SocketAddr>`. `name` is for
/// the logs ("panel", "device listener").
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    cancel: CancellationToken,
    name: &'static str,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut connections = JoinSet::new();
    loop {
        // Finished connections are reaped as we go.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = cancel.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(listener = name, %error, "Accept failed; retrying.");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_RETRY) => continue,
                    }
                }
            },
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(listener = name, %peer, %error, "Connection ended with an error.");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(STOP_GRACE) => {
            tracing::debug!(listener = name, "Connections still open at the stop; closing them.");
        }
    }
    connections.shutdown().await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start(limits: Limits) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, router, limits, cancel.clone(), "test"));
        (addr, cancel, task)
    }

    async fn get_peer(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    }

    #[tokio::test]
    async fn handlers_see_the_peer_and_the_stop_ends_the_task() {
        let limits = Limits {
            max_connections: 4,
            header_timeout: Duration::from_secs(10),
        };
        let (addr, cancel, task) = start(limits).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let local = stream.local_addr().unwrap();
        let reply = get_peer(&mut stream).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with(&local.to_string()), "{reply}");
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_trickled_head_is_cut_off_at_the_deadline() {
        let limits = Limits {
            max_connections: 4,
            header_timeout: Duration::from_millis(200),
        };
        let (addr, cancel, task) = start(limits).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /peer HTTP/1.1\r\n").await.unwrap();
        // The rest of the head never comes: the server closes the
        // connection (with a 408 or nothing), never a 200.
        let mut reply = Vec::new();
        // (A reset is as good as a close here.)
        let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut reply))
            .await
            .expect("the server closes a connection whose head does not arrive");
        let reply = String::from_utf8_lossy(&reply);
        assert!(!reply.contains(" 200 "), "{reply}");
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn connections_over_the_bound_wait_until_one_closes() {
        let limits = Limits {
            max_connections: 1,
            header_timeout: Duration::from_secs(10),
        };
        let (addr, cancel, task) = start(limits).await;
        // The first connection holds the only slot, idle but within its
        // deadline.
        let mut first = TcpStream::connect(addr).await.unwrap();
        first.write_all(b"GET /peer HTTP/1.1\r\n").await.unwrap();
        // The second is queued by the kernel, not served.
        let mut second = TcpStream::connect(addr).await.unwrap();
        second
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await;
        assert!(
            early.is_err(),
            "the second connection was served while the first held the only slot"
        );
        // Once the first finishes, the second is served.
        first
            .write_all(b"Host: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        first.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let mut reply = String::new();
        second.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        cancel.cancel();
        task.await.unwrap();
    }
}
