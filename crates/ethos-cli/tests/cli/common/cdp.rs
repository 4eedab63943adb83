//! A small Chrome DevTools Protocol client for browser tests: starts Debian's `chromium` headless
//! with a fresh profile, speaks CDP over one websocket (flattened target sessions), and collects
//! console errors and uncaught exceptions of the page.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// The flags every test browser runs with (no network side traffic, no GPU, no sandbox in CI
/// containers).
pub const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The browser binary: `$ETHOS_CHROMIUM`, else `chromium` on the PATH (`scripts/setup.sh`
/// installs Debian's package).
pub fn chromium_binary() -> PathBuf {
    if let Ok(p) = std::env::var("ETHOS_CHROMIUM") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        for name in ["chromium", "chromium-browser"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "no `chromium` on the PATH: run scripts/setup.sh (installs Debian's chromium) or set ETHOS_CHROMIUM"
    );
}

/// A headless browser with one page attached.
pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: String,
    /// Console errors, uncaught exceptions and error log entries seen so far.
    pub errors: Vec<String>,
    /// Every event received (method, params), for waits.
    events: Vec<(String, Value)>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts the browser with a fresh `--user-data-dir`, opens a blank page, and lets downloads
    /// go to `downloads`.
    pub fn start(downloads: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium_binary())
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--remote-debugging-port=0")
            .arg("--autoplay-policy=no-user-gesture-required")
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromium");
        // Chromium writes the port and the browser target's path once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let t0 = Instant::now();
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(p), Some(path)) = (lines.next(), lines.next()) {
                    break (p.trim().to_string(), path.trim().to_string());
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "chromium did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .expect("websocket handshake with chromium");
        let mut b = Browser {
            child,
            ws,
            next_id: 1,
            session: String::new(),
            errors: Vec::new(),
            events: Vec::new(),
            _profile: profile,
        };
        std::fs::create_dir_all(downloads).unwrap();
        b.call_browser(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": downloads, "eventsEnabled": true}),
        );
        let target = b.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = b.call_browser(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        for m in ["Runtime.enable", "Log.enable", "Page.enable"] {
            b.call(m, json!({}));
        }
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
        );
        b
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        id
    }

    /// Reads one message (events are recorded); `None` after the read timeout.
    fn read(&mut self) -> Option<Value> {
        match self.ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if let Some(method) = v["method"].as_str() {
                    self.note_event(method, &v["params"]);
                    self.events.push((method.to_string(), v["params"].clone()));
                }
                Some(v)
            }
            Ok(_) => Some(Value::Null),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("devtools websocket: {e}"),
        }
    }

    fn note_event(&mut self, method: &str, p: &Value) {
        match method {
            "Runtime.exceptionThrown" => self.errors.push(format!(
                "exception: {}",
                p["exceptionDetails"]["exception"]["description"]
                    .as_str()
                    .or(p["exceptionDetails"]["text"].as_str())
                    .unwrap_or("?")
            )),
            "Runtime.consoleAPICalled" if p["type"] == "error" || p["type"] == "assert" => self
                .errors
                .push(format!("console.{}: {}", p["type"], p["args"])),
            "Log.entryAdded" if p["entry"]["level"] == "error" => self.errors.push(format!(
                "log: {} ({})",
                p["entry"]["text"], p["entry"]["url"]
            )),
            _ => {}
        }
    }

    fn wait_reply(&mut self, id: u64, method: &str) -> Value {
        let t0 = Instant::now();
        loop {
            if let Some(v) = self.read()
                && v["id"].as_u64() == Some(id)
            {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "{method}: no reply from chromium"
            );
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(None, method, params);
        self.wait_reply(id, method)
    }

    /// A CDP command on the page's session.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        let id = self.send(Some(&session), method, params);
        self.wait_reply(id, method)
    }

    /// Navigates to a local file and waits for its load event.
    pub fn open(&mut self, file: &Path) {
        self.events.clear();
        let url = format!("file://{}", file.canonicalize().unwrap().display());
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigate {url}: {r}");
        self.wait_event("Page.loadEventFired", Duration::from_secs(60));
    }

    /// Waits for an event of `method` (seen since the last navigation).
    pub fn wait_event(&mut self, method: &str, timeout: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            if let Some((_, p)) = self.events.iter().find(|(m, _)| m == method) {
                return p.clone();
            }
            assert!(t0.elapsed() < timeout, "no {method} within {timeout:?}");
            self.read();
        }
    }

    /// Evaluates a JS expression in the page (promises awaited) and returns its JSON value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "evaluating `{expr}`: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is `true` (reading events in between).
    pub fn wait_until(&mut self, expr: &str, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.eval(expr) == Value::Bool(true) {
                return true;
            }
            self.read();
        }
        false
    }

    /// A PNG screenshot of the whole page.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let bytes = decode_base64(r["data"].as_str().unwrap());
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (with padding) to bytes.
pub fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, &c| (acc << 6) | val(c));
        let n = n << (6 * (4 - chunk.len() as u32));
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad.max(4 - chunk.len())]);
    }
    out
}
