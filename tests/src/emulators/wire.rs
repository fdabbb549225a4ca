//! HTTP server plumbing shared by the emulators.
//!
//! Why: SSM and ACM-PCA speak AWS JSON 1.1 and Roles Anywhere speaks restJson1, and the SDK is
//! strict about both envelopes: answers carry the protocol's content type, and errors are an HTTP
//! 4xx/5xx whose body carries the error code in `__type` (the SDK's error parser reads it there,
//! or from `x-amzn-ErrorType`). One server here does that once ([`serve_http`], for any
//! [`HttpApi`]), records every exchange in a [`Capture`], and stops when its [`Server`] is
//! dropped. [`serve`] adds the AWS JSON 1.1 routing (`POST /`, the operation in
//! `X-Amz-Target: <Prefix>.<Operation>`) for a [`JsonApi`].

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::Capture;

/// An AWS error answer: the code goes to `__type`, the text to `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (400 for client errors, 500 for `InternalServerError`).
    pub status: u16,
    /// The error code the SDK maps to a typed error (`InvalidParameters`, `MalformedCSRException` …).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with the given HTTP status and code.
    pub fn with_status(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// A client error (HTTP 400).
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self::with_status(400, code, message)
    }

    /// `ValidationException`: what AWS answers when a request breaks the model's constraints
    /// (lengths, ranges, enums) before the operation itself looks at it.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    /// The `ValidationException` for a missing required member; `member` is named as AWS names
    /// it in the message (`instanceIds`, `validity.value`).
    pub fn not_null(member: &str) -> Self {
        Self::validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    }

    /// A server error (HTTP 500) with the given code.
    pub fn internal(code: &str, message: impl Into<String>) -> Self {
        Self::with_status(500, code, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// What an AWS JSON 1.1 emulator implements: one call per operation, JSON in, JSON out.
pub trait JsonApi: Send + Sync + 'static {
    /// Answers one operation (`op` is the part after the dot in `X-Amz-Target`).
    fn call(&self, op: &str, input: Value) -> Result<Value, ApiError>;
}

/// What any emulator implements: one answer per HTTP request.
pub trait HttpApi: Send + Sync + 'static {
    /// Answers one request: the operation it maps to (what the capture records after the label;
    /// `"?"` when it maps to none) and the status and JSON body of the answer, or an error.
    fn route(&self, parts: &Parts, body: &[u8]) -> (String, Result<(u16, Value), ApiError>);
}

/// A running emulator endpoint on `127.0.0.1:<ephemeral port>`. Dropping it stops accepting and
/// closes every open connection.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// `http://127.0.0.1:<port>`: what goes into `AWS_ENDPOINT_URL_<SERVICE>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `api` over AWS JSON 1.1.
///
/// `target_prefix` is what precedes the dot in `X-Amz-Target` (`AmazonSSM`, `ACMPrivateCA`);
/// `label` prefixes the operation in the capture and the call counters (`SSM`, `ACMPCA`).
pub async fn serve(
    target_prefix: &'static str,
    label: &'static str,
    api: Arc<dyn JsonApi>,
    capture: Capture,
) -> std::io::Result<Server> {
    let api = Arc::new(JsonRpc { target_prefix, api });
    serve_http(label, "application/x-amz-json-1.1", api, capture).await
}

/// Serves `api` over HTTP/1.1: every answer has `content_type`, every exchange is recorded in
/// `capture` as `<label>.<operation>`.
pub async fn serve_http(
    label: &'static str,
    content_type: &'static str,
    api: Arc<dyn HttpApi>,
    capture: Capture,
) -> std::io::Result<Server> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        // Connection tasks live in this set: aborting the accept loop drops the set, which
        // aborts them all.
        let mut conns = JoinSet::new();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, emulator = label, "emulator accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            while conns.try_join_next().is_some() {}
            let api = api.clone();
            let capture = capture.clone();
            conns.spawn(async move {
                let svc = service_fn(move |req| {
                    let api = api.clone();
                    let capture = capture.clone();
                    async move { handle(addr, label, content_type, &*api, &capture, req).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(Server { addr, task })
}

/// One exchange. A test's fault plan (`crate::faults::hook`) may answer an error instead, delay
/// the request, or drop the connection (`Err`).
async fn handle(
    addr: SocketAddr,
    label: &str,
    content_type: &str,
    api: &dyn HttpApi,
    capture: &Capture,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, crate::faults::Reset> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let fault = crate::faults::hook::before(addr, label, &parts, &body).await?;
    let (op, result) = match fault.answer() {
        Some(e) => (fault.operation(), Err(e)),
        None => api.route(&parts, &body),
    };
    let (status, out, error_code) = match result {
        Ok((status, v)) => (status, serde_json::to_vec(&v).unwrap_or_default(), None),
        Err(e) => {
            let b = json!({ "__type": e.code, "message": e.message });
            (
                e.status,
                serde_json::to_vec(&b).unwrap_or_default(),
                Some(e.code),
            )
        }
    };
    capture.record(&format!("{label}.{op}"), &body, status, &out);
    let mut resp = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .header("content-type", content_type)
        .header("x-amzn-requestid", super::uuid_v4());
    if let Some(code) = error_code {
        resp = resp.header("x-amzn-errortype", code);
    }
    let resp = resp
        .body(Full::new(Bytes::from(out)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
    fault.after().await?;
    Ok(resp)
}

/// A JSON request body: empty (or blank) is `{}`, anything else must parse, else
/// `SerializationException`.
pub fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new("SerializationException", e.to_string()))
}

/// AWS JSON 1.1 routing in front of a [`JsonApi`]: `POST`, the operation in `X-Amz-Target`,
/// success is 200.
struct JsonRpc {
    target_prefix: &'static str,
    api: Arc<dyn JsonApi>,
}

impl HttpApi for JsonRpc {
    fn route(&self, parts: &Parts, body: &[u8]) -> (String, Result<(u16, Value), ApiError>) {
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let op = target
            .strip_prefix(self.target_prefix)
            .and_then(|r| r.strip_prefix('.'))
            .unwrap_or("");
        let result = if parts.method != hyper::Method::POST || op.is_empty() {
            Err(ApiError::new(
                "UnknownOperationException",
                format!("unknown operation or target {target:?}"),
            ))
        } else {
            parse_json_body(body)
                .and_then(|i| self.api.call(op, i))
                .map(|v| (200, v))
        };
        let op = if op.is_empty() { "?" } else { op };
        (op.to_string(), result)
    }
}

/// Helpers to read AWS JSON 1.1 inputs with the service's own validation errors.
pub mod input {
    use super::ApiError;
    use serde_json::Value;

    /// A required string member, else `ValidationException` (as AWS's model validation answers).
    pub fn req_str<'a>(v: &'a Value, name: &str) -> Result<&'a str, ApiError> {
        v.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::not_null(&lower_first(name)))
    }

    /// An optional string member.
    pub fn opt_str<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
        v.get(name).and_then(Value::as_str)
    }

    /// An optional integer member.
    pub fn opt_i64(v: &Value, name: &str) -> Option<i64> {
        v.get(name).and_then(Value::as_i64)
    }

    /// An optional boolean member.
    pub fn opt_bool(v: &Value, name: &str) -> Option<bool> {
        v.get(name).and_then(Value::as_bool)
    }

    /// An optional list of strings (missing → empty).
    pub fn str_list(v: &Value, name: &str) -> Vec<String> {
        v.get(name)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `InstanceIds` → `instanceIds`: how AWS names members in validation messages.
    pub fn lower_first(s: &str) -> String {
        let mut c = s.chars();
        match c.next() {
            Some(f) => f.to_lowercase().chain(c).collect(),
            None => String::new(),
        }
    }
}
