//! Builds drivers from validated device configuration: the one place that
//! maps a config `type` to a driver implementation. Devices on the same
//! Modbus line or TCP peer (barriers and point devices alike) share one bus
//! task (one owner per physical bus), kept in [`Buses`] across reloads: a
//! device built later for a line that runs joins its bus (with its own
//! request timeout), so a reload restarts one device of a shared line
//! without touching the bus or its neighbours; plate cameras get a liveness driver
//! whose tap the ingress listener holds; surveillance cameras leave their
//! handles (status, snapshots) and the places they watch; point devices leave their live
//! view for the panel, metrics and telemetry API.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use drivers::DeviceId;
use drivers::barrier::{BarrierConfig, BarrierDriver, BusConfig, BusHandle, ModbusBus, Transport};
use drivers::camera::{CameraConfig, CameraDriver, CameraHandle, Credentials};
use drivers::door::wg_driver::WgController;
use drivers::intercom::dahua_driver::DahuaVto;
use drivers::intercom::hik_driver::HikStation;
use drivers::intercom::mqtt_driver::MqttStation;
use drivers::points::{PointsConfig, PointsDriver, PointsView};
use drivers::sim::TankSim;

use crate::config::{CameraVendor, DeviceConfig, DeviceKind, ModbusTransport, Station};
use crate::doors::hardware::{self as door_hardware, SimHardware};
use crate::lanes::link::{CameraLink, Seen};
use crate::supervisor::Supervised;

/// The drivers to supervise, and the taps of the push-only cameras.
#[derive(Debug, Default)]
pub struct Built {
    /// One per configured device, in configuration order.
    pub supervised: Vec<Supervised>,
    /// Plate cameras: id → (vendor, liveness tap).
    pub cameras: HashMap<String, (CameraVendor, Seen)>,
    /// The Modbus buses this build opened (lines no running bus served),
    /// by name, for the caller to run as owned tasks ([`ModbusBus::run`]).
    pub buses: Vec<(String, ModbusBus)>,
    /// Modbus point devices: their live points (panel, metrics, API).
    pub points: Vec<PointDevice>,
    /// Surveillance cameras (`onvif-camera`): their handles and what they
    /// watch.
    pub cctv: Vec<CctvDevice>,
}

/// An `onvif-camera` device as the snapshot task and the panel see it.
#[derive(Debug, Clone)]
pub struct CctvDevice {
    /// Device id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its live status and snapshots (the driver writes, everyone else reads).
    pub handle: CameraHandle,
    /// Lanes and doors it watches.
    pub places: Vec<String>,
    /// A snapshot not complete within this is given up.
    pub snapshot_deadline: Duration,
    /// A larger snapshot is refused.
    pub snapshot_max_bytes: usize,
}

/// A `modbus-points` device as the panel, metrics and telemetry API see it.
#[derive(Debug, Clone)]
pub struct PointDevice {
    /// Device id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its points' live state (the driver writes, everyone else reads).
    pub view: PointsView,
}

/// The Modbus buses that run, one per line or TCP peer, by transport: what
/// a device joins when it is built. Holding a handle keeps a bus's task
/// alive; [`Buses::keep_only`] lets go of lines no device uses any more
/// (their task ends once their devices' drivers have stopped), and dropping
/// the registry lets every bus end with its last device.
#[derive(Debug, Default)]
pub struct Buses {
    handles: HashMap<ModbusTransport, BusHandle>,
}

impl Buses {
    /// The bus of `transport`: the running one, or a new one put in `new`
    /// for the caller to run.
    fn handle(
        &mut self,
        transport: &ModbusTransport,
        timeout: std::time::Duration,
        new: &mut Vec<(String, ModbusBus)>,
    ) -> BusHandle {
        self.handles
            .entry(transport.clone())
            .or_insert_with(|| {
                let (bus, handle) = ModbusBus::new(BusConfig {
                    transport: match transport {
                        ModbusTransport::Tcp(addr) => Transport::Tcp { addr: *addr },
                        ModbusTransport::Rtu { path, baud } => Transport::Rtu {
                            path: path.into(),
                            baud: *baud,
                        },
                    },
                    timeout,
                });
                new.push((format!("modbus bus {transport:?}"), bus));
                handle
            })
            .with_timeout(timeout)
    }

    /// Lets go of the buses of lines none of `devices` is on; returns how
    /// many.
    pub fn keep_only(&mut self, devices: &[DeviceConfig]) -> usize {
        let before = self.handles.len();
        self.handles
            .retain(|transport, _| devices.iter().any(|d| modbus_line(d) == Some(transport)));
        before - self.handles.len()
    }

    /// How many buses are held.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

/// The Modbus line or TCP peer `device` is on, if it is on one.
pub fn modbus_line(device: &DeviceConfig) -> Option<&ModbusTransport> {
    match &device.kind {
        DeviceKind::ModbusBarrier { transport, .. }
        | DeviceKind::ModbusPoints { transport, .. } => Some(transport),
        _ => None,
    }
}

/// A supervised driver for each configured device (not yet running: the
/// caller starts them); a Modbus device joins its line's bus in `buses`,
/// and the buses this opened are in [`Built::buses`] for the caller to
/// run. Devices on simulated GPIO lines leave their simulator ends in
/// `sim`.
pub fn build(devices: &[DeviceConfig], sim: &SimHardware, buses: &mut Buses) -> Built {
    let mut built = Built::default();
    for device in devices {
        let driver: Box<dyn drivers::Driver> = match &device.kind {
            DeviceKind::SimTank { height_m, interval } => {
                Box::new(TankSim::new(*height_m, *interval, seed(&device.id)))
            }
            DeviceKind::LprCamera {
                vendor,
                offline_after,
                ..
            } => {
                let (link, seen) = CameraLink::new(*offline_after, vendor.replies_open());
                built.cameras.insert(device.id.clone(), (*vendor, seen));
                Box::new(link)
            }
            DeviceKind::ModbusBarrier {
                transport,
                slave,
                map,
                lane,
                poll_interval,
                timeout,
            } => {
                let bus = buses.handle(transport, *timeout, &mut built.buses);
                let mut config = BarrierConfig::new(*slave, map.clone());
                config.lane = lane.clone();
                config.poll_interval = *poll_interval;
                Box::new(BarrierDriver::new(bus, config))
            }
            DeviceKind::ModbusPoints {
                transport,
                slave,
                table,
                timeout,
                max_gap,
                full_report,
                backoff_max,
            } => {
                let bus = buses.handle(transport, *timeout, &mut built.buses);
                let mut config = PointsConfig::new(*slave, std::sync::Arc::clone(table));
                config.max_gap = *max_gap;
                config.full_report = *full_report;
                config.backoff_max = *backoff_max;
                let view = PointsView::new(std::sync::Arc::clone(table));
                built.points.push(PointDevice {
                    id: device.id.clone(),
                    name: device.name.clone(),
                    view: view.clone(),
                });
                Box::new(PointsDriver::new(bus, config, view))
            }
            DeviceKind::WiegandReader {
                gpio,
                d0,
                d1,
                wiegand,
                door,
            } => door_hardware::wiegand_reader(&device.id, gpio, d0, d1, *wiegand, *door, sim),
            DeviceKind::OnvifCamera(camera) => {
                let credentials = camera.username.as_ref().map(|username| Credentials {
                    username: username.clone(),
                    password: camera
                        .password
                        .as_ref()
                        .map(|p| p.expose().to_owned())
                        .unwrap_or_default(),
                });
                let mut config = CameraConfig::new(&camera.address, credentials);
                config.drift_alarm = camera.drift_alarm;
                let driver = CameraDriver::new(config);
                built.cctv.push(CctvDevice {
                    id: device.id.clone(),
                    name: device.name.clone(),
                    handle: driver.handle(),
                    places: camera.lanes.iter().chain(&camera.doors).cloned().collect(),
                    snapshot_deadline: camera.snapshot_timeout,
                    snapshot_max_bytes: usize::try_from(camera.snapshot_max_bytes)
                        .unwrap_or(usize::MAX),
                });
                Box::new(driver)
            }
            DeviceKind::SerialReader(config) => door_hardware::serial_reader(config),
            DeviceKind::WgController(config) => Box::new(WgController::new(config.clone())),
            DeviceKind::Door {
                gpio,
                relay,
                contact,
                exit_button,
                hardware,
            } => door_hardware::door(
                &device.id,
                gpio,
                relay,
                contact,
                exit_button.as_ref(),
                *hardware,
                sim,
            ),
            DeviceKind::Intercom(station) => match station {
                Station::Hik(config) => Box::new(HikStation::new((**config).clone())),
                Station::Dahua(config) => Box::new(DahuaVto::new((**config).clone())),
                Station::Mqtt(config) => Box::new(MqttStation::new((**config).clone())),
            },
        };
        built.supervised.push(Supervised {
            id: DeviceId::new(device.id.as_str()),
            name: device.name.clone(),
            driver,
        });
    }
    built
}

/// A stable per-device seed, so each simulated device behaves differently
/// but the same on every run.
fn seed(id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_configured_device_gets_a_driver_of_its_type() {
        let barrier = |id: &str, slave: u8| DeviceConfig {
            id: id.into(),
            name: id.into(),
            kind: DeviceKind::ModbusBarrier {
                transport: ModbusTransport::Rtu {
                    path: "/dev/ttyUSB0".into(),
                    baud: 9600,
                },
                slave,
                map: drivers::barrier::Preset::WaveshareRtuRelay
                    .map()
                    .expect("preset map"),
                lane: drivers::barrier::LaneConfig::default(),
                poll_interval: Duration::from_millis(50),
                timeout: Duration::from_millis(300),
            },
        };
        let devices = vec![
            DeviceConfig {
                id: "tank-1".into(),
                name: "1号楼水箱".into(),
                kind: DeviceKind::SimTank {
                    height_m: 4.0,
                    interval: Duration::from_secs(1),
                },
            },
            DeviceConfig {
                id: "cam-1".into(),
                name: "南门相机".into(),
                kind: DeviceKind::LprCamera {
                    vendor: CameraVendor::Vzenith,
                    lane: "south-in".into(),
                    offline_after: Duration::from_secs(90),
                },
            },
            barrier("barrier-1", 1),
            barrier("barrier-2", 2),
        ];
        let mut buses = Buses::default();
        let built = build(&devices, &SimHardware::default(), &mut buses);
        let kinds: Vec<_> = built.supervised.iter().map(|s| s.driver.kind()).collect();
        assert_eq!(
            kinds,
            vec!["sim-tank", "lpr-camera", "modbus-barrier", "modbus-barrier"]
        );
        assert_eq!(built.supervised[0].name, "1号楼水箱");
        assert!(built.cameras.contains_key("cam-1"));
        assert_ne!(seed("tank-1"), seed("tank-2"));
        assert_eq!(built.buses.len(), 1, "one bus for the shared line");

        // A device built later for the same line joins the running bus.
        let later = build(
            &[barrier("barrier-3", 3)],
            &SimHardware::default(),
            &mut buses,
        );
        assert!(later.buses.is_empty(), "no second owner of the line");
        assert_eq!(later.supervised.len(), 1);
        // The line is let go of only when no device is on it.
        assert_eq!(buses.keep_only(&devices), 0);
        assert_eq!(buses.keep_only(&devices[..2]), 1);
        assert!(buses.is_empty());
    }
}
