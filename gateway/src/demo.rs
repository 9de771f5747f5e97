//! The simulated estate behind `gatehouse demo`: barrier controllers and the
//! facility devices (a water-supply pump room, an elevator) as Modbus TCP
//! servers on loopback, seeded vehicle lists, and traffic — plate
//! cameras posting real payload shapes (with generated JPEG snapshots of
//! the plate) for residents, a visitor, a
//! blacklisted car, an unknown car and a misread plate, with the cars
//! driving over the loops so the arms rise and fall; building 3's door
//! station (a simulated Hikvision video intercom) that rings now and then —
//! answered, or given up as a missed call.
//!
//! Only the demo uses this module; the same simulators serve the tests.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use drivers::PlateColour;
use drivers::lpr::Vendor;
use drivers::sim::barrier::{BarrierSim, BarrierSimConfig, SimHandle};
use drivers::sim::camera::{CameraSim, SimPlate};
use drivers::sim::facility::{Dynamics, Elevator, FacilitySim, WaterSupply};
use drivers::sim::hik_station::HikStationSim;
use drivers::sim::onvif::{OnvifSim, SimCameraConfig};
use rand::seq::IndexedRandom;
use tokio_util::sync::CancellationToken;

use crate::app::Running;
use crate::config::{CameraVendor, Config, DeviceConfig, DeviceKind, ModbusTransport, Station};
use crate::lists::plates::{NewVisitorPass, PlateRegistry};
use crate::rules::vehicle::{Blacklisted, Resident};

/// The simulated devices of the demo estate.
#[derive(Debug, Default)]
pub struct DemoEstate {
    /// Barrier simulators by lane id.
    barriers: HashMap<String, SimHandle>,
    /// The Modbus facility simulator (pump room, elevator).
    facility: Option<FacilitySim>,
    /// Simulated surveillance cameras (`onvif-camera` at `127.0.0.1:0`).
    cctv: Vec<OnvifSim>,
    /// Building 3's door station.
    station: Option<HikStationSim>,
}

/// The demo's door station: its device id and name.
pub const DEMO_STATION: (&str, &str) = ("b3-door-station", "3号楼门口机");

/// Starts a barrier simulator for every `modbus-barrier` device whose
/// address is on loopback port 0, and points the device at it.
pub async fn prepare(config: &mut Config) -> std::io::Result<DemoEstate> {
    let mut estate = DemoEstate::default();
    let lane_of: HashMap<String, String> = config
        .lanes
        .iter()
        .filter_map(|l| Some((l.barrier.clone()?, l.id.clone())))
        .collect();
    for device in &mut config.devices {
        if let DeviceKind::OnvifCamera(camera) = &mut device.kind
            && camera.address == "http://127.0.0.1:0/onvif/device_service"
        {
            let sim = OnvifSim::start(SimCameraConfig {
                model: "Gatehouse demo camera".into(),
                serial: device.id.clone(),
                ..SimCameraConfig::default()
            })
            .await?;
            camera.address = sim.device_url();
            // The unit door's camera also sees the door station's callers.
            if camera.doors.iter().any(|d| d == "b3-u1") {
                camera.doors.push(DEMO_STATION.0.to_owned());
            }
            estate.cctv.push(sim);
        }
        if let DeviceKind::ModbusBarrier {
            transport: ModbusTransport::Tcp(addr),
            ..
        } = &mut device.kind
            && addr.ip().is_loopback()
            && addr.port() == 0
        {
            let (bound, handle) = BarrierSim::spawn_tcp(BarrierSimConfig::default()).await?;
            *addr = bound;
            if let Some(lane) = lane_of.get(&device.id) {
                estate.barriers.insert(lane.clone(), handle);
            }
        }
    }
    // Point devices on loopback port 0 share one simulated Modbus/TCP
    // gateway, each on its own unit id; an elevator table gets an
    // elevator, anything else the water-supply set.
    let mut facility_addr = None;
    for device in &mut config.devices {
        if let DeviceKind::ModbusPoints {
            transport: ModbusTransport::Tcp(addr),
            slave,
            table,
            ..
        } = &mut device.kind
            && addr.ip().is_loopback()
            && addr.port() == 0
        {
            let sim = estate.facility.get_or_insert_with(FacilitySim::new);
            let seed = u64::from(*slave);
            let dynamics = if table.find("floor").is_some() {
                Dynamics::Elevator(Elevator::new(-1, 18, seed))
            } else {
                Dynamics::WaterSupply(WaterSupply::new(seed))
            };
            sim.add(*slave, dynamics);
            let bound = match facility_addr {
                Some(bound) => bound,
                None => *facility_addr.insert(sim.serve_tcp().await?),
            };
            *addr = bound;
        }
    }
    // Building 3's door station, with a password made up for this run (it
    // is in no file): a device of its own, like an `[[intercom]]` table.
    let password = format!("demo-{:016x}", rand::random::<u64>());
    let station = HikStationSim::start("admin", &password).await?;
    let mut hik =
        drivers::intercom::hik_driver::HikConfig::new(&station.base(), "admin", &password);
    hik.call_poll = Duration::from_millis(500);
    config.devices.push(DeviceConfig {
        id: DEMO_STATION.0.to_owned(),
        name: DEMO_STATION.1.to_owned(),
        kind: DeviceKind::Intercom(Station::Hik(Box::new(hik))),
    });
    estate.station = Some(station);
    Ok(estate)
}

/// Residents, a visitor and a blacklisted car, when the lists are empty.
pub fn seed_lists(plates: &PlateRegistry) -> Result<(), crate::vocab::records::ListError> {
    if !plates.snapshot().residents.is_empty() {
        return Ok(());
    }
    for (plate, house, owner) in [
        ("苏A8HK52", "3-2-1201", "王芳"),
        ("苏E12345", "1-1-101", "李雷"),
        ("苏AD12345", "5-1-502", "韩梅梅"),
        ("沪B77777", "2-3-803", "张伟"),
    ] {
        plates.upsert_resident(&Resident {
            plate: plate.into(),
            house: house.into(),
            owner: owner.into(),
            valid_from: None,
            valid_to: None,
            lanes: vec![],
        })?;
    }
    let now = drivers::contract::now_ms();
    plates.add_visitor(&NewVisitorPass {
        plate: "浙B66666".into(),
        host_unit: "3-2-1201".into(),
        valid_from: now - 3_600_000,
        valid_to: now + 7 * 86_400_000,
        single_use: false,
        created_by: "demo".into(),
    })?;
    plates.upsert_blacklist(&Blacklisted {
        plate: "苏A00000".into(),
        reason: "欠缴停车费".into(),
    })?;
    Ok(())
}

/// Drives cars through the lanes until `cancel` fires.
pub fn spawn_traffic(
    running: &Running,
    config: &Config,
    estate: DemoEstate,
    cancel: CancellationToken,
) {
    let Some(ingress) = running.ingress_addr else {
        return;
    };
    let base = format!(
        "http://{}",
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), ingress.port())
    );
    let cameras: Vec<(String, Vendor, Option<SimHandle>)> = config
        .devices
        .iter()
        .filter_map(|d| match &d.kind {
            DeviceKind::LprCamera { vendor, lane, .. } => Some((
                d.id.clone(),
                match vendor {
                    CameraVendor::Vzenith => Vendor::Vzenith,
                    CameraVendor::Hikvision => Vendor::Hikvision,
                    CameraVendor::Huaxia => Vendor::Huaxia,
                },
                estate.barriers.get(lane).cloned(),
            )),
            _ => None,
        })
        .collect();
    let estate = Arc::new(estate);
    spawn_visitors(estate.clone(), cancel.clone());
    tokio::spawn(async move {
        let estate = estate;
        let cars: [(&str, PlateColour, u8); 8] = [
            ("苏A8HK52", PlateColour::Blue, 96),
            ("苏E12345", PlateColour::Blue, 93),
            ("苏AD12345", PlateColour::Green, 91),
            ("浙B66666", PlateColour::Blue, 95),
            ("苏A00000", PlateColour::Blue, 97),
            ("京C99999", PlateColour::Blue, 90),
            ("苏ABHK52", PlateColour::Blue, 92),
            ("沪B77777", PlateColour::Blue, 62),
        ];
        let mut tick = 0usize;
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(6)) => {}
                }
            }
            first = false;
            tick += 1;
            // Somebody walks past one surveillance camera at a time.
            for (i, cctv) in estate.cctv.iter().enumerate() {
                cctv.control().motion(tick % (estate.cctv.len() * 2) == i);
            }
            let Some((camera, vendor, barrier)) = cameras.get(tick % cameras.len().max(1)) else {
                continue;
            };
            let (plate, colour, confidence) = {
                let mut rng = rand::rng();
                *cars.choose(&mut rng).unwrap_or(&cars[0])
            };
            let Ok(sim) = CameraSim::new(&base, camera, *vendor) else {
                continue;
            };
            // Real-looking snapshots, so the demo shows the snapshot flow.
            let read = SimPlate::new(plate, colour, confidence).with_snapshot();
            match sim.push(&read).await {
                Ok(_) => {
                    if let Some(barrier) = barrier.clone() {
                        // The car drives onto the loop and off again.
                        let cancel = cancel.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                () = cancel.cancelled() => return,
                                () = tokio::time::sleep(Duration::from_secs(2)) => barrier.vehicle_arrives(),
                            }
                            tokio::select! {
                                () = cancel.cancelled() => {}
                                () = tokio::time::sleep(Duration::from_secs(2)) => barrier.vehicle_leaves(),
                            }
                        });
                    }
                }
                Err(error) => tracing::debug!(%error, "Demo camera push failed."),
            }
        }
    });
}

/// Visitors at building 3's door station: a call every half minute or so,
/// answered by the resident two times in three, otherwise given up.
fn spawn_visitors(estate: Arc<DemoEstate>, cancel: CancellationToken) {
    let rooms = ["3-1-502", "3-1-1201", "3-2-803", "3-2-1502"];
    tokio::spawn(async move {
        let Some(station) = estate.station.as_ref() else {
            return;
        };
        let pause = |secs: u64| {
            let cancel = cancel.clone();
            async move {
                tokio::select! {
                    () = cancel.cancelled() => false,
                    () = tokio::time::sleep(Duration::from_secs(secs)) => true,
                }
            }
        };
        let mut n = 0usize;
        while pause(20 + (rand::random::<u64>() % 20)).await {
            n += 1;
            station.ring(rooms[n % rooms.len()]);
            if !pause(6).await {
                return;
            }
            if !n.is_multiple_of(3) {
                station.answer();
                if !pause(10).await {
                    return;
                }
            }
            station.hang_up();
        }
    });
}
