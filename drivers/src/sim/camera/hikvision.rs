//! The simulated camera's Hikvision pushes: ISAPI `EventNotificationAlert`
//! XML, the ANPR read as a multipart body with its pictures.

use super::{Part, SimPlate, SimRequest, china, multipart_request};
use crate::event::PlateColour;

/// The colour character Chinese Hikvision firmware puts before the plate.
fn hikvision_colour_prefix(colour: PlateColour) -> &'static str {
    match colour {
        PlateColour::Unknown => "",
        PlateColour::Blue => "蓝",
        PlateColour::Yellow => "黄",
        PlateColour::White => "白",
        PlateColour::Black => "黑",
        PlateColour::Green => "绿",
        PlateColour::YellowGreen => "黄绿",
    }
}

/// An `EventNotificationAlert` (Chinese ITC firmware shape) around `inner`.
pub(super) fn hikvision_alert(mac: &str, time_ms: i64, inner: &str) -> String {
    let date_time = jiff::Timestamp::from_second(time_ms.div_euclid(1000))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(china())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <EventNotificationAlert version=\"2.0\" xmlns=\"http://www.isapi.org/ver20/XMLSchema\">\n\
         <ipAddress>127.0.0.1</ipAddress>\n<portNo>80</portNo>\n<protocol>HTTP</protocol>\n\
         <macAddress>{mac}</macAddress>\n<channelID>1</channelID>\n\
         <dateTime>{date_time}</dateTime>\n<activePostCount>1</activePostCount>\n\
         {inner}<channelName>IP CAPTURE CAMERA</channelName>\n</EventNotificationAlert>\n",
        mac = quick_xml::escape::escape(mac),
    )
}

pub(super) fn hikvision_plate(mac: &str, read: &SimPlate, read_id: u64) -> SimRequest {
    use quick_xml::escape::escape;
    let license = if read.plate.is_empty() {
        "unknown".to_owned()
    } else {
        format!("{}{}", hikvision_colour_prefix(read.colour), read.plate)
    };
    let confidence = if read.plate.is_empty() {
        0
    } else {
        read.confidence
    };
    let pictures = if read.with_image {
        "<pictureInfoList>\n\
         <pictureInfo>\n<fileName>licensePlatePicture.jpg</fileName>\n<type>licensePlatePicture</type>\n<dataType>0</dataType>\n</pictureInfo>\n\
         <pictureInfo>\n<fileName>detectionPicture.jpg</fileName>\n<type>detectionPicture</type>\n<dataType>0</dataType>\n</pictureInfo>\n\
         </pictureInfoList>\n"
    } else {
        ""
    };
    let inner = format!(
        "<eventType>ANPR</eventType>\n<eventState>active</eventState>\n<eventDescription>ANPR</eventDescription>\n\
         <ANPR>\n<licensePlate>{license}</licensePlate>\n<line>1</line>\n<direction>forward</direction>\n\
         <confidenceLevel>{confidence}</confidenceLevel>\n<plateType>92TypeCivil</plateType>\n\
         <plateColor>{colour}</plateColor>\n<vehicleType>vehicle</vehicleType>\n{pictures}</ANPR>\n\
         <UUID>sim-{read_id:016x}</UUID>\n<picNum>{pic_num}</picNum>\n\
         <isDataRetransmission>{resend}</isDataRetransmission>\n",
        license = escape(license.as_str()),
        colour = crate::lpr::hikvision::colour_name(read.colour),
        pic_num = if read.with_image { 2 } else { 0 },
        resend = read.resend,
    );
    let xml = hikvision_alert(mac, read.time_ms, &inner);
    if read.with_image {
        multipart_request(
            [
                Part::file(
                    "anpr.xml",
                    "application/xml; charset=\"UTF-8\"",
                    xml.as_bytes(),
                ),
                Part::file("licensePlatePicture.jpg", "image/jpeg", read.picture()),
                Part::file("detectionPicture.jpg", "image/jpeg", read.picture()),
            ]
            .into_iter(),
        )
    } else {
        SimRequest {
            content_type: "application/xml; charset=\"UTF-8\"".into(),
            body: xml.into_bytes(),
        }
    }
}
