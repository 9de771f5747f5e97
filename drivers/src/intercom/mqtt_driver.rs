//! The MQTT door-station driver: one MQTT session per station (on the
//! embedded broker or an external one), subscribed to the station's topics;
//! messages go through [`StationMap::decode`] and the call tracker, and an
//! unlock publishes the configured payload (QoS 1) to the command topic.
//!
//! A broker that cannot be reached, or a session that drops, ends the run
//! with a transient error; the supervisor reconnects with backoff.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use super::calls::CallTracker;
use super::mqtt::{StationMap, unlock_payload};
use super::{Signal, clip};
use crate::command::{Command, CommandOutcome};
use crate::contract::{Driver, DriverContext, DriverError, now_ms};

/// How to reach one MQTT station.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttStationConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id (unique per station).
    pub client_id: String,
    /// Broker credentials, if it wants them (the password is never logged).
    pub credentials: Option<(String, String)>,
    /// Topics and pointers.
    pub map: StationMap,
    /// Where an unlock is published.
    pub command_topic: String,
    /// The unlock payload; `{door}` is replaced by the door number.
    pub command_payload: String,
    /// The door an unlock opens when the command does not say.
    pub door: u8,
}

impl std::fmt::Debug for MqttStationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttStationConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("map", &self.map)
            .field("command_topic", &self.command_topic)
            .field("command_payload", &self.command_payload)
            .field("door", &self.door)
            .finish()
    }
}

/// The driver.
#[derive(Debug)]
pub struct MqttStation {
    config: MqttStationConfig,
    calls: CallTracker,
    rejected: u64,
}

impl MqttStation {
    /// A driver for one station.
    pub fn new(config: MqttStationConfig) -> Self {
        Self {
            config,
            calls: CallTracker::new(),
            rejected: 0,
        }
    }

    async fn session(&mut self, ctx: &mut DriverContext) -> Result<(), DriverError> {
        let c = &self.config;
        let mut options = MqttOptions::new(&c.client_id, &c.host, c.port);
        options.set_keep_alive(Duration::from_secs(15));
        options.set_max_packet_size(super::mqtt::MAX_PAYLOAD + 1024, 4096);
        if let Some((user, password)) = &c.credentials {
            options.set_credentials(user, password);
        }
        let (client, mut events) = AsyncClient::new(options, 16);
        for topic in c.map.topics.all() {
            client
                .subscribe(topic, QoS::AtLeastOnce)
                .await
                .map_err(|e| DriverError::Transient(e.to_string()))?;
        }
        loop {
            tokio::select! {
                () = ctx.cancel.cancelled() => {
                    let _ = client.disconnect().await;
                    return Ok(());
                }
                request = ctx.commands.recv() => {
                    let Some(request) = request else { return Ok(()) };
                    let outcome = match &request.command {
                        Command::PulseDoor { door, .. } => {
                            let payload = unlock_payload(&self.config.command_payload, door.unwrap_or(self.config.door));
                            match client.try_publish(&self.config.command_topic, QoS::AtLeastOnce, false, payload) {
                                Ok(()) => CommandOutcome::Done,
                                Err(e) => CommandOutcome::Failed(clip(&e.to_string(), 120)),
                            }
                        }
                        Command::SafeState | Command::Poll => CommandOutcome::Done,
                        _ => CommandOutcome::Unsupported,
                    };
                    request.answer(outcome);
                }
                event = events.poll() => match event {
                    Err(e) => return Err(DriverError::Transient(clip(&e.to_string(), 120))),
                    Ok(Event::Incoming(Packet::ConnAck(_))) => ctx.health.ok(),
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        ctx.health.ok();
                        match self.config.map.decode(&publish.topic, &publish.payload) {
                            Ok(signals) => {
                                for signal in signals {
                                    if signal == Signal::Heartbeat {
                                        continue;
                                    }
                                    for event in self.calls.apply(signal, now_ms()) {
                                        ctx.events.emit(event).await?;
                                    }
                                }
                            }
                            Err(_) => self.rejected += 1,
                        }
                    }
                    Ok(_) => {}
                },
            }
        }
    }
}

impl Driver for MqttStation {
    fn kind(&self) -> &'static str {
        "mqtt-intercom"
    }

    fn run<'a>(&'a mut self, ctx: &'a mut DriverContext) -> BoxFuture<'a, Result<(), DriverError>> {
        self.session(ctx).boxed()
    }
}
