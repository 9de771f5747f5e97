//! A real headless Chromium for the panel's browser tests, driven over
//! WebDriver: `chromedriver` (Debian's `chromium-driver`) is started by the
//! test on a free port and spoken to with `fantoccini` over plain HTTP on
//! loopback (no TLS stack needed).
//!
//! Why WebDriver and not CDP: the Debian packages ship a matching
//! chromedriver, fantoccini is small and builds without a TLS backend, and
//! WebDriver's "find, click, type, wait for" is all these tests need.
//!
//! [`Browser::start`] returns `Ok(None)` (after saying what was skipped)
//! when chromium or chromedriver is missing, unless
//! `GATEHOUSE_REQUIRE_PEERS=1`, where that is an error. At most
//! [`MAX_BROWSERS`] run at once, so a 2-core CI box is not swamped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{DEADLINE, eventually, require_peer};

/// Browsers running at the same time, at most.
pub const MAX_BROWSERS: usize = 2;

static SLOTS: LazyLock<std::sync::Arc<Semaphore>> =
    LazyLock::new(|| std::sync::Arc::new(Semaphore::new(MAX_BROWSERS)));

/// Where the Debian packages put the browser and its driver (overridable
/// with `GATEHOUSE_CHROMIUM` / `GATEHOUSE_CHROMEDRIVER`).
fn binary(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Where screenshots go: `$CARGO_TARGET_DIR/screenshots` (or
/// `target/screenshots` at the workspace root).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("screenshots")
}

/// A headless Chromium session.
#[derive(Debug)]
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _slot: OwnedSemaphorePermit,
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium; `None` when they
    /// are not installed (and peers are not required).
    pub async fn start() -> anyhow::Result<Option<Browser>> {
        let chromium = binary("GATEHOUSE_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("GATEHOUSE_CHROMEDRIVER", "/usr/bin/chromedriver");
        for (what, path) in [("chromium", &chromium), ("chromedriver", &chromedriver)] {
            if !path.exists() {
                require_peer(
                    what,
                    &format!(
                        "{} not found (apt-get install chromium chromium-driver)",
                        path.display()
                    ),
                )?;
                return Ok(None);
            }
        }
        let slot = SLOTS.clone().acquire_owned().await?;
        let port = testkit::free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        eventually("chromedriver to answer", DEADLINE, || {
            let status = status.clone();
            async move {
                reqwest::get(&status)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await?;

        let profile = tempfile::tempdir()?;
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-quic".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": chromium.display().to_string(), "args": args}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .context("opening a WebDriver session")?;
        Ok(Some(Browser {
            client,
            driver,
            _profile: profile,
            _slot: slot,
        }))
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("goto {url}"))
    }

    /// Waits until an element matching `css` exists.
    pub async fn wait_for(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(DEADLINE)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waiting for {css}"))
    }

    /// Waits until the page's text contains `text`.
    pub async fn wait_for_text(&self, text: &str) -> anyhow::Result<()> {
        let client = &self.client;
        eventually(
            &format!("the page to show {text:?}"),
            DEADLINE,
            || async move {
                let body = client.find(Locator::Css("body")).await.ok()?;
                body.text().await.ok().filter(|t| t.contains(text))
            },
        )
        .await
        .map(|_| ())
    }

    /// The page's visible text.
    pub async fn text(&self) -> anyhow::Result<String> {
        Ok(self.client.find(Locator::Css("body")).await?.text().await?)
    }

    /// Types `value` into the field matching `css` (clearing it first).
    pub async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let field = self.wait_for(css).await?;
        field.clear().await?;
        field.send_keys(value).await?;
        Ok(())
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.wait_for(css).await?.click().await?;
        Ok(())
    }

    /// Sets the window to `width`×`height` CSS pixels (a 390×844 phone, a
    /// 1366×768 guard-room screen).
    pub async fn set_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.client.set_window_size(width, height).await?;
        Ok(())
    }

    /// Runs an asynchronous script (it calls its last argument with the
    /// result).
    pub async fn script_async(&self, js: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self.client.execute_async(js, vec![]).await?)
    }

    /// Runs a script in the page (WebDriver scripts are not subject to the
    /// page's CSP).
    pub async fn script(&self, js: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self.client.execute(js, vec![]).await?)
    }

    /// Saves a PNG screenshot as `screenshot_dir()/NAME.png`; returns the path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        if png.len() < 8 || &png[1..4] != b"PNG" {
            bail!("the screenshot is not a PNG");
        }
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let closed = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        closed.context("closing the WebDriver session")
    }
}
