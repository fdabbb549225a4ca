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
//!
//! Layout: this module holds the configuration, the CRL store (CRLs per trust anchor) and the
//! handle tests read it through; `api` the routes and the operations, `checks` the model's
//! constraints on members and the parsing of `crlData`.

mod api;
mod checks;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::wire::{self, Server};
use super::{lock, uuid_v4, Capture, ACCOUNT, REGION};
use api::Api;

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
