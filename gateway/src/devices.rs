//! Builds drivers from validated device configuration: the one place that
//! maps a config `type` to a driver implementation.

use std::hash::{DefaultHasher, Hash, Hasher};

use drivers::DeviceId;
use drivers::door::wg_driver::WgController;
use drivers::sim::TankSim;

use crate::config::{DeviceConfig, DeviceKind};
use crate::doors::hardware::{self as door_hardware, SimHardware};
use crate::supervisor::Supervised;

/// A supervised driver for each configured device, in configuration order.
/// Devices on simulated GPIO lines leave their simulator ends in `sim`.
pub fn build(devices: &[DeviceConfig], sim: &SimHardware) -> Vec<Supervised> {
    devices.iter().map(|d| build_one(d, sim)).collect()
}

fn build_one(device: &DeviceConfig, sim: &SimHardware) -> Supervised {
    let driver: Box<dyn drivers::Driver> = match &device.kind {
        DeviceKind::SimTank { height_m, interval } => {
            Box::new(TankSim::new(*height_m, *interval, seed(&device.id)))
        }
        DeviceKind::WiegandReader {
            gpio,
            d0,
            d1,
            wiegand,
            door,
        } => door_hardware::wiegand_reader(&device.id, gpio, d0, d1, *wiegand, *door, sim),
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
    };
    Supervised {
        id: DeviceId::new(device.id.as_str()),
        name: device.name.clone(),
        driver,
    }
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
    use std::time::Duration;

    #[test]
    fn each_configured_device_gets_a_driver_of_its_type() {
        let devices = vec![DeviceConfig {
            id: "tank-1".into(),
            name: "1号楼水箱".into(),
            kind: DeviceKind::SimTank {
                height_m: 4.0,
                interval: Duration::from_secs(1),
            },
        }];
        let built = build(&devices, &SimHardware::default());
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].id.as_str(), "tank-1");
        assert_eq!(built[0].name, "1号楼水箱");
        assert_eq!(built[0].driver.kind(), "sim-tank");
        assert_ne!(seed("tank-1"), seed("tank-2"));
    }
}
