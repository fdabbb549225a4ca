//! CRLProcessor: carries Private CA's CRLs to the Roles Anywhere trust anchor.
//!
//! Private CA writes a DER CRL to the stack's (versioned) bucket after revocations; S3's "Object
//! Created" event starts this function, which reads the object at the version the event names.
//! It imports a CRL only if it is signed by our CA (checked against the CA certificate Private
//! CA returns), names our CA as issuer, fits Roles Anywhere's 300,000-byte limit, and carries a
//! CRL number newer than the last one applied: a CRL from another CA, a replayed older one or a
//! corrupt or oversized object is refused with an alert, and the trust anchor is left as it was.
//!
//! The trust anchor never goes backwards, whatever the order or concurrency of the events: the
//! CRL number is first claimed in the ledger (`state::crl_ledger`, one live claim at a time,
//! conditional on the ledger's version), then the anchor is touched, then the ledger settled. An
//! event that finds another import under way fails as not-ready and Lambda delivers it again.
//! Only the enabled CRL this stack owns (its name) is replaced (`UpdateCrl`); `ImportCrl` runs
//! only when there is none, because Roles Anywhere holds at most two CRLs per trust anchor. A
//! failed `UpdateCrl`/`ImportCrl` raises an alert, and fails the invocation when a retry may
//! cure it. Hosts whose current serial the CRL lists are marked REVOKED, also when the CRL was
//! already applied by an earlier attempt that stopped half-way; the entry's reason code decides
//! whether the host is held until an operator releases it (every reason but `SUPERSEDED`, and
//! an entry without one: `rotation::revocation`).
//!
//! The decisions are pure functions in [`step`] and `state::crl_ledger`; this module fetches,
//! calls them and carries out what they say.

pub mod step;

use lambda_runtime::LambdaEvent;
use pki::CrlFacts;
use rotation::alerts::{raise_or_log, Alert, AlertKind, Alerts};
use rotation::ca::CertificateAuthority;
use rotation::crl::{CrlSource, Replaced, TrustAnchorCrls};
use rotation::error::FunctionError;
use rotation::events::{Envelope, ObjectCreatedDetail};
use serde::Serialize;
use state::crl_ledger::{ClaimDecision, CrlClaim};
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
    /// Already applied by an earlier delivery (a duplicate, or a retry after an attempt that
    /// stopped half-way): hosts it lists are marked, nothing else is done.
    AlreadyImported {
        /// Its CRL number (hex).
        crl_number: String,
        /// Hosts marked REVOKED now.
        revoked_hosts: Vec<String>,
    },
    /// Refused (alerted): foreign, replayed, corrupt, too large, or the anchor refused it.
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
        Outcome::AlreadyImported { crl_number, .. } => {
            tracing::info!(crl_number, "CRL already imported")
        }
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
    let object = match step::crl_object(event, &deps.config) {
        Ok(object) => object,
        Err(reason) => return Ok(Outcome::Ignored { reason }),
    };
    let ca = step::ca_id(&deps.config.ca_arn);
    let der = deps
        .source
        .fetch(object.bucket, object.key, object.version)
        .await?;
    let ca_pem = deps.ca.ca_certificate().await?;
    let facts = match pki::check_crl(&der, &ca_pem) {
        Ok(facts) => facts,
        Err(e) => {
            return refuse(
                deps,
                AlertKind::CrlRefused,
                object.key,
                format!("CRL refused: {e}"),
            )
            .await
        }
    };
    let number = facts.crl_number.to_string();
    if let Some(reason) = step::too_large(&facts) {
        // Its revocations are real (our CA signed them): the hosts are marked all the same.
        mark_revoked(deps, &facts, now).await?;
        return refuse(deps, AlertKind::CrlTooLarge, object.key, reason).await;
    }
    let token = step::claim_token(&event.id, &number, now);
    let mut entry = deps.store.crl_ledger(ca).await?;
    let claim = loop {
        match state::crl_ledger::decide_claim(&entry, &number, now) {
            ClaimDecision::AlreadyApplied => {
                let revoked_hosts = mark_revoked(deps, &facts, now).await?;
                return Ok(Outcome::AlreadyImported {
                    crl_number: number,
                    revoked_hosts,
                });
            }
            ClaimDecision::Older { applied } => {
                mark_revoked(deps, &facts, now).await?;
                let reason = format!(
                    "CRL number {number} is not newer than the last imported ({applied}): replayed or out of order"
                );
                return refuse(deps, AlertKind::CrlRefused, object.key, reason).await;
            }
            ClaimDecision::Busy { claimed } => {
                return Err(CrlError::NotReady(format!(
                    "the import of CRL number {claimed} is under way; CRL {number} waits for it"
                )))
            }
            ClaimDecision::Claim => {}
        }
        let claim = CrlClaim {
            number: number.clone(),
            token: token.clone(),
            until: now + state::crl_ledger::CLAIM_LEASE,
        };
        if deps
            .store
            .write_crl_ledger(ca, &state::crl_ledger::claim_effect(&entry, &claim))
            .await?
        {
            break (entry.version + 1, entry.anchor_crl_id.clone());
        }
        // Someone moved the ledger between our read and our claim: decide again on what is there.
        entry = deps.store.crl_ledger(ca).await?;
    };
    let (claimed_version, known) = claim;
    let replaced = deps
        .anchor
        .replace(&step::anchor_crl_name(ca), &facts.der, known.as_deref())
        .await;
    let (action, crl_id) = match replaced {
        Ok(Replaced::Updated { crl_id }) => ("updated", crl_id),
        Ok(Replaced::Imported { crl_id }) => ("imported", crl_id),
        Err(e) => {
            let release = state::crl_ledger::release_effect(claimed_version, &token);
            if let Err(le) = deps.store.write_crl_ledger(ca, &release).await {
                tracing::warn!(error = %le, "could not release the CRL claim; it lapses on its own");
            }
            let alert = Alert::new(
                AlertKind::CrlImportFailed,
                format!("CRL number {number} not applied to the trust anchor: {e}"),
            );
            raise_or_log(&deps.alerts, &alert).await;
            if e.retryable {
                return Err(e.into());
            }
            return Ok(Outcome::Refused {
                reason: e.to_string(),
            });
        }
    };
    let settle = state::crl_ledger::settle_effect(claimed_version, &token, &number, &crl_id, now);
    if !deps.store.write_crl_ledger(ca, &settle).await? {
        return Err(CrlError::NotReady(format!(
            "the claim on CRL number {number} lapsed before it was recorded; it is judged again"
        )));
    }
    let revoked_hosts = mark_revoked(deps, &facts, now).await?;
    Ok(Outcome::Imported {
        crl_number: number,
        action: action.into(),
        crl_id,
        revoked_hosts,
    })
}

/// Raises `kind` for the object `key` and answers the event as refused.
async fn refuse<S, Src, Ra, C, A>(
    deps: &Deps<S, Src, Ra, C, A>,
    kind: AlertKind,
    key: &str,
    reason: String,
) -> Result<Outcome, CrlError>
where
    A: Alerts,
{
    let alert = Alert::new(kind, format!("{key}: {reason}"));
    raise_or_log(&deps.alerts, &alert).await;
    Ok(Outcome::Refused { reason })
}

/// Marks REVOKED every host whose current serial `facts` lists, held or not by its entry's
/// reason; returns them, sorted.
async fn mark_revoked<S, Src, Ra, C, A>(
    deps: &Deps<S, Src, Ra, C, A>,
    facts: &CrlFacts,
    now: OffsetDateTime,
) -> Result<Vec<String>, CrlError>
where
    S: FleetReader + RevocationRecorder,
{
    let records = deps.store.all_hosts().await?.records;
    let mut revoked_hosts = Vec::new();
    for listed in step::hosts_to_revoke(&records, facts) {
        let (record, serial) = (listed.record, listed.serial);
        match deps
            .store
            .revoked(record, serial, listed.held.as_deref(), now)
            .await
        {
            Ok(_) => {
                tracing::warn!(host = %record.host, serial, held = listed.held.as_deref().unwrap_or(""), "revoked on the CRL");
                revoked_hosts.push(record.host.to_string())
            }
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    revoked_hosts.sort();
    Ok(revoked_hosts)
}
