//! A simulated serial card reader on a pseudo-terminal pair: the driver
//! opens the slave side by its path, the simulator writes frames on the
//! master side. Dropping the simulator closes both, as when a USB adapter is
//! unplugged.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::ttyname;

use crate::door::serial::{Framing, encode};

/// A card reader writing `framing` frames into a pty.
#[derive(Debug)]
pub struct SerialReaderSim {
    master: File,
    // Held so the pty stays usable before the driver opens it.
    _slave: OwnedFd,
    path: PathBuf,
    framing: Framing,
}

impl SerialReaderSim {
    /// Opens a pty pair in raw mode.
    pub fn new(framing: Framing) -> io::Result<Self> {
        let pty = openpty(None, None)?;
        let mut termios = tcgetattr(&pty.slave)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios)?;
        let path = ttyname(&pty.slave)?;
        Ok(Self {
            master: File::from(pty.master),
            _slave: pty.slave,
            path,
            framing,
        })
    }

    /// The slave device path for the driver (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one frame for `card`.
    pub fn send_card(&mut self, card: u64) -> io::Result<()> {
        let frame = encode(&self.framing, card);
        self.send_raw(&frame)
    }

    /// Writes raw bytes (noise, partial or broken frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.master.write_all(bytes)?;
        self.master.flush()
    }
}
