//! The shell of an operator's revocation and release: read, decide ([`crate::step::revoke`],
//! [`crate::step::release`]), act through the ports, record.
//!
//! Serials are asked of the CA in their canonical form ([`pki::canonical_serial`]): the
//! original sample wrote them upper-case and colon-separated.
//!
//! A revocation revokes at the CA first and records after, so the table never says revoked
//! what the CA still honours. If the host moved between the read and the write (a rotation
//! moved on, CertDeploy recorded DEPLOYED), the write conflicts and the whole revocation is made
//! again from a fresh read, a few times: the CA answers an already revoked serial as done, so
//! nothing is revoked twice and the certificate the host moved to is revoked too.

use rotation::alerts::{raise_or_log, Alerts};
use rotation::ca::CertificateAuthority;
use rotation::Deps;
use state::ports::{FleetReader, RevocationRecorder, StoreError};
use state::HostId;
use time::OffsetDateTime;

use crate::step::error::CheckError;
use crate::step::plan::Loaded;
use crate::step::release;
use crate::step::request::Revocation;
use crate::step::revoke::{self, Pending, RevokeDecision};

/// Reads made before a revocation gives up on a host that keeps moving.
pub const REVOKE_READS: usize = 3;

/// Carries out (or, on a dry run, reports) `revocation`.
pub async fn revoke<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    revocation: &Revocation,
    dry_run: bool,
    now: OffsetDateTime,
) -> Result<Loaded, CheckError>
where
    S: FleetReader + RevocationRecorder,
    C: CertificateAuthority,
    A: Alerts,
{
    let mut reads = 0;
    loop {
        reads += 1;
        let record = deps.store.host(&revocation.host).await?;
        let r = match revoke::decide_revocation(revocation, record, dry_run)? {
            RevokeDecision::Report(note) => return Ok(revoke::reported(note)),
            RevokeDecision::Revoke(r) => r,
        };
        if let Some(current) = &r.current {
            deps.ca
                .revoke(&pki::canonical_serial(current), &r.reason)
                .await?;
        }
        let pending_serial = match &r.pending {
            None => None,
            Some(Pending::Claimed { serial, .. }) => Some(serial.clone()),
            Some(Pending::Issuing { cert_arn }) => {
                revoke::pending_serial(deps.ca.fetch(cert_arn).await)?
            }
        };
        if let Some(serial) = &pending_serial {
            deps.ca
                .revoke(&pki::canonical_serial(serial), &r.reason)
                .await?;
        }
        let serial = revoke::serial_to_record(&r, pending_serial.as_deref())?;
        match deps
            .store
            .revoked(&r.record, &serial, r.held.as_deref(), now)
            .await
        {
            Ok(recorded) => {
                let note = r.note(pending_serial.as_deref());
                tracing::warn!(host = %revocation.host, reason = %r.reason, what = %note.reason, "revoked by an operator");
                raise_or_log(&deps.alerts, &r.alert(pending_serial.as_deref())).await;
                return Ok(revoke::after_revoked(&r, note, recorded));
            }
            Err(StoreError::Conflict(c)) if reads < REVOKE_READS => {
                tracing::warn!(host = %revocation.host, conflict = %c, "the host moved; revoking again from a fresh read");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Carries out (or, on a dry run, reports) the release of `host`.
pub async fn release<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    host: &HostId,
    dry_run: bool,
    now: OffsetDateTime,
) -> Result<Loaded, CheckError>
where
    S: FleetReader + RevocationRecorder,
{
    let record = deps.store.host(host).await?;
    let r = release::decide_release(host, record)?;
    if !dry_run {
        deps.store.released(host, &r.held, now).await?;
        tracing::warn!(%host, held = %r.held, "released by an operator");
    }
    Ok(release::released(&r))
}
