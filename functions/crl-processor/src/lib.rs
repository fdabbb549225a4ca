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

use std::collections::HashSet;

use lambda_runtime::LambdaEvent;
use pki::CrlNumber;
use rotation::alerts::{raise_or_log, Alert, AlertKind, Alerts};
use rotation::ca::CertificateAuthority;
use rotation::crl::{CrlSource, Replaced, TrustAnchorCrls};
use rotation::events::{Envelope, ObjectCreatedDetail, S3_OBJECT_CREATED};
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

/// The Lambda handler.
pub async fn handle<S, Src, Ra, C, A>(
    deps: &Deps<S, Src, Ra, C, A>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_runtime::Error>
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
                    return Err(Box::new(e));
                }
                Err(e) => Outcome::Refused {
                    reason: e.to_string(),
                },
            }
        }
    };
    match &outcome {
        Outcome::Ignored { reason } => tracing::info!(reason, "event ignored"),
        Outcome::Refused { reason } => tracing::warn!(reason, "CRL refused"),
        Outcome::Imported { crl_number, .. } => tracing::info!(crl_number, "CRL imported"),
    }
    Ok(serde_json::to_value(outcome)?)
}

/// The CA's ID: the UUID at the end of its ARN (Private CA names its CRL `<prefix><id>.crl`).
pub fn ca_id(ca_arn: &str) -> &str {
    ca_arn.rsplit('/').next().unwrap_or(ca_arn)
}

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
    let ignore = |reason: String| Ok(Outcome::Ignored { reason });
    let cfg = &deps.config;
    let (bucket, key) = (&event.detail.bucket.name, &event.detail.object.key);
    if event.source != "aws.s3" || event.detail_type != S3_OBJECT_CREATED {
        return ignore(format!(
            "{} / {} is not an S3 object creation",
            event.source, event.detail_type
        ));
    }
    if *bucket != cfg.crl_bucket {
        return ignore(format!("bucket {bucket} is not the CRL bucket"));
    }
    if !key.starts_with(&cfg.crl_prefix) {
        return ignore(format!(
            "object {key} is outside the CRL prefix {}",
            cfg.crl_prefix
        ));
    }
    if !key.ends_with(".crl") {
        return ignore(format!(
            "object {key} is not a CRL (Private CA writes <prefix><CA id>.crl)"
        ));
    }
    let ca = ca_id(&cfg.ca_arn);
    let refuse = |reason: String| async move {
        let alert = Alert::new(AlertKind::CrlRefused, format!("{key}: {reason}"));
        raise_or_log(&deps.alerts, &alert).await;
        Ok(Outcome::Refused { reason })
    };
    let der = deps.source.fetch(bucket, key).await?;
    let ca_pem = deps.ca.ca_certificate().await?;
    let facts = match pki::check_crl(&der, &ca_pem) {
        Ok(f) => f,
        Err(e) => return refuse(format!("CRL refused: {e}")).await,
    };
    let last = deps.store.last_crl_number(ca).await?;
    let last_number: Option<CrlNumber> = last.as_deref().and_then(|n| n.parse().ok());
    if last_number.as_ref() == Some(&facts.crl_number) {
        // A duplicated event, or an event that arrived after a newer CRL overwrote the object.
        return ignore(format!(
            "CRL number {} is already imported",
            facts.crl_number
        ));
    }
    if !pki::crl_is_newer(&facts, last_number.as_ref()) {
        return refuse(format!(
            "CRL number {} is not newer than the last imported ({}): replayed or out of order",
            facts.crl_number,
            last.as_deref().unwrap_or("none")
        ))
        .await;
    }
    let name = format!("cert-rotation-{ca}");
    let (action, crl_id) = match deps.anchor.replace(&name, &facts.der).await? {
        Replaced::Updated { crl_id } => ("updated", crl_id),
        Replaced::Imported { crl_id } => ("imported", crl_id),
    };
    let number = facts.crl_number.to_string();
    deps.store
        .record_crl_number(ca, last.as_deref(), &number, now)
        .await?;

    let revoked: HashSet<&str> = facts.revoked_serials.iter().map(String::as_str).collect();
    let mut revoked_hosts = Vec::new();
    for record in deps.store.all_hosts().await?.records {
        let Some(serial) = record.revocable_serial() else {
            continue;
        };
        if !revoked.contains(serial) {
            continue;
        }
        match deps.store.revoked(&record, serial, now).await {
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
