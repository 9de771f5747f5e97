//! The simulated camera's Vzenith pushes: `AlarmInfoPlate` JSON in the
//! shape of the vendor document's full sample.

use serde_json::{Value, json};

use super::{SimPlate, china};
use crate::lpr::{encode_base64, vzenith};

/// `AlarmInfoPlate` in the shape of the vendor document's full sample.
pub(super) fn vzenith_plate(serial: &str, read: &SimPlate, read_id: u64) -> Value {
    let sec = read.time_ms.div_euclid(1000);
    let usec = read.time_ms.rem_euclid(1000) * 1000;
    // The dec* fields are the camera's local time (China, UTC+8).
    let local = jiff::Timestamp::from_second(sec)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(china());
    let license = if read.plate.is_empty() {
        "_无_"
    } else {
        read.plate.as_str()
    };
    let image = |on: bool| {
        if on {
            encode_base64(read.picture())
        } else {
            String::new()
        }
    };
    let image_len = |on: bool| if on { read.picture().len() } else { 0 };
    let colour = vzenith::colour_code(read.colour);
    let time_stamp = json!({
        "Timeval": {
            "decday": local.day(),
            "dechour": local.hour(),
            "decmin": local.minute(),
            "decmon": local.month(),
            "decsec": local.second(),
            "decyear": local.year(),
            "sec": sec,
            "usec": usec
        }
    });
    let rect = json!({ "bottom": 674, "left": 1002, "right": 1263, "top": 565 });
    let plate_result = json!({
        "bright": 0,
        "carBright": 0,
        "carColor": 255,
        "car_brand": { "brand": 255, "type": 255, "year": 65535 },
        "carlocation": { "RECT": { "bottom": 0, "left": 0, "right": 0, "top": 0 } },
        "clean_time": 0,
        "colorType": colour,
        "colorValue": 0,
        "confidence": read.confidence,
        "direction": 4,
        "feature_code": true,
        "imageFile": image(read.with_image),
        "imageFileLen": image_len(read.with_image),
        "imageFragmentFile": image(read.with_image),
        "imageFragmentFileLen": image_len(read.with_image),
        "gioouts": [
            { "ctrltype": 0, "ionum": "0" },
            { "ctrltype": 0, "ionum": "1" },
            { "ctrltype": 0, "ionum": "2" }
        ],
        "is_fake_plate": 0,
        "isoffline": u8::from(read.resend),
        "license": license,
        "license_ext_type": 0,
        "location": { "RECT": rect },
        "plate_distance": 0,
        "plate_true_width": 25,
        "plateid": read_id,
        "plates": [{
            "color": colour,
            "license": license,
            "plate_width": 281,
            "pos": rect,
            "type": 1
        }],
        "timeStamp": time_stamp,
        "timeUsed": 0,
        "triggerType": vzenith::trigger_code(read.trigger),
        "type": 1
    });
    json!({
        "AlarmInfoPlate": {
            "channel": 0,
            "deviceName": "R5-V1.0",
            "ipaddr": "127.0.0.1",
            "result": { "PlateResult": plate_result },
            "rule_id": 1,
            "serialno": serial,
            "user_data": ""
        }
    })
}
