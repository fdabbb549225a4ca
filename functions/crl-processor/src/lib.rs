//! CRLProcessor: carries Private CA's CRLs to the Roles Anywhere trust anchor.
//!
//! Private CA writes a DER CRL to the stack's bucket after revocations; S3's "Object Created"
//! event starts this function. It imports a CRL only if it is signed by our CA (checked against
//! the CA certificate Private CA returns), names our CA as issuer, and carries a CRL number newer
//! than the last one imported (kept in the state table): a CRL from another CA, a replayed older
//! one or a corrupt object is refused with an alert, and the trust anchor is left as it was. The
//! trust anchor's existing CRL is replaced (`UpdateCrl`); `ImportCrl` runs only when it has none,
//! because Roles Anywhere holds at most two CRLs per trust anchor. Hosts whose current serial the
//! CRL lists are marked REVOKED, so CertCheck re-issues them.
//!
//! The decisions are pure functions in [`step`]; this module fetches, calls them and carries
//! out what they say.

pub mod step;

use lambda_runtime::LambdaEvent;
use rotation::alerts::{raise_or_log, Alert, AlertKind, Alerts};
use rotation::ca::CertificateAuthority;
use rotation::crl::{CrlSource, Replaced, TrustAnchorCrls};
use rotation::error::FunctionError;
use rotation::events::{Envelope, ObjectCreatedDetail};
use serde::Serialize;
use state::ports::{CrlLedger, FleetReader, RevocationRecorder, StoreError};
use time::OffsetDateTime;
use tracing::Instrument;

pub use rotation::error::EventError as CrlError;

pub use rotation::CrlDeps as Deps;

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// The CRL is now the trust anchor's.
    Imported {
        /// Its CRL number (hex).
        crl_number: String,
        /// `updated` or `imported`.
        action: String,
        /// The trust anchor's CRL ID.
        crl_id: String,
        /// Hosts marked REVOKED.
        revoked_hosts: Vec<String>,
    },
    /// Refused (alerted): foreign, replayed or corrupt.
    Refused {
        /// Why.
        reason: String,
    },
    /// Not a CRL of ours: nothing done, no call made.
    Ignored {
        /// Why.
        reason: String,
    },
}

/// The Lambda handler: a retryable or not-ready error fails the invocation (Lambda retries the
/// event); a refused CRL is answered (and alerted), since a retry cannot change it.
pub async fn handle<S, Src, Ra, C, A>(
    deps: &Deps<S, Src, Ra, C, A>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, FunctionError>
where
    S: FleetReader + RevocationRecorder + CrlLedger,
    Src: CrlSource,
    Ra: TrustAnchorCrls,
    C: CertificateAuthority,
    A: Alerts,
{
    let outcome = match serde_json::from_value::<Envelope<ObjectCreatedDetail>>(event.payload) {
        Err(e) => Outcome::Ignored {
            reason: format!("not an S3 Object Created event: {e}"),
        },
        Ok(ev) => {
            let span = tracing::info_span!("crl", key = %ev.detail.object.key, stage = "import");
            match on_object_created(deps, &ev, OffsetDateTime::now_utc())
                .instrument(span)
                .await
            {
                Ok(o) => o,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "retryable; Lambda will retry the event");
                    return Err(e.into());
                }
                Err(e) => {
                    let reason = e.to_string();
                    let alert =
                        Alert::new(AlertKind::CrlRefused, format!("CRL not imported: {reason}"));
                    raise_or_log(&deps.alerts, &alert).await;
                    Outcome::Refused { reason }
                }
            }
        }
    };
    match &outcome {
        Outcome::Ignored { reason } => tracing::info!(reason, "event ignored"),
        Outcome::Refused { reason } => tracing::warn!(reason, "CRL refused"),
        Outcome::Imported { crl_number, .. } => tracing::info!(crl_number, "CRL imported"),
    }
    serde_json::to_value(outcome)
        .map_err(|e| FunctionError::new(rotation::error::FailureKind::Permanent, &e))
}

pub use step::ca_id;

/// Handles one S3 "Object Created" event at `now`.
pub async fn on_object_created<S, Src, Ra, C, A>(
    deps: &Deps<S, Src, Ra, C, A>,
    event: &Envelope<ObjectCreatedDetail>,
    now: OffsetDateTime,
) -> Result<Outcome, CrlError>
where
    S: FleetReader + RevocationRecorder + CrlLedger,
    Src: CrlSource,
    Ra: TrustAnchorCrls,
    C: CertificateAuthority,
    A: Alerts,
{
    let (bucket, key) = match step::crl_object(event, &deps.config) {
        Ok(object) => object,
        Err(reason) => return Ok(Outcome::Ignored { reason }),
    };
    let ca = step::ca_id(&deps.config.ca_arn);
    let der = deps.source.fetch(bucket, key).await?;
    let ca_pem = deps.ca.ca_certificate().await?;
    let last = deps.store.last_crl_number(ca).await?;
    let facts = match step::judge(pki::check_crl(&der, &ca_pem), last.as_deref()) {
        step::Verdict::Import(facts) => facts,
        step::Verdict::AlreadyImported(number) => {
            return Ok(Outcome::Ignored {
                reason: format!("CRL number {number} is already imported"),
            })
        }
        step::Verdict::Refuse(reason) => {
            let alert = Alert::new(AlertKind::CrlRefused, format!("{key}: {reason}"));
            raise_or_log(&deps.alerts, &alert).await;
            return Ok(Outcome::Refused { reason });
        }
    };
    let (action, crl_id) = match deps
        .anchor
        .replace(&step::anchor_crl_name(ca), &facts.der)
        .await?
    {
        Replaced::Updated { crl_id } => ("updated", crl_id),
        Replaced::Imported { crl_id } => ("imported", crl_id),
    };
    let number = facts.crl_number.to_string();
    deps.store
        .record_crl_number(ca, last.as_deref(), &number, now)
        .await?;

    let records = deps.store.all_hosts().await?.records;
    let mut revoked_hosts = Vec::new();
    for (record, serial) in step::hosts_to_revoke(&records, &facts.revoked_serials) {
        match deps.store.revoked(record, serial, now).await {
            Ok(_) => revoked_hosts.push(record.host.to_string()),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    revoked_hosts.sort();
    Ok(Outcome::Imported {
        crl_number: number,
        action: action.into(),
        crl_id,
        revoked_hosts,
    })
}
