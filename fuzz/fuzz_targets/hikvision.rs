//! Fuzzes the hikvision plate-camera codec: any body, with each content type the
//! listener may pass (the first input byte picks it), must give `Ok` or
//! `Err`, never a panic, hang or runaway allocation.
#![no_main]

use drivers::lpr::{self, Vendor};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("application/json"),
    Some("application/xml"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=-------------------------7e13971310878"),
    Some("multipart/form-data"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let _ = lpr::parse(Vendor::Hikvision, content_type, body);
});
