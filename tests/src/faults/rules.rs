//! What a fault rule matches, and what the service answers when it fires.
//!
//! Why here and not in each emulator: one vocabulary for every service of the local stack. A
//! request is reduced to a [`Call`] (the service, the names its operation answers to, and the
//! text a host match searches), whether it reaches moto through the
//! [proxy](super::proxy) or one of our emulators through `emulators::wire`; a [`Rule`] picks calls
//! and says which [`Fault`] to inject. The error a fault answers is the one the real service
//! sends, in its own protocol ([`Service::error`]), so the SDK parses and classifies it as it
//! would in production: that is the whole point of injecting on the wire rather than mocking a
//! port.

use std::time::Duration;

use hyper::http::request::Parts;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The services of the local stack, as told apart on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// DynamoDB (AWS JSON 1.0, `X-Amz-Target: DynamoDB_20120810.<Op>`).
    DynamoDb,
    /// SNS (query protocol, `Action=<Op>&Version=2010-03-31`).
    Sns,
    /// SQS (AWS JSON 1.0 `AmazonSQS.<Op>`, or the query protocol).
    Sqs,
    /// S3 (REST-XML: the operation is the method and the path).
    S3,
    /// Run Command (AWS JSON 1.1 `AmazonSSM.<Op>`).
    Ssm,
    /// Private CA (AWS JSON 1.1 `ACMPrivateCA.<Op>`).
    AcmPca,
    /// Roles Anywhere (restJson1: the operation is a route).
    RolesAnywhere,
}

impl Service {
    /// The prefix of canonical operation names (`DynamoDB.UpdateItem`): the labels the emulators'
    /// capture already uses for theirs.
    pub fn label(self) -> &'static str {
        match self {
            Service::DynamoDb => "DynamoDB",
            Service::Sns => "SNS",
            Service::Sqs => "SQS",
            Service::S3 => "S3",
            Service::Ssm => "SSM",
            Service::AcmPca => "ACMPCA",
            Service::RolesAnywhere => "RolesAnywhere",
        }
    }

    /// The service an emulator serves, from its capture label.
    pub fn from_label(label: &str) -> Option<Service> {
        [
            Service::DynamoDb,
            Service::Sns,
            Service::Sqs,
            Service::S3,
            Service::Ssm,
            Service::AcmPca,
            Service::RolesAnywhere,
        ]
        .into_iter()
        .find(|s| s.label() == label)
    }

    /// The HTTP status and error code `fault` answers with on this service (None: the fault is
    /// no answer: latency, a reset).
    ///
    /// Throttling, as each service really answers it (and as the SDK's models and the services'
    /// common-error pages name it): DynamoDB 400 `ThrottlingException` (modeled on its data
    /// plane, beside `ProvisionedThroughputExceededException`, which [`Fault::Error`] can pick);
    /// SSM and Private CA 400 `ThrottlingException`; SNS 400 `Throttling` (the query protocol's
    /// common error; Publish models no throttling error of its own); S3 503 `SlowDown`; Roles
    /// Anywhere 429 `ThrottlingException` (its model has no throttling shape, so the SDK sees it
    /// by code only; the status is what restJson front doors send, and [`Fault::Error`] answers
    /// 400 instead where a test wants the common-error page's status).
    pub fn error(self, fault: &Fault) -> Option<(u16, String)> {
        let (status, code) = match fault {
            Fault::Throttle => match self {
                Service::Sns => (400, "Throttling"),
                Service::S3 => (503, "SlowDown"),
                Service::RolesAnywhere => (429, "ThrottlingException"),
                Service::Sqs => (400, "RequestThrottled"),
                _ => (400, "ThrottlingException"),
            },
            Fault::Status(500) => match self {
                Service::DynamoDb | Service::Ssm => (500, "InternalServerError"),
                Service::S3 => (500, "InternalError"),
                Service::RolesAnywhere => (500, "InternalServerException"),
                _ => (500, "InternalFailure"),
            },
            Fault::Status(status) => (*status, "ServiceUnavailable"),
            Fault::Error { status, code } => return Some((*status, code.clone())),
            Fault::Latency(_) | Fault::Reset => return None,
        };
        Some((status, code.to_owned()))
    }
}

/// The message an injected error carries (the services' own wording where it is well known).
pub fn message(code: &str) -> &'static str {
    match code {
        "SlowDown" => "Please reduce your request rate.",
        "ProvisionedThroughputExceededException" => {
            "The level of configured provisioned throughput for the table was exceeded."
        }
        c if c.contains("Throttl") => "Rate exceeded",
        _ => "We encountered an internal error. Please try again. (injected fault)",
    }
}

/// What a rule injects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The service's own throttling error (see [`Service::error`]).
    Throttle,
    /// An HTTP 5xx (500 or 503) with the service's generic code (`InternalServerError`,
    /// `InternalFailure`, `InternalError` (S3), `ServiceUnavailable`).
    Status(u16),
    /// Any error code with any status, rendered in the service's protocol
    /// (e.g. 400 `ProvisionedThroughputExceededException`).
    Error {
        /// HTTP status.
        status: u16,
        /// The error code (DynamoDB's is sent fully qualified, as DynamoDB does).
        code: String,
    },
    /// The call goes through after this delay.
    Latency(Duration),
    /// The connection is dropped without an answer (the request was read, nothing is sent back).
    Reset,
}

impl Fault {
    /// DynamoDB's provisioned-capacity throttle.
    pub fn provisioned_throughput() -> Fault {
        Fault::Error {
            status: 400,
            code: "ProvisionedThroughputExceededException".into(),
        }
    }
}

/// One request, as rules see it.
#[derive(Clone, Debug)]
pub struct Call {
    /// Which service it is for.
    pub service: Service,
    /// Canonical name, `<Service label>.<Operation>`: `DynamoDB.UpdateItem`, `SNS.Publish`,
    /// `ACMPCA.IssueCertificate`, `RolesAnywhere.ImportCrl`, `S3.GET /bucket/key`.
    pub operation: String,
    /// Other names the operation answers to: the raw `X-Amz-Target`
    /// (`DynamoDB_20120810.UpdateItem`), `Action=Publish`, `<Service>.<METHOD> <path>`.
    pub aliases: Vec<String>,
    /// What a host match searches: the request's path and query, then its body.
    pub text: String,
}

impl Call {
    /// Reads a request. `service` is known for an emulator (its label); for moto it is told
    /// from the request itself.
    pub fn classify(service: Option<Service>, parts: &Parts, body: &[u8]) -> Call {
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let target = header("x-amz-target");
        let body_text = String::from_utf8_lossy(body).into_owned();
        let path = parts.uri.path();
        let route = format!("{} {}", parts.method, path);
        let form = header("content-type").starts_with("application/x-www-form-urlencoded");
        let action = form
            .then(|| form_value(&body_text, "Action"))
            .flatten()
            .or_else(|| parts.uri.query().and_then(|q| form_value(q, "Action")));
        let service = service.unwrap_or_else(|| {
            if target.starts_with("DynamoDB_") {
                Service::DynamoDb
            } else if target.starts_with("AmazonSQS") {
                Service::Sqs
            } else if action.is_some() {
                match form_value(&body_text, "Version").as_deref() {
                    Some("2012-11-05") => Service::Sqs,
                    _ => Service::Sns,
                }
            } else {
                Service::S3
            }
        });
        let label = service.label();
        let op = if let Some((_, op)) = target.split_once('.') {
            op.to_owned()
        } else if let Some(a) = &action {
            a.clone()
        } else if service == Service::RolesAnywhere {
            rolesanywhere_operation(parts.method.as_str(), path)
                .unwrap_or(&route)
                .to_owned()
        } else {
            route.clone()
        };
        let mut aliases = vec![format!("{label}.{route}")];
        if !target.is_empty() {
            aliases.push(target.to_owned());
        }
        if let Some(a) = &action {
            aliases.push(format!("Action={a}"));
        }
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        Call {
            service,
            operation: format!("{label}.{op}"),
            aliases,
            text: format!("{path}{query}\n{body_text}"),
        }
    }

    /// Whether this call answers to `pattern`: a canonical name or an alias, exactly, or by
    /// prefix when the pattern ends in `*` (`S3.GET /cert-rotation-crl/*`, `DynamoDB.*`).
    pub fn answers_to(&self, pattern: &str) -> bool {
        let names = std::iter::once(&self.operation).chain(&self.aliases);
        match pattern.strip_suffix('*') {
            Some(prefix) => names.into_iter().any(|n| n.starts_with(prefix)),
            None => names.into_iter().any(|n| n == pattern),
        }
    }
}

/// Roles Anywhere's routes (from its model's HTTP bindings) for the CRL operations.
fn rolesanywhere_operation(method: &str, path: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    Some(match (method, segs.as_slice()) {
        ("POST", ["crls"]) => "ImportCrl",
        ("GET", ["crls"]) => "ListCrls",
        ("GET", ["crl", _]) => "GetCrl",
        ("PATCH", ["crl", _]) => "UpdateCrl",
        ("DELETE", ["crl", _]) => "DeleteCrl",
        ("POST", ["crl", _, "enable"]) => "EnableCrl",
        ("POST", ["crl", _, "disable"]) => "DisableCrl",
        _ => return None,
    })
}

/// The value of `key` in a form-encoded string (values we match on need no decoding).
fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

/// When a rule fires: which calls, how many, how often, and the fault.
///
/// ```text
/// Rule::on("DynamoDB.UpdateItem").host("mi-0000000000000001").times(3).fault(Fault::Throttle)
/// Rule::on("SSM.SendCommand").nth(2).fault(Fault::Reset)        // the 2nd SendCommand only
/// Rule::any().rate(0.2, seed).fault(Fault::Status(503))         // 20% of everything, seeded
/// ```
#[derive(Debug)]
pub struct Rule {
    operation: Option<String>,
    host: Option<String>,
    skip: u64,
    times: Option<u64>,
    rate: Option<(f64, StdRng)>,
    fault: Fault,
    seen: u64,
    fired: u64,
}

impl Rule {
    /// Calls answering to `pattern` (see [`Call::answers_to`]). The fault defaults to
    /// [`Fault::Throttle`], every time.
    pub fn on(pattern: &str) -> Rule {
        Rule {
            operation: Some(pattern.to_owned()),
            ..Rule::any()
        }
    }

    /// Every call.
    pub fn any() -> Rule {
        Rule {
            operation: None,
            host: None,
            skip: 0,
            times: None,
            rate: None,
            fault: Fault::Throttle,
            seen: 0,
            fired: 0,
        }
    }

    /// Only calls whose path, query or body contains `needle` (a host ID, an instance ID, a
    /// certificate ARN).
    pub fn host(mut self, needle: &str) -> Rule {
        self.host = Some(needle.to_owned());
        self
    }

    /// Lets the first `n` matching calls through.
    pub fn skip(mut self, n: u64) -> Rule {
        self.skip = n;
        self
    }

    /// Fires on the `n`th matching call only (1-based).
    pub fn nth(self, n: u64) -> Rule {
        self.skip(n.saturating_sub(1)).times(1)
    }

    /// Fires at most `n` times.
    pub fn times(mut self, n: u64) -> Rule {
        self.times = Some(n);
        self
    }

    /// Fires on each matching call with probability `p`, drawn from a generator seeded with
    /// `seed`: the same seed gives the same sequence of decisions for the same calls.
    pub fn rate(mut self, p: f64, seed: u64) -> Rule {
        self.rate = Some((p, StdRng::seed_from_u64(seed)));
        self
    }

    /// What to inject.
    pub fn fault(mut self, fault: Fault) -> Rule {
        self.fault = fault;
        self
    }

    /// Counts `call` if it matches and says whether the rule fires on it.
    pub(crate) fn fires(&mut self, call: &Call) -> Option<Fault> {
        if self
            .operation
            .as_deref()
            .is_some_and(|p| !call.answers_to(p))
            || self.host.as_deref().is_some_and(|h| !call.text.contains(h))
        {
            return None;
        }
        self.seen += 1;
        if self.seen <= self.skip || self.times.is_some_and(|t| self.fired >= t) {
            return None;
        }
        if let Some((p, rng)) = &mut self.rate {
            if rng.random::<f64>() >= *p {
                return None;
            }
        }
        self.fired += 1;
        Some(self.fault.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = hyper::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn calls_are_named_per_protocol() {
        let c = Call::classify(
            None,
            &parts(
                "POST",
                "/",
                &[("x-amz-target", "DynamoDB_20120810.UpdateItem")],
            ),
            br#"{"Key":{"hostID":{"S":"mi-1"}}}"#,
        );
        assert_eq!(c.service, Service::DynamoDb);
        assert_eq!(c.operation, "DynamoDB.UpdateItem");
        assert!(c.answers_to("DynamoDB_20120810.UpdateItem") && c.answers_to("DynamoDB.*"));
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let c = Call::classify(
            None,
            &parts("POST", "/", &form),
            b"Action=Publish&Version=2010-03-31&TopicArn=x",
        );
        assert_eq!(
            (c.service, c.operation.as_str()),
            (Service::Sns, "SNS.Publish")
        );
        assert!(c.answers_to("Action=Publish"));
        let c = Call::classify(None, &parts("GET", "/bucket/crl/a.crl", &[]), b"");
        assert_eq!(c.service, Service::S3);
        assert!(c.answers_to("S3.GET /bucket/*"));
        let c = Call::classify(
            Some(Service::RolesAnywhere),
            &parts("POST", "/crl/abc/enable", &[]),
            b"",
        );
        assert_eq!(c.operation, "RolesAnywhere.EnableCrl");
        assert!(c.answers_to("RolesAnywhere.POST /crl/abc/enable"));
    }

    #[test]
    fn rules_count_skip_and_stop() {
        let call = |body: &str| {
            Call::classify(
                Some(Service::Ssm),
                &parts("POST", "/", &[("x-amz-target", "AmazonSSM.SendCommand")]),
                body.as_bytes(),
            )
        };
        let mut r = Rule::on("SSM.SendCommand").host("mi-2").nth(2);
        let fired: Vec<bool> = ["mi-1", "mi-2", "mi-2", "mi-2"]
            .iter()
            .map(|h| r.fires(&call(h)).is_some())
            .collect();
        assert_eq!(fired, [false, false, true, false]);
    }
}
