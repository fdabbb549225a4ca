//! The Roles Anywhere operations over `restJson1`: routing (method and path to operation,
//! path labels and query parameters percent-decoded), ImportCrl, ListCrls, GetCrl,
//! UpdateCrl, EnableCrl, DisableCrl and DeleteCrl on the CRL store, and CreateSession
//! (`POST /sessions`, answered by `session`).
//!
//! Why apart: this is the wire contract aws-sdk-rolesanywhere is tested against.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use hyper::http::request::Parts;
use hyper::Method;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::checks::{check_crl_id, check_name, crl_data, short};
use super::{CrlRecord, CrlView, Shared, State};
use crate::emulators::wire::{self, ApiError, HttpApi};
use crate::emulators::{lock, millis_time, uuid_v4, ACCOUNT, REGION};

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
        ("POST", ["sessions"]) => Some(("CreateSession", None)),
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

pub(super) struct Api(pub(super) Arc<Shared>);

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
            Some(("CreateSession", _)) => {
                let mut st = lock(&self.0.state);
                let result =
                    super::session::create_session(&mut st, parts, body, OffsetDateTime::now_utc());
                ("CreateSession".to_string(), result)
            }
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
    if !st.has_anchor(anchor) {
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
