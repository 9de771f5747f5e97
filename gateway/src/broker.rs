//! The embedded MQTT broker: rumqttd in-process, for `gatehouse demo` and
//! the tests, so the uplink has a real broker to talk to without anything
//! installed. It keeps nothing on disk (retained messages and sessions live
//! in memory) and cannot be stopped before the process exits: production
//! estates use mosquitto or the platform's EMQX/NATS cluster instead.
//!
//! # The bound port
//!
//! rumqttd binds its listener itself (`TcpListener::bind(config.listen)`
//! inside its server thread) and neither reports the bound address nor
//! accepts a listener we bound. For `listen` with port 0 we therefore pick a
//! free port by binding `IP:0` and releasing it, and give that port to
//! rumqttd. That is racy (another process may take the port in between),
//! so the race is detected, not ignored: when rumqttd's bind fails its
//! server thread ends, [`start`] sees that and tries again with a new port
//! (up to [`ATTEMPTS`] times). Reading the port back from `/proc` was
//! rejected: in one test process many listeners come and go concurrently,
//! and nothing ties a socket to rumqttd's thread.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often a free port is picked again when rumqttd lost the race for it.
pub const ATTEMPTS: usize = 5;
/// How long rumqttd may take to listen.
const LISTEN_DEADLINE: Duration = Duration::from_secs(5);
/// How long a listening port must stay ours before it is trusted.
const CONFIRM: Duration = Duration::from_millis(50);
/// How long the readiness probe waits for the broker's CONNACK.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest message the broker accepts (list snapshots can be big).
const MAX_PAYLOAD: usize = 16 << 20;

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No port could be had, or rumqttd could not listen.
    #[error("embedded broker on {addr}: {reason}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// A running embedded broker.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    /// Where it listens (the real port).
    pub addr: SocketAddr,
}

fn config(addr: SocketAddr) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: 1000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "gatehouse-embedded".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 1000,
            // The commit log is in memory: keep it small for a Pi.
            max_segment_size: 4 << 20,
            max_segment_count: 8,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    }
}

/// Whether an MQTT broker on `addr` completes a CONNECT handshake. A real
/// client, not a bare TCP connect, which rumqttd logs as an error. The
/// client blocks on a runtime of its own, so it runs on a thread of its own
/// (the caller may be inside a runtime).
fn answers_mqtt(addr: SocketAddr) -> bool {
    std::thread::spawn(move || mqtt_handshake(addr))
        .join()
        .unwrap_or(false)
}

fn mqtt_handshake(addr: SocketAddr) -> bool {
    let mut options =
        rumqttc::MqttOptions::new("gatehouse-broker-probe", addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(5));
    let (_client, mut connection) = rumqttc::Client::new(options, 1);
    // No DISCONNECT afterwards: rumqttd would count it and the socket's
    // close as two disconnections and log an error for the second. A bare
    // close after CONNACK is an ordinary, quiet disconnection.
    matches!(
        connection.recv_timeout(PROBE_TIMEOUT),
        Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))))
    )
}

fn free_port(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    TcpListener::bind(addr)?.local_addr()
}

/// Starts the broker on `listen` (port 0: a free port) and returns once it
/// accepts connections. Blocks for that long: call it on the blocking pool.
pub fn start(listen: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
    let fail = |reason: String| BrokerError::Listen {
        addr: listen,
        reason,
    };
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let addr = if listen.port() == 0 {
            free_port(listen).map_err(|e| fail(format!("no free port: {e}")))?
        } else {
            listen
        };
        let (ended_tx, ended) = mpsc::channel::<()>();
        let mut broker = rumqttd::Broker::new(config(addr));
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                // Returns only when every server thread ended (a failed bind).
                let result = broker.start();
                if let Err(error) = result {
                    tracing::error!(%error, "The embedded MQTT broker stopped.");
                }
                let _ = ended_tx.send(());
            })
            .map_err(|e| fail(format!("thread: {e}")))?;
        let deadline = Instant::now() + LISTEN_DEADLINE;
        loop {
            if ended.try_recv().is_ok() {
                last = format!("rumqttd could not listen on {addr}");
                break;
            }
            if answers_mqtt(addr) {
                // Still ours? A failed bind ends rumqttd's thread within
                // moments; give it that long to show.
                std::thread::sleep(CONFIRM);
                if ended.try_recv().is_ok() {
                    last = format!("port {} was taken", addr.port());
                    break;
                }
                tracing::info!(%addr, "Embedded MQTT broker listening.");
                return Ok(EmbeddedBroker { addr });
            }
            if Instant::now() >= deadline {
                return Err(fail("rumqttd did not start listening in time".into()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if listen.port() != 0 {
            break;
        }
    }
    Err(fail(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gets_a_real_listening_port() {
        let broker = start("127.0.0.1:0".parse().expect("addr")).expect("starts");
        assert_ne!(broker.addr.port(), 0);
        std::net::TcpStream::connect(broker.addr).expect("accepts connections");
    }

    #[test]
    fn a_taken_fixed_port_is_an_error_not_a_hang() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        // Our own listener answers connects, but rumqttd's bind fails and its
        // thread ends: that must be noticed.
        let result = start(addr);
        assert!(result.is_err(), "{result:?}");
    }
}
