//! The fault plan inside our emulators.
//!
//! Why a registry: every emulator request passes through `emulators::wire`, but the emulators'
//! own configurations know nothing of faults (and should not: they model the services). A test
//! [`attach`]es a plan to an emulator by its URL; `wire` asks [`before`] about each request to
//! the port it serves, and answers the fault through its usual error path (so the answer has
//! the emulator's content type and lands in the capture like any other).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};

use hyper::http::request::Parts;

use super::rules::message;
use super::{kill, Call, FaultPlan, Reset, Service, Step};
use crate::emulators::lock;
use crate::emulators::wire::ApiError;

/// Plans by the port of the emulator they apply to (ports are unique per process while a server
/// lives, and test stacks in one process have their own servers).
static PLANS: LazyLock<Mutex<HashMap<u16, FaultPlan>>> = LazyLock::new(Default::default);

fn port(url: &str) -> anyhow::Result<u16> {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {url}"))
}

/// Applies `plan` to every request the emulator at `url` (`http://127.0.0.1:<port>`) receives.
pub fn attach(url: &str, plan: &FaultPlan) -> anyhow::Result<()> {
    lock(&PLANS).insert(port(url)?, plan.clone());
    Ok(())
}

/// Stops applying a plan to the emulator at `url`.
pub fn detach(url: &str) {
    if let Ok(p) = port(url) {
        lock(&PLANS).remove(&p);
    }
}

/// What the plan decided for one emulator request.
#[derive(Debug, Default)]
pub struct EmulatorFault {
    operation: String,
    answer: Option<ApiError>,
    hold: Option<kill::Hold>,
}

impl EmulatorFault {
    /// The error to answer instead of calling the emulator, if any.
    pub fn answer(&self) -> Option<ApiError> {
        self.answer.clone()
    }

    /// The operation's name without the emulator's label (what the capture records).
    pub fn operation(&self) -> String {
        self.operation.clone()
    }

    /// After the emulator answered: a kill switch that fired on this call holds the answer
    /// until the test lets it go, then the connection is dropped.
    pub async fn after(self) -> Result<(), Reset> {
        match self.hold {
            Some(h) => {
                h.wait().await;
                Err(Reset)
            }
            None => Ok(()),
        }
    }
}

/// Consults the plan attached to the emulator serving `addr` (labelled `label`) about one
/// request: `Err(Reset)` drops the connection, latency is slept here.
pub async fn before(
    addr: SocketAddr,
    label: &str,
    parts: &Parts,
    body: &[u8],
) -> Result<EmulatorFault, Reset> {
    let Some(plan) = lock(&PLANS).get(&addr.port()).cloned() else {
        return Ok(EmulatorFault::default());
    };
    let call = Call::classify(Service::from_label(label), parts, body);
    let operation = call
        .operation
        .split_once('.')
        .map(|(_, op)| op.to_owned())
        .unwrap_or_default();
    match plan.step(&call).await {
        Step::Reset => Err(Reset),
        Step::Pass(hold) => Ok(EmulatorFault {
            operation,
            answer: None,
            hold,
        }),
        Step::Answer(status, code) => Ok(EmulatorFault {
            operation,
            answer: Some(ApiError::with_status(status, &code, message(&code))),
            hold: None,
        }),
    }
}
