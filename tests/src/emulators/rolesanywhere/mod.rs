//! IAM Roles Anywhere emulator: the CRL operations of the service and CreateSession, over its
//! real REST-JSON (`restJson1`) wire protocol.
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
//! | CreateSession | `POST /sessions` {profileArn, roleArn, trustAnchorArn, durationSeconds?}, signed with the host's X.509 key | 201 `{credentialSet, subjectArn}` |
//!
//! CreateSession (module [`session`]) is what a host's certificate is for: it checks the
//! request's signature against the presented certificate, the chain to the trust anchor's
//! source CA, validity, the anchor's enabled CRLs, and that the profile, role and anchor exist
//! and are enabled. Its real clients only speak HTTPS, so the emulator also listens over TLS
//! ([`RolesAnywhereHandle::tls_url`], a server certificate for 127.0.0.1 from a CA whose PEM is
//! at [`RolesAnywhereHandle::ca_bundle`]); both ports serve every route. Trust anchors, profiles
//! and roles are created by the test ([`RolesAnywhereHandle::create_template_resources`] makes
//! the CloudFormation template's).
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
//! Emulator limits: only the CRL operations and CreateSession, and one (or more,
//! [`RolesAnywhereHandle::add_trust_anchor`]) trust anchors; trust anchors, profiles and roles
//! are set through the handle, not the API; no tags API (tags are only counted); no request throttling (the real
//! service allows 1 CRL call per second); `enabled` defaults to `false` when ImportCrl omits it
//! (the service does not document its default: send it explicitly). The CRL's signature and
//! issuer are not checked against the trust anchor (our CRL processor must do that itself).
//!
//! Layout: this module holds the configuration, the store (trust anchors, CRLs, profiles, roles,
//! sessions) and the handle tests read it through; `api` the routes and the CRL operations,
//! `checks` the model's constraints on members and the parsing of `crlData`, `session`
//! CreateSession.

mod api;
mod checks;
pub mod session;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::tls::{self, TlsFront};
use super::wire::{self, Server};
use super::{lock, uuid_v4, Capture, ACCOUNT, REGION};
use api::Api;
pub use session::{ProfileSpec, ProfileView, RoleView, SessionAttempt};

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

/// A trust anchor: its ARN, whether it is enabled, and its source (the CA certificate that
/// certificates presented to CreateSession must chain to; none until a test sets one).
struct TrustAnchor {
    arn: String,
    enabled: bool,
    source_ca_der: Option<Vec<u8>>,
}

struct State {
    trust_anchors: Vec<TrustAnchor>,
    crls: Vec<CrlRecord>,
    next_seq: u64,
    profiles: Vec<ProfileView>,
    roles: Vec<RoleView>,
    sessions: Vec<SessionAttempt>,
}

impl State {
    fn anchor(&self, arn: &str) -> Option<&TrustAnchor> {
        self.trust_anchors.iter().find(|a| a.arn == arn)
    }

    fn has_anchor(&self, arn: &str) -> bool {
        self.anchor(arn).is_some()
    }
}

struct Shared {
    state: Mutex<State>,
    max_per_anchor: usize,
    default_page_size: usize,
}

/// A running Roles Anywhere emulator on `127.0.0.1:<port>` (HTTP) and another port (HTTPS).
/// Dropping it stops both and closes their connections.
pub struct RolesAnywhereHandle {
    shared: Arc<Shared>,
    // Dropped before the server it relays to.
    tls: TlsFront,
    server: Server,
    capture: Capture,
}

/// The Roles Anywhere resources the CloudFormation template creates (`TrustAnchor` with the
/// Private CA as its source, `HostSampleRole` with `MaxSessionDuration: 3600`, `HostProfile`
/// with `DurationSeconds: 3600` and that one role, all enabled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateResources {
    /// `TrustAnchorArn` (the emulator's first trust anchor).
    pub trust_anchor_arn: String,
    /// `ProfileArn`.
    pub profile_arn: String,
    /// `HostSampleRole`'s ARN.
    pub role_arn: String,
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
            trust_anchors: vec![TrustAnchor {
                arn: new_trust_anchor_arn(),
                enabled: true,
                source_ca_der: None,
            }],
            crls: Vec::new(),
            next_seq: 1,
            profiles: Vec::new(),
            roles: Vec::new(),
            sessions: Vec::new(),
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
    let tls = tls::start("RolesAnywhere", server.addr()).await?;
    Ok(RolesAnywhereHandle {
        shared,
        tls,
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
            .map(|a| a.arn.clone())
            .unwrap_or_default()
    }

    /// Creates another trust anchor and returns its ARN.
    pub fn add_trust_anchor(&self) -> String {
        let arn = new_trust_anchor_arn();
        lock(&self.shared.state).trust_anchors.push(TrustAnchor {
            arn: arn.clone(),
            enabled: true,
            source_ca_der: None,
        });
        arn
    }

    /// `https://127.0.0.1:<port>`: the same API over TLS, for clients that only speak HTTPS
    /// (CreateSession's clients); trust [`ca_bundle`](Self::ca_bundle) to reach it.
    pub fn tls_url(&self) -> String {
        self.tls.url()
    }

    /// The file (PEM) holding the CA of the TLS endpoint's server certificate.
    pub fn ca_bundle(&self) -> std::path::PathBuf {
        self.tls.ca_bundle().to_path_buf()
    }

    /// Makes `ca_pem` (a PEM certificate, the Private CA's) the source of a trust anchor: the CA
    /// CreateSession's certificates must chain to.
    pub fn set_trust_anchor_source(
        &self,
        trust_anchor_arn: &str,
        ca_pem: &str,
    ) -> anyhow::Result<()> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("trust anchor source is not a PEM certificate: {e}"))?;
        let mut st = lock(&self.shared.state);
        let anchor = st
            .trust_anchors
            .iter_mut()
            .find(|a| a.arn == trust_anchor_arn)
            .ok_or_else(|| anyhow::anyhow!("no trust anchor {trust_anchor_arn}"))?;
        anchor.source_ca_der = Some(pem.contents);
        Ok(())
    }

    /// Enables or disables a trust anchor (as EnableTrustAnchor / DisableTrustAnchor would).
    pub fn set_trust_anchor_enabled(&self, trust_anchor_arn: &str, enabled: bool) {
        let mut st = lock(&self.shared.state);
        if let Some(a) = st
            .trust_anchors
            .iter_mut()
            .find(|a| a.arn == trust_anchor_arn)
        {
            a.enabled = enabled;
        }
    }

    /// Creates an IAM role profiles can name; returns its ARN.
    pub fn create_role(&self, name: &str, max_session_duration: i64) -> String {
        let arn = format!("arn:aws:iam::{ACCOUNT}:role/{name}");
        lock(&self.shared.state).roles.push(RoleView {
            arn: arn.clone(),
            name: name.to_string(),
            max_session_duration,
        });
        arn
    }

    /// Creates a profile; returns its ARN.
    pub fn create_profile(&self, spec: ProfileSpec) -> String {
        let arn = format!(
            "arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:profile/{}",
            uuid_v4()
        );
        lock(&self.shared.state).profiles.push(ProfileView {
            arn: arn.clone(),
            name: spec.name,
            enabled: spec.enabled,
            duration_seconds: spec.duration_seconds,
            role_arns: spec.role_arns,
        });
        arn
    }

    /// Enables or disables a profile (as EnableProfile / DisableProfile would).
    pub fn set_profile_enabled(&self, profile_arn: &str, enabled: bool) {
        let mut st = lock(&self.shared.state);
        if let Some(p) = st.profiles.iter_mut().find(|p| p.arn == profile_arn) {
            p.enabled = enabled;
        }
    }

    /// Creates what `cloudformation/template.yaml` creates for stack `stack_name`, with
    /// `ca_pem` (the Private CA's certificate) as the first trust anchor's source.
    pub fn create_template_resources(
        &self,
        stack_name: &str,
        ca_pem: &str,
    ) -> anyhow::Result<TemplateResources> {
        let trust_anchor_arn = self.trust_anchor_arn();
        self.set_trust_anchor_source(&trust_anchor_arn, ca_pem)?;
        let suffix: String = uuid_v4().replace('-', "")[..12].to_uppercase();
        let role_arn = self.create_role(&format!("{stack_name}-HostSampleRole-{suffix}"), 3600);
        let profile_arn = self.create_profile(ProfileSpec {
            name: format!("{stack_name}-hosts"),
            enabled: true,
            duration_seconds: 3600,
            role_arns: vec![role_arn.clone()],
        });
        Ok(TemplateResources {
            trust_anchor_arn,
            profile_arn,
            role_arn,
        })
    }

    /// The profiles, oldest first.
    pub fn profiles(&self) -> Vec<ProfileView> {
        lock(&self.shared.state).profiles.clone()
    }

    /// Every CreateSession call so far, oldest first.
    pub fn sessions(&self) -> Vec<SessionAttempt> {
        lock(&self.shared.state).sessions.clone()
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
