//! A fault-injecting HTTP proxy on 127.0.0.1 in front of moto.
//!
//! Why a proxy: moto is a third-party server we do not change, and the functions' SDK clients
//! must stay real. Pointing the functions' DynamoDB, SNS and S3 endpoint at the proxy puts the
//! [`FaultPlan`] between them and moto: each request is read, classified ([`Call::classify`]),
//! and either answered with the service's own error (JSON 1.0 `__type` for DynamoDB, the query
//! protocol's XML `ErrorResponse` for SNS, S3's XML `Error`), delayed, dropped, or forwarded
//! unchanged, its answer streamed back as moto sends it.
//!
//! Each forwarded request gets its own upstream connection: moto's single-threaded server
//! answers one connection at a time and closes it after the answer.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::rules::message;
use super::{Call, FaultPlan, Reset, Service, Step};

type Body = BoxBody<Bytes, hyper::Error>;

/// The running proxy; dropping it stops accepting and closes its connections.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:<port>`) applying `plan`.
    pub async fn start(upstream: &str, plan: FaultPlan) -> anyhow::Result<FaultProxy> {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                while conns.try_join_next().is_some() {}
                let plan = plan.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let plan = plan.clone();
                        async move { proxy(&plan, upstream, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(FaultProxy { addr, task })
    }

    /// `http://127.0.0.1:<port>`: the endpoint to give the functions instead of moto's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Headers that belong to one hop, not to the exchange.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

async fn proxy(
    plan: &FaultPlan,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Reset> {
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await.map_err(upstream_failed)?.to_bytes();
    let call = Call::classify(None, &parts, &body);
    let hold = match plan.step(&call).await {
        Step::Reset => return Err(Reset),
        Step::Answer(status, code) => return Ok(error_response(call.service, status, &code)),
        Step::Pass(hold) => hold,
    };
    for h in HOP_BY_HOP {
        parts.headers.remove(*h);
    }
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(upstream_failed)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(upstream_failed)?;
    tokio::spawn(conn);
    let resp = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(upstream_failed)?;
    if let Some(h) = hold {
        h.wait().await;
        return Err(Reset);
    }
    let (mut parts, body) = resp.into_parts();
    for h in HOP_BY_HOP {
        parts.headers.remove(*h);
    }
    Ok(Response::from_parts(parts, body.boxed()))
}

/// A failure between the proxy and its client or moto: the client sees its connection dropped,
/// as it would without the proxy.
fn upstream_failed(e: impl std::fmt::Display) -> Reset {
    tracing::warn!(error = %e, "fault proxy: exchange failed");
    Reset
}

/// The service's error answer, in its protocol.
fn error_response(service: Service, status: u16, code: &str) -> Response<Body> {
    let id = crate::emulators::uuid_v4();
    let text = message(code);
    let (content_type, body) = match service {
        Service::DynamoDb => (
            "application/x-amz-json-1.0",
            serde_json::json!({
                "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
                "message": text,
            })
            .to_string(),
        ),
        Service::Sqs => (
            "application/x-amz-json-1.0",
            serde_json::json!({ "__type": format!("com.amazonaws.sqs#{code}"), "message": text })
                .to_string(),
        ),
        Service::S3 => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{text}</Message><RequestId>{id}</RequestId><HostId>{id}</HostId></Error>"
            ),
        ),
        // SNS (and any other query-protocol service): the query protocol's error document.
        _ => (
            "text/xml",
            format!(
                "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>{}</Type><Code>{code}</Code><Message>{text}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
                if status < 500 { "Sender" } else { "Receiver" }
            ),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", &id)
        .header("x-amz-request-id", &id)
        .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
        .unwrap_or_else(|_| Response::new(Full::default().map_err(|e| match e {}).boxed()))
}
