//! The simulated camera's Huaxia pushes: mode-5 form posts.

use super::SimPlate;
use crate::lpr::{Trigger, huaxia};

pub(super) fn huaxia_plate(cam_id: &str, read: &SimPlate) -> String {
    let picture = if read.with_image {
        huaxia::encode_image(read.picture())
    } else {
        String::new()
    };
    let trigger = match read.trigger {
        Trigger::Video | Trigger::VirtualLoop => "video",
        Trigger::Loop => "hwtriger",
        Trigger::Software | Trigger::Other => "swtriger",
    };
    let plate = if read.plate.is_empty() {
        "无牌车"
    } else {
        read.plate.as_str()
    };
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("type", if read.resend { "offline" } else { "online" })
        .append_pair("mode", "5")
        .append_pair("park_id", "gatehouse-sim")
        .append_pair("plate_num", plate)
        .append_pair("plate_color", huaxia::colour_word(read.colour))
        .append_pair("plate_val", "true")
        .append_pair("car_sublogo", "")
        .append_pair("vehicle_type", "小型车")
        .append_pair("start_time", &read.time_ms.div_euclid(1000).to_string())
        .append_pair("cam_id", cam_id)
        .append_pair("vdc_type", "in")
        .append_pair("is_whitelist", "false")
        .append_pair("triger_type", trigger)
        .append_pair("picture", &picture)
        .append_pair("closeup_pic", &picture);
    form.finish()
}
