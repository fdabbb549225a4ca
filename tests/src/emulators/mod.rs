//! Wire-protocol emulators for the AWS services no third-party emulator implements faithfully.
//!
//! Why they exist: the end-to-end tests must run the production adapters (the AWS SDK for Rust
//! clients) unchanged, through `AWS_ENDPOINT_URL_SSM` / `AWS_ENDPOINT_URL_ACM_PCA`. moto's Run
//! Command never runs anything and its Private CA ignores Validity, SigningAlgorithm and
//! templates, so a test on moto would pass whatever our code sends. These emulators speak the
//! real AWS JSON 1.1 protocol (`POST /`, `X-Amz-Target`, `__type` errors), follow the member
//! names of the SDK's own model, and behave like the services where our code depends on it:
//!
//! - [`ssm`]: Run Command that really runs the CloudFormation template's document scripts with
//!   `bash` (and `openssl`) in one sandbox directory per emulated host;
//! - [`pca`]: a Private CA (rcgen) that honours Validity, SigningAlgorithm, templates and
//!   idempotency tokens, answers `RequestInProgressException` before a certificate is ready, and
//!   announces issuance on the event bus.
//!
//! Shared pieces live here: the [`EventBus`] onto which emulators put EventBridge-shaped events
//! (the harness routes them to the Lambda handlers), the [`Capture`] of every request and response
//! body (so a test can prove no private key ever crossed the wire) with per-operation call
//! counters, and the HTTP server plumbing (AWS JSON 1.1 and restJson1) in [`wire`].
//!
//! Wiring a test (both emulators sharing one bus and one capture):
//!
//! ```text
//! let bus = EventBus::new();
//! let capture = Capture::new();
//! let docs = ssm::load_documents("cloudformation/template.yaml",
//!     &[("GenerateCsrDocument", "certrotation-GenerateCsr"), ("DeployCertDocument", "certrotation-DeployCert")])?;
//! let ssm = ssm::start(SsmConfig { documents: docs, bus: bus.clone(), capture: capture.clone(), ..Default::default() }).await?;
//! let pca = pca::start(PcaConfig { bus: bus.clone(), capture: capture.clone(), ..Default::default() }).await?;
//! let root = ssm.register_host(&ssm::managed_instance_id(1), HostSpec::default());
//! // AWS_ENDPOINT_URL_SSM = ssm.url(), AWS_ENDPOINT_URL_ACM_PCA = pca.url(), CA ARN = pca.ca_arn()
//! // … run a Lambda handler, then: ssm.wait_idle().await; for e in bus.drain() { route(e) }
//! assert!(capture.find("PRIVATE KEY").is_empty());
//! assert_eq!(capture.calls()["ACMPCA.IssueCertificate"], 1);
//! ```

pub mod pca;
pub mod rolesanywhere;
pub mod signing_helper;
pub mod ssm;
pub mod tls;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The account every emulator pretends to run in (the one in the sample events under `tests/tests/fixtures/events`).
pub const ACCOUNT: &str = "111122223333";
/// The region every emulator pretends to run in.
pub const REGION: &str = "us-east-1";

/// Locks a mutex, ignoring poisoning: a panicking test thread must not hide the state from the
/// assertions of the next one.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random RFC 4122 version-4 UUID in its usual text form (SSM command IDs, PCA CA IDs, event IDs).
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `2026-11-21T10:15:30Z`: the `time` field of EventBridge events (second precision).
pub fn event_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

/// `2026-11-21T10:14:00.123Z`: millisecond timestamps as SSM writes them in event details and in
/// `GetCommandInvocation`'s string date members.
pub fn millis_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

/// Seconds since the epoch with millisecond precision: how AWS JSON 1.1 encodes `Timestamp`
/// members (the SDK accepts integral and fractional numbers).
pub fn epoch_seconds(t: OffsetDateTime) -> Value {
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    json!(ms as f64 / 1000.0)
}

/// Builds one EventBridge event with the envelope AWS puts around service events (the shape of
/// the samples under `tests/tests/fixtures/events`).
pub fn eventbridge_event(
    detail_type: &str,
    source: &str,
    resources: Vec<String>,
    detail: Value,
) -> Value {
    json!({
        "version": "0",
        "id": uuid_v4(),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": event_time(OffsetDateTime::now_utc()),
        "region": REGION,
        "resources": resources,
        "detail": detail,
    })
}

#[derive(Default)]
struct BusInner {
    events: Mutex<Vec<Value>>,
    notify: tokio::sync::Notify,
}

/// The default EventBridge bus of the emulated account: emulators push service events onto it,
/// the test harness drains them and hands them to the Lambda handlers (as EventBridge rules would).
///
/// Cloning gives another handle on the same bus, so several emulators can share one.
#[derive(Clone, Default)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("pending", &self.len())
            .finish()
    }
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts one event on the bus.
    pub fn push(&self, event: Value) {
        lock(&self.inner.events).push(event);
        self.inner.notify.notify_waiters();
    }

    /// Takes every event on the bus, oldest first, leaving it empty.
    pub fn drain(&self) -> Vec<Value> {
        std::mem::take(&mut *lock(&self.inner.events))
    }

    /// A copy of the events on the bus, oldest first, without taking them.
    pub fn snapshot(&self) -> Vec<Value> {
        lock(&self.inner.events).clone()
    }

    /// How many events wait on the bus.
    pub fn len(&self) -> usize {
        lock(&self.inner.events).len()
    }

    /// Whether no event waits on the bus.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until an event matching `pred` is on the bus (it stays there) and returns a copy,
    /// or `None` after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = lock(&self.inner.events).iter().find(|e| pred(e)) {
                return Some(e.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// One request/response pair seen by an emulator.
#[derive(Clone, Debug, Serialize)]
pub struct Exchange {
    /// `"SSM.SendCommand"`, `"ACMPCA.IssueCertificate"`, …
    pub operation: String,
    /// The request body as received (AWS JSON 1.1 text).
    pub request: String,
    /// HTTP status of the answer.
    pub status: u16,
    /// The response body as sent.
    pub response: String,
}

#[derive(Default)]
struct CaptureInner {
    recording: bool,
    exchanges: Vec<Exchange>,
    calls: BTreeMap<String, u64>,
}

/// Everything that crossed the wire of the emulators sharing it: every request and response body
/// (so a test can assert that no private key ever did) and a call counter per operation.
///
/// Cloning gives another handle on the same capture. Recording bodies can be switched off for
/// large benchmarks ([`Capture::set_recording`]); the counters always run.
#[derive(Clone)]
pub struct Capture {
    inner: Arc<Mutex<CaptureInner>>,
}

impl Default for Capture {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("calls", &self.calls())
            .finish()
    }
}

impl Capture {
    /// An empty capture that records bodies.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(CaptureInner {
                recording: true,
                ..CaptureInner::default()
            })),
        }
    }

    /// Turns recording of bodies on or off (counters keep counting).
    pub fn set_recording(&self, on: bool) {
        lock(&self.inner).recording = on;
    }

    /// Records one exchange (used by the server plumbing).
    pub fn record(&self, operation: &str, request: &[u8], status: u16, response: &[u8]) {
        let mut g = lock(&self.inner);
        *g.calls.entry(operation.to_string()).or_insert(0) += 1;
        if g.recording {
            g.exchanges.push(Exchange {
                operation: operation.to_string(),
                request: String::from_utf8_lossy(request).into_owned(),
                status,
                response: String::from_utf8_lossy(response).into_owned(),
            });
        }
    }

    /// Every recorded exchange, oldest first.
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.inner).exchanges.clone()
    }

    /// Recorded exchanges of one operation (`"SSM.SendCommand"` …), oldest first.
    pub fn exchanges_of(&self, operation: &str) -> Vec<Exchange> {
        lock(&self.inner)
            .exchanges
            .iter()
            .filter(|e| e.operation == operation)
            .cloned()
            .collect()
    }

    /// The exchanges whose request or response body contains `needle`, e.g. `"PRIVATE KEY"`.
    /// Also searches the JSON-unescaped form, so a needle with `/` or newlines still matches.
    pub fn find(&self, needle: &str) -> Vec<Exchange> {
        let g = lock(&self.inner);
        g.exchanges
            .iter()
            .filter(|e| body_contains(&e.request, needle) || body_contains(&e.response, needle))
            .cloned()
            .collect()
    }

    /// Calls per operation, keyed `"SSM.SendCommand"`, `"ACMPCA.IssueCertificate"` …
    pub fn calls(&self) -> BTreeMap<String, u64> {
        lock(&self.inner).calls.clone()
    }

    /// Calls of one operation so far.
    pub fn calls_of(&self, operation: &str) -> u64 {
        lock(&self.inner).calls.get(operation).copied().unwrap_or(0)
    }

    /// Forgets recorded exchanges and counters.
    pub fn clear(&self) {
        let mut g = lock(&self.inner);
        g.exchanges.clear();
        g.calls.clear();
    }
}

/// Whether a JSON body contains `needle` raw, in any decoded string value, or inside a base64
/// blob (PCA's `Csr`) once decoded.
fn body_contains(body: &str, needle: &str) -> bool {
    if body.contains(needle) {
        return true;
    }
    fn walk(v: &Value, needle: &str) -> bool {
        match v {
            Value::String(s) => {
                if s.contains(needle) {
                    return true;
                }
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map(|b| String::from_utf8_lossy(&b).contains(needle))
                    .unwrap_or(false)
            }
            Value::Array(a) => a.iter().any(|x| walk(x, needle)),
            Value::Object(o) => o.values().any(|x| walk(x, needle)),
            _ => false,
        }
    }
    serde_json::from_str::<Value>(body)
        .map(|v| walk(&v, needle))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        let re = regex::Regex::new(
            "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        assert!(re.is_match(&u), "{u}");
    }

    #[test]
    fn capture_finds_inside_base64_and_escapes() {
        let c = Capture::new();
        let csr_b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode("-----BEGIN PRIVATE KEY-----\n")
        };
        c.record(
            "ACMPCA.IssueCertificate",
            format!("{{\"Csr\":\"{csr_b64}\"}}").as_bytes(),
            200,
            b"{}",
        );
        c.record("SSM.SendCommand", b"{\"a\":\"x\\/y\"}", 200, b"{}");
        assert_eq!(c.find("PRIVATE KEY").len(), 1);
        assert_eq!(c.find("x/y").len(), 1);
        assert_eq!(c.calls_of("SSM.SendCommand"), 1);
    }

    #[test]
    fn time_formats() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_795_256_040_123_000_000).unwrap();
        assert_eq!(event_time(t), "2026-11-21T10:14:00Z");
        assert_eq!(millis_time(t), "2026-11-21T10:14:00.123Z");
        assert_eq!(epoch_seconds(t), json!(1_795_256_040.123));
    }
}
