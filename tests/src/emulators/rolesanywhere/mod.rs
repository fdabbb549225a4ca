//! IAM Roles Anywhere emulator: the CRL operations of the service, over its real REST-JSON
//! (`restJson1`) wire protocol.
//!
//! Why: moto has no Roles Anywhere at all, and the CRL processor's correctness rests on what the
//! service does with its calls: `ImportCrl` creates a new CRL every time and the service keeps at
//! most 2 per trust anchor (not adjustable), so the original sample's "ImportCrl on every CRL"
//! breaks at the third; `UpdateCrl` replaces one (found with `ListCrls`, which pages). This
//! emulator lets the production adapter (aws-sdk-rolesanywhere through
//! `AWS_ENDPOINT_URL_ROLESANYWHERE`) run unchanged and shows a test what reached the trust anchor.
//!
//! Routes, members and status codes are the SDK's own (`aws-sdk-rolesanywhere` 1.125
//! `operation/*` request serializers and `protocol_serde/*`):
//!
//! | Operation  | Request                                   | Success            |
//! |------------|-------------------------------------------|--------------------|
//! | ImportCrl  | `POST /crls` {name, crlData, enabled, trustAnchorArn, tags} | 201 `{crl}` |
//! | ListCrls   | `GET /crls?pageSize=&nextToken=`          | 200 `{crls, nextToken}` |
//! | GetCrl     | `GET /crl/{crlId}`                        | 200 `{crl}`        |
//! | UpdateCrl  | `PATCH /crl/{crlId}` {name?, crlData?}    | 200 `{crl}`        |
//! | EnableCrl  | `POST /crl/{crlId}/enable`                | 200 `{crl}`        |
//! | DisableCrl | `POST /crl/{crlId}/disable`               | 200 `{crl}`        |
//! | DeleteCrl  | `DELETE /crl/{crlId}`                     | 200 `{crl}` (the deleted one) |
//!
//! `CrlDetail` is `{crlId, crlArn, name, enabled, crlData (base64), trustAnchorArn, createdAt,
//! updatedAt}` with the timestamps as RFC 3339 date-time strings (the SDK parses them with
//! `Format::DateTimeWithOffset`).
//!
//! Errors carry their code in the `x-amzn-errortype` header (what the SDK reads first) and in
//! the body as `{"__type", "message"}`:
//! - `ValidationException` (400): a member breaks the model (missing `name`/`crlData`/
//!   `trustAnchorArn`, name pattern `^[ a-zA-Z0-9-_]*$` or length 1–255, `crlData` 1–300,000
//!   bytes, trust anchor ARN pattern, more than 200 tags, bad `pageSize`/`nextToken`, a `crlId`
//!   that is not a UUID), `crlData` that is not a CRL (DER or PEM, parsed with x509-parser), and
//!   the third CRL of a trust anchor ([`MAX_CRLS_PER_TRUST_ANCHOR`]). The quota answer is an
//!   assumption: AWS does not document the code, and the SDK's model lists only
//!   `AccessDeniedException` and `ValidationException` for ImportCrl, so the emulator answers the
//!   modelled `ValidationException` (a typed `ImportCrlError::ValidationException` in the SDK).
//! - `ResourceNotFoundException` (404): unknown `crlId`, or a well-formed trust anchor ARN that
//!   does not exist (ImportCrl).
//! - `SerializationException` (400): a body that is not JSON or `crlData` that is not base64.
//! - `UnknownOperationException` (404): any other route.
//!
//! Every call is counted in the shared [`Capture`] as `RolesAnywhere.<Operation>`.
//!
//! Emulator limits: only the CRL operations and one (or more, [`RolesAnywhereHandle::add_trust_anchor`])
//! fake trust anchors; no tags API (tags are only counted); no request throttling (the real
//! service allows 1 CRL call per second); `enabled` defaults to `false` when ImportCrl omits it
//! (the service does not document its default: send it explicitly). The CRL's signature and
//! issuer are not checked against the trust anchor (our CRL processor must do that itself).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hyper::http::request::Parts;
use hyper::Method;
use serde_json::{json, Value};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer as _;

use super::wire::{self, ApiError, HttpApi, Server};
use super::{lock, millis_time, uuid_v4, Capture, ACCOUNT, REGION};

/// CRLs one trust anchor may have (the service quota, not adjustable).
pub const MAX_CRLS_PER_TRUST_ANCHOR: usize = 2;
/// Largest `crlData` the model accepts, in bytes.
pub const MAX_CRL_DATA: usize = 300_000;
/// Page size of ListCrls when the request gives none.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// How to start the Roles Anywhere emulator.
#[derive(Clone, Debug)]
pub struct RolesAnywhereConfig {
    /// Where exchanges and call counts go.
    pub capture: Capture,
    /// CRLs per trust anchor before ImportCrl refuses ([`MAX_CRLS_PER_TRUST_ANCHOR`]).
    pub max_crls_per_trust_anchor: usize,
    /// ListCrls page size when `pageSize` is absent.
    pub default_page_size: usize,
}

impl Default for RolesAnywhereConfig {
    fn default() -> Self {
        Self {
            capture: Capture::new(),
            max_crls_per_trust_anchor: MAX_CRLS_PER_TRUST_ANCHOR,
            default_page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// One CRL held by the emulated service, for test assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlView {
    /// The CRL's ID (a UUID).
    pub crl_id: String,
    /// Its ARN, `arn:aws:rolesanywhere:<region>:<account>:crl/<id>`.
    pub crl_arn: String,
    /// Its name.
    pub name: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// The CRL as DER (decoded if it was imported as PEM).
    pub der: Vec<u8>,
    /// `crlData` exactly as last imported or updated.
    pub data: Vec<u8>,
    /// The trust anchor it belongs to.
    pub trust_anchor_arn: String,
    /// When ImportCrl created it.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

struct CrlRecord {
    seq: u64,
    view: CrlView,
}

struct State {
    trust_anchors: Vec<String>,
    crls: Vec<CrlRecord>,
    next_seq: u64,
}

struct Shared {
    state: Mutex<State>,
    max_per_anchor: usize,
    default_page_size: usize,
}

/// A running Roles Anywhere emulator on `127.0.0.1:<port>`. Dropping it stops the server and
/// closes its connections.
pub struct RolesAnywhereHandle {
    shared: Arc<Shared>,
    server: Server,
    capture: Capture,
}

impl std::fmt::Debug for RolesAnywhereHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolesAnywhereHandle")
            .field("url", &self.url())
            .field("trust_anchor_arn", &self.trust_anchor_arn())
            .finish()
    }
}

fn new_trust_anchor_arn() -> String {
    format!(
        "arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:trust-anchor/{}",
        uuid_v4()
    )
}

/// Starts the emulator with one trust anchor ([`RolesAnywhereHandle::trust_anchor_arn`]).
pub async fn start(config: RolesAnywhereConfig) -> anyhow::Result<RolesAnywhereHandle> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            trust_anchors: vec![new_trust_anchor_arn()],
            crls: Vec::new(),
            next_seq: 1,
        }),
        max_per_anchor: config.max_crls_per_trust_anchor,
        default_page_size: config.default_page_size.max(1),
    });
    let server = wire::serve_http(
        "RolesAnywhere",
        "application/json",
        Arc::new(Api(shared.clone())),
        config.capture.clone(),
    )
    .await?;
    Ok(RolesAnywhereHandle {
        shared,
        server,
        capture: config.capture,
    })
}

impl RolesAnywhereHandle {
    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL_ROLESANYWHERE`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The trust anchor created at start
    /// (`arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/<uuid>`).
    pub fn trust_anchor_arn(&self) -> String {
        lock(&self.shared.state)
            .trust_anchors
            .first()
            .cloned()
            .unwrap_or_default()
    }

    /// Creates another trust anchor and returns its ARN.
    pub fn add_trust_anchor(&self) -> String {
        let arn = new_trust_anchor_arn();
        lock(&self.shared.state).trust_anchors.push(arn.clone());
        arn
    }

    /// The CRLs of one trust anchor, oldest first.
    pub fn crls_for(&self, trust_anchor_arn: &str) -> Vec<CrlView> {
        lock(&self.shared.state)
            .crls
            .iter()
            .filter(|c| c.view.trust_anchor_arn == trust_anchor_arn)
            .map(|c| c.view.clone())
            .collect()
    }

    /// Every CRL, oldest first.
    pub fn crls(&self) -> Vec<CrlView> {
        lock(&self.shared.state)
            .crls
            .iter()
            .map(|c| c.view.clone())
            .collect()
    }

    /// The capture this emulator records into.
    pub fn capture(&self) -> Capture {
        self.capture.clone()
    }

    /// Calls per operation (of every emulator sharing this capture).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.capture.calls()
    }
}

fn not_found(crl_id: &str) -> ApiError {
    ApiError::with_status(
        404,
        "ResourceNotFoundException",
        format!("Certificate revocation list (CRL) {crl_id} not found"),
    )
}

/// The route a request maps to: operation name and the `crlId` path label, if any.
fn route(method: &Method, path: &str) -> Option<(&'static str, Option<String>)> {
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let id = |s: &str| Some(percent_decode(s));
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["crls"]) => Some(("ImportCrl", None)),
        ("GET", ["crls"]) => Some(("ListCrls", None)),
        ("GET", ["crl", c]) => Some(("GetCrl", id(c))),
        ("PATCH", ["crl", c]) => Some(("UpdateCrl", id(c))),
        ("DELETE", ["crl", c]) => Some(("DeleteCrl", id(c))),
        ("POST", ["crl", c, "enable"]) => Some(("EnableCrl", id(c))),
        ("POST", ["crl", c, "disable"]) => Some(("DisableCrl", id(c))),
        _ => None,
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An untrusted value for an error message: at most 64 characters.
fn short(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(64).collect::<String>())
    }
}

fn query_params(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

struct Api(Arc<Shared>);

impl HttpApi for Api {
    fn route(&self, parts: &Parts, body: &[u8]) -> (String, Result<(u16, Value), ApiError>) {
        let path = parts.uri.path();
        let query = query_params(parts.uri.query());
        match route(&parts.method, path) {
            None => (
                "?".to_string(),
                Err(ApiError::with_status(
                    404,
                    "UnknownOperationException",
                    format!("the emulator does not implement {} {path}", parts.method),
                )),
            ),
            Some((op, crl_id)) => {
                let result = parse_body(body).and_then(|input| {
                    let mut st = lock(&self.0.state);
                    call(&self.0, &mut st, op, crl_id.as_deref(), &query, &input)
                });
                (op.to_string(), result)
            }
        }
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    let v = wire::parse_json_body(body)?;
    if !v.is_object() {
        return Err(ApiError::new(
            "SerializationException",
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

fn call(
    shared: &Shared,
    st: &mut State,
    op: &str,
    crl_id: Option<&str>,
    query: &BTreeMap<String, String>,
    input: &Value,
) -> Result<(u16, Value), ApiError> {
    let now = OffsetDateTime::now_utc();
    match op {
        "ImportCrl" => import_crl(shared, st, input, now).map(|v| (201, v)),
        "ListCrls" => list_crls(shared, st, query).map(|v| (200, v)),
        _ => {
            let id = crl_id.unwrap_or_default();
            check_crl_id(id)?;
            let idx = st
                .crls
                .iter()
                .position(|c| c.view.crl_id == id)
                .ok_or_else(|| not_found(id))?;
            match op {
                "GetCrl" => {}
                "UpdateCrl" => {
                    let name = match input.get("name") {
                        None | Some(Value::Null) => None,
                        Some(_) => Some(check_name(input)?),
                    };
                    let data = match input.get("crlData") {
                        None | Some(Value::Null) => None,
                        Some(_) => Some(crl_data(input)?),
                    };
                    let view = &mut st.crls[idx].view;
                    if let Some(n) = name {
                        view.name = n;
                    }
                    if let Some((data, der)) = data {
                        view.data = data;
                        view.der = der;
                    }
                    view.updated_at = now;
                }
                "EnableCrl" | "DisableCrl" => {
                    let view = &mut st.crls[idx].view;
                    view.enabled = op == "EnableCrl";
                    view.updated_at = now;
                }
                "DeleteCrl" => {
                    let gone = st.crls.remove(idx);
                    return Ok((200, json!({ "crl": detail(&gone.view) })));
                }
                _ => {
                    return Err(ApiError::with_status(
                        404,
                        "UnknownOperationException",
                        format!("unknown operation {op}"),
                    ))
                }
            }
            Ok((200, json!({ "crl": detail(&st.crls[idx].view) })))
        }
    }
}

/// `CrlDetail` as the SDK parses it.
fn detail(v: &CrlView) -> Value {
    json!({
        "crlId": v.crl_id,
        "crlArn": v.crl_arn,
        "name": v.name,
        "enabled": v.enabled,
        "crlData": base64::engine::general_purpose::STANDARD.encode(&v.data),
        "trustAnchorArn": v.trust_anchor_arn,
        "createdAt": millis_time(v.created_at),
        "updatedAt": millis_time(v.updated_at),
    })
}

fn check_crl_id(id: &str) -> Result<(), ApiError> {
    let ok = id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'crlId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-f0-9]{{8}}-([a-z0-9]{{4}}-){{3}}[a-z0-9]{{12}}",
            short(id)
        )))
    }
}

fn check_name(input: &Value) -> Result<String, ApiError> {
    let name = wire::input::req_str(input, "name")?;
    let len = name.chars().count();
    if !(1..=255).contains(&len) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'name' failed to satisfy constraint: Member must have length between 1 and 255 (was {len})"
        )));
    }
    if !name
        .chars()
        .all(|c| c == ' ' || c == '-' || c == '_' || c.is_ascii_alphanumeric())
    {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[ a-zA-Z0-9-_]*$",
            short(name)
        )));
    }
    Ok(name.to_string())
}

/// `crlData`: base64 → bytes (as sent) and the DER of the CRL they hold.
fn crl_data(input: &Value) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    let b64 = wire::input::req_str(input, "crlData")?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| {
            ApiError::new(
                "SerializationException",
                format!("crlData is not base64: {e}"),
            )
        })?;
    if data.is_empty() || data.len() > MAX_CRL_DATA {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'crlData' failed to satisfy constraint: Member must have length between 1 and {MAX_CRL_DATA}"
        )));
    }
    let invalid =
        || ApiError::validation("Invalid certificate revocation list (CRL) data: not an X.509 CRL");
    let der = if data.starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(&data).map_err(|_| invalid())?;
        if pem.label != "X509 CRL" {
            return Err(invalid());
        }
        pem.contents
    } else {
        data.clone()
    };
    let (rest, _) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
        .map_err(|_| invalid())?;
    if !rest.is_empty() {
        return Err(invalid());
    }
    Ok((data, der))
}

fn import_crl(
    shared: &Shared,
    st: &mut State,
    input: &Value,
    now: OffsetDateTime,
) -> Result<Value, ApiError> {
    if input.get("crlData").is_none() {
        return Err(ApiError::not_null("crlData"));
    }
    let name = check_name(input)?;
    let anchor = wire::input::req_str(input, "trustAnchorArn")?;
    static ARN_RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let arn_ok = ARN_RE
        .get_or_init(|| {
            regex::Regex::new(r"^arn:aws(-[^:]+)?:rolesanywhere(:.*){2}(:trust-anchor.*)$")
                .expect("trust anchor arn regex")
        })
        .is_match(anchor);
    if !arn_ok || anchor.len() > 1011 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'trustAnchorArn' failed to satisfy constraint: Member must satisfy regular expression pattern: ^arn:aws(-[^:]+)?:rolesanywhere(:.*){{2}}(:trust-anchor.*)$",
            short(anchor)
        )));
    }
    let tags = input
        .get("tags")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if tags > 200 {
        return Err(ApiError::validation(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 200",
        ));
    }
    let (data, der) = crl_data(input)?;
    if !st.trust_anchors.iter().any(|a| a == anchor) {
        return Err(ApiError::with_status(
            404,
            "ResourceNotFoundException",
            format!("Trust anchor {anchor} not found"),
        ));
    }
    let existing = st
        .crls
        .iter()
        .filter(|c| c.view.trust_anchor_arn == anchor)
        .count();
    if existing >= shared.max_per_anchor {
        return Err(ApiError::validation(format!(
            "Cannot import certificate revocation list (CRL): trust anchor {anchor} already has {existing} CRLs, the maximum allowed ({}). Update or delete an existing CRL.",
            shared.max_per_anchor
        )));
    }
    let enabled = input
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let crl_id = uuid_v4();
    let view = CrlView {
        crl_arn: format!("arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:crl/{crl_id}"),
        crl_id,
        name,
        enabled,
        der,
        data,
        trust_anchor_arn: anchor.to_string(),
        created_at: now,
        updated_at: now,
    };
    let out = json!({ "crl": detail(&view) });
    let seq = st.next_seq;
    st.next_seq += 1;
    st.crls.push(CrlRecord { seq, view });
    Ok(out)
}

fn encode_token(seq: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("crls-after:{seq}"))
}

fn decode_token(token: &str) -> Option<u64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("crls-after:")?
        .parse()
        .ok()
}

fn list_crls(
    shared: &Shared,
    st: &State,
    query: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let page_size = match query.get("pageSize") {
        None => shared.default_page_size,
        Some(p) => match p.parse::<i64>() {
            Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{}' at 'pageSize' failed to satisfy constraint: Member must have value greater than or equal to 1",
                    short(p)
                )))
            }
        },
    };
    let after = match query.get("nextToken") {
        None => 0,
        Some(t) => {
            decode_token(t).ok_or_else(|| ApiError::validation("Invalid pagination token"))?
        }
    };
    let rest: Vec<&CrlRecord> = st.crls.iter().filter(|c| c.seq > after).collect();
    let page = &rest[..rest.len().min(page_size)];
    let mut out = json!({
        "crls": page.iter().map(|c| detail(&c.view)).collect::<Vec<_>>(),
    });
    if rest.len() > page.len() {
        if let Some(last) = page.last() {
            out["nextToken"] = json!(encode_token(last.seq));
        }
    }
    Ok(out)
}
