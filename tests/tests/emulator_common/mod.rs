//! Helpers shared by the emulator test binaries (`emulators`, `emulators_crl`).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

/// A file under `tests/fixtures`.
pub fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

/// A sample EventBridge event from `tests/fixtures/events` (copies of `/work/shared/events`).
pub fn sample_event(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("events/{name}"))).unwrap())
        .unwrap()
}

/// The member names of a JSON object (empty for anything else).
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The DER inside a PEM block.
pub fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("pem base64")
}

/// The fixed envelope values of an event equal the sample's, and its `time` has second
/// precision as EventBridge writes it.
pub fn assert_envelope_values(e: &Value, sample: &Value) {
    for k in ["version", "detail-type", "source", "account", "region"] {
        assert_eq!(e[k], sample[k], "{k} of {e}");
    }
    let time_re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").unwrap();
    assert!(time_re.is_match(e["time"].as_str().unwrap()), "{e}");
}
