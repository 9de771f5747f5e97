"""A third-party virtual ONVIF camera for Gatehouse's camera tests.

IPyCam (PyPI `ipycam`, MIT; https://github.com/olkham/IPyCam) answers the
ONVIF device and media services (`GetSystemDateAndTime`,
`GetDeviceInformation`, `GetCapabilities`, `GetServices`, `GetProfiles`,
`GetStreamUri`, `GetSnapshotUri`), checks WS-Security UsernameToken
(`PasswordDigest`, 5-minute window) and serves its snapshot behind HTTP
Basic. It offers no event service. Only its ONVIF HTTP server is started
here (no WS-Discovery on the shared port 3702, no streaming), on loopback.

Usage: ipycam_camera.py PORT USER PASSWORD SKEW_SECONDS
  PORT 0 picks a free port; USER "" runs without authentication;
  SKEW_SECONDS moves the camera's clock (its replies and its token check).
Prints "PORT <n>" when it answers, then serves until stdin closes.
"""

import datetime as _datetime
import socketserver
import sys
import threading
import time as _time
import types

import numpy as np

import ipycam.onvif as onvif_module
from ipycam import CameraConfig, IPCamera, IPCameraHTTPHandler

port, user, password, skew = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])

if skew:
    # The camera's clock, as its ONVIF module reads it: both the time it
    # reports and the "now" its token freshness check compares against.
    class _SkewedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return _datetime.datetime.now(tz) + _datetime.timedelta(seconds=skew)

    onvif_module.datetime = _SkewedDatetime
    onvif_module.time = types.SimpleNamespace(
        **{name: getattr(_time, name) for name in dir(_time) if not name.startswith("_")}
    )
    onvif_module.time.gmtime = lambda secs=None: _time.gmtime((_time.time() if secs is None else secs) + skew)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


config = CameraConfig(
    name="Gate 2 overview",
    manufacturer="PythonCam",
    model="VirtualCam-Gate",
    serial_number="PY-GATE-0002",
    local_ip="127.0.0.1",
    main_width=640,
    main_height=360,
    show_timestamp=False,
)
if user:
    ok, error = config.set_credentials(user, password)
    assert ok, error
camera = IPCamera(config)
IPCameraHTTPHandler.camera = camera
# Quiet: one line per request on stderr is noise in the test output.
IPCameraHTTPHandler.log_message = lambda self, *args: None
server = Server(("127.0.0.1", port), IPCameraHTTPHandler)
config.onvif_port = server.server_address[1]

# One frame for the snapshot endpoint: a grey gate with a white plate box.
frame = np.full((360, 640, 3), 90, dtype=np.uint8)
frame[240:300, 220:420] = 255
camera.stream(frame)

threading.Thread(target=server.serve_forever, daemon=True).start()
print("PORT", config.onvif_port, flush=True)
sys.stdin.read()
server.shutdown()
