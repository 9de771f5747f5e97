//! The door-station simulators against third-party clients from PyPI, so
//! the simulators are not shaped by Gatehouse alone: pyhik (a Hikvision
//! ISAPI client: Basic-then-Digest, `deviceInfo`, `Event/triggers`, the
//! `alertStream` parser) with `requests`' own HTTP Digest for the remote
//! unlock, and dahua-rpc-api (the Dahua JSON-RPC login with the
//! realm/random challenge, over HTTP `/RPC2_Login` and `/RPC2` — the same
//! JSON-RPC core the simulator serves on TCP).

use std::process::Stdio;
use std::time::Duration;

use drivers::sim::dahua_vto::VtoSim;
use drivers::sim::hik_station::HikStationSim;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(60);

const PYHIK: &str = r#"
import sys, threading
import requests
from requests.auth import HTTPDigestAuth
from pyhik.hikvision import HikCamera
base, user, pw = sys.argv[1:4]
cam = HikCamera(base, usr=user, pwd=pw)
print("NAME", cam.name, flush=True)
got = threading.Event()
cam.add_update_callback(lambda msg: got.set(), "%s.I/O.1" % cam.cam_id)
cam.start_stream()
print("READY", flush=True)
ok = got.wait(30)
cam.disconnect()
print("EVENT" if ok else "NOEVENT", flush=True)
r = requests.put(base + "/ISAPI/AccessControl/RemoteControl/door/1",
                 data="<RemoteControlDoor><cmd>open</cmd></RemoteControlDoor>",
                 auth=HTTPDigestAuth(user, pw), timeout=10)
print("UNLOCK", r.status_code, flush=True)
r = requests.get(base + "/ISAPI/VideoIntercom/callStatus?format=json",
                 auth=HTTPDigestAuth(user, "wrong"), timeout=10)
print("WRONG", r.status_code, flush=True)
"#;

const DAHUA_RPC: &str = r#"
import sys
from dahua.client import DahuaRpc
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = DahuaRpc(host=host, port=port)
c.login(user, pw)
print("TYPE", c.magic_box.get_device_type(), flush=True)
bad = DahuaRpc(host=host, port=port)
try:
    bad.login(user, "wrong")
    print("WRONG accepted", flush=True)
except Exception as e:
    print("WRONG refused", type(e).__name__, flush=True)
"#;

struct Lines(tokio::io::Lines<BufReader<tokio::process::ChildStdout>>);

impl Lines {
    async fn next(&mut self, what: &str) -> String {
        tokio::time::timeout(WAIT, self.0.next_line())
            .await
            .unwrap_or_else(|_| panic!("python peer: no {what} in time"))
            .expect("reading the peer")
            .unwrap_or_else(|| panic!("python peer ended before {what}"))
    }
}

fn spawn(
    python: &std::path::Path,
    script: &str,
    args: &[String],
) -> (tokio::process::Child, Lines) {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let stdout = child.stdout.take().expect("stdout");
    (child, Lines(BufReader::new(stdout).lines()))
}

#[tokio::test]
async fn pyhik_reads_the_hikvision_station_and_requests_unlocks_it() {
    let Some(python) = testkit::python_peer("pyhik", &["pyhik", "requests"]) else {
        return;
    };
    let sim = HikStationSim::start_on(
        "127.0.0.1:0".parse().expect("addr"),
        "admin",
        "station-pass-1",
        Duration::from_millis(100),
    )
    .await
    .expect("sim");
    let args = [sim.base(), "admin".to_owned(), "station-pass-1".to_owned()];
    let (mut child, mut lines) = spawn(&python, PYHIK, &args);
    assert_eq!(lines.next("device name").await, "NAME Door Station");
    assert_eq!(lines.next("ready").await, "READY");
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim.streams() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pyhik never opened the alert stream"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.xml_event("IO", "active", "<inputIOPortID>1</inputIOPortID>");
    assert_eq!(lines.next("the IO event").await, "EVENT");
    assert_eq!(lines.next("unlock").await, "UNLOCK 200");
    assert_eq!(*sim.unlocks().borrow(), vec![1]);
    assert_eq!(lines.next("wrong password").await, "WRONG 401");
    assert!(child.wait().await.expect("exit").success());
}

#[tokio::test]
async fn dahua_rpc_api_logs_in_to_the_vto_and_is_refused_a_wrong_password() {
    let Some(python) = testkit::python_peer("dahua-rpc-api", &["dahua.client"]) else {
        return;
    };
    let sim = VtoSim::start("admin", "vto-pass-1").await.expect("sim");
    let args = [
        "127.0.0.1".to_owned(),
        sim.http_addr().port().to_string(),
        "admin".to_owned(),
        "vto-pass-1".to_owned(),
    ];
    let (mut child, mut lines) = spawn(&python, DAHUA_RPC, &args);
    assert_eq!(lines.next("device type").await, "TYPE VTO2202F-P-S2");
    assert_eq!(
        lines.next("wrong password").await,
        "WRONG refused DahuaInvalidCredentials"
    );
    assert!(child.wait().await.expect("exit").success());
}
