//! The rotation rules, declared once: every transition's guard and effect.
//!
//! A transition ([`Change`]) is turned into a [`Rule`]: a guard (conditions on the item as it is
//! now: state, rotation ID, command ID, certificate ARN, version, serial) and an effect (the
//! attributes it sets and removes). Nothing else decides whether a write may happen:
//! - the DynamoDB store renders a rule as one `UpdateItem` (condition expression plus update
//!   expression), so the check and the write are one atomic step on the server;
//! - the in-memory store of the tests and the simulator, and the pure model ([`apply`]),
//!   evaluate the same rule on an [`Item`] directly.
//!
//! The property tests play sequences of changes against both and compare outcomes, so a guard
//! rendered wrongly for DynamoDB is caught.
//!
//! ```text
//! IDLE / DEPLOYED / FAILED / REVOKED ──start──► CSR_REQUESTED(rotation, command?)
//!   CSR_REQUESTED ──CSR accepted, certificate requested──► ISSUING(certificate ARN, key fingerprint)
//!   ISSUING ──certificate fetched and checked──► DEPLOYING(command?, serial, validity)
//!   DEPLOYING ──host verified and swapped──► DEPLOYED(serial, NotBefore, NotAfter, renewAt)
//!   any in-flight state ──► FAILED(stage, reason, attempts)
//!   any state but REVOKED ──revoked──► REVOKED(serial, held?)   (an in-flight rotation is cancelled)
//!   REVOKED(held) ──released──► REVOKED                          (the next run may re-issue)
//! ```
//!
//! A revocation cancels a rotation in flight by removing its rotation ID, command ID and
//! pending certificate: every later event of that rotation (CertIssue's `Issuing`, CertDeploy's
//! `BeginDeploy` and `Deployed`, a `Fail`) names what is no longer there and is refused. A held
//! host (`revocationHold`) cannot be claimed by `Start` until `Release` removes the hold.

use time::OffsetDateTime;

use crate::host::HostId;
use crate::item::{attr, legacy_time, record_from_item, rfc3339, Attr, Item};
use crate::ports::TransitionConflict;

mod builder;
use crate::record::{AlertLevel, DeployedCert, FailureStage, HostRecord, RotationId, StateKind};
use builder::Builder;

/// A step of the state machine, with what it expects to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Claim the host for a new rotation, if it is still at `expected_version` (`None`: never
    /// written by this service) and nothing is in flight.
    Start {
        /// The version the caller read.
        expected_version: Option<u64>,
        /// The new rotation.
        rotation: RotationId,
    },
    /// Record the GenerateCsr command of the claimed rotation (once).
    CsrSent {
        /// The rotation.
        rotation: RotationId,
        /// The command.
        command_id: String,
    },
    /// The CSR from `command_id` was accepted and a certificate requested.
    Issuing {
        /// The rotation.
        rotation: RotationId,
        /// The GenerateCsr command whose output held the CSR.
        command_id: String,
        /// The certificate being issued.
        cert_arn: String,
        /// SHA-256 of the CSR's SubjectPublicKeyInfo.
        key_fingerprint: String,
    },
    /// The certificate the rotation waits for was fetched and checked; deployment begins.
    BeginDeploy {
        /// The rotation.
        rotation: RotationId,
        /// The certificate, as the rotation recorded it.
        cert_arn: String,
        /// The new certificate's facts.
        pending: DeployedCert,
    },
    /// Record the DeployCert command (once).
    DeploySent {
        /// The rotation.
        rotation: RotationId,
        /// The command.
        command_id: String,
    },
    /// The host verified and swapped the pair sent by `command_id`.
    Deployed {
        /// The DeployCert command.
        command_id: String,
        /// The certificate now in place (with its renewal point).
        cert: DeployedCert,
    },
    /// The in-flight rotation failed.
    Fail {
        /// The state the caller saw.
        from: StateKind,
        /// The rotation that failed.
        rotation: RotationId,
        /// The step that failed.
        stage: FailureStage,
        /// An operator-readable reason (cut to 1,000 bytes).
        reason: String,
        /// Failed attempts in this episode, including this one.
        attempts: u32,
        /// When CertCheck may retry.
        next_attempt_at: OffsetDateTime,
    },
    /// The host's certificate `serial` was revoked at the CA: the current one, or the pending
    /// one when the host has none yet. Made in any state but REVOKED; a rotation in flight is
    /// cancelled.
    Revoke {
        /// The state the caller saw.
        from: StateKind,
        /// The rotation in flight the caller saw (required when `from` is in flight).
        rotation: Option<RotationId>,
        /// The current serial the caller saw (`None`: the host has none).
        current: Option<String>,
        /// The serial revoked (recorded as `revokedSerial`).
        serial: String,
        /// The revocation reason, when it holds the host (no rotation until released).
        held: Option<String>,
    },
    /// An operator released a host held by the revocation reason `held`.
    Release {
        /// The reason holding it, as read.
        held: String,
    },
    /// An alert of `level` was raised for the host's current episode. Bumps no version, so it
    /// never makes a concurrent claim or transition conflict; a successful deployment clears it.
    Alerted {
        /// The level raised.
        level: AlertLevel,
    },
    /// A due host at rest could not be reached: it joins the unsettled index, so the reconcile
    /// pass (every few minutes) rotates it as soon as it is online, instead of the next 12-hour
    /// run. Bumps no version; the rotation it waits for removes the mark when it is deployed.
    AwaitingOnline,
}

impl Change {
    /// What the change does, for conflicts and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Start { .. } => "start a rotation",
            Change::CsrSent { .. } => "record the GenerateCsr command",
            Change::Issuing { .. } => "record issuance",
            Change::BeginDeploy { .. } => "begin deployment",
            Change::DeploySent { .. } => "record the DeployCert command",
            Change::Deployed { .. } => "complete deployment",
            Change::Fail { .. } => "fail",
            Change::Revoke { .. } => "mark revoked",
            Change::Release { .. } => "release the hold",
            Change::Alerted { .. } => "record the alert level",
            Change::AwaitingOnline => "wait for the host to be online",
        }
    }
}

/// One condition of a guard, on the item as it is before the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// The rotation state is one of these (`Idle` also matches an item without a state).
    StateIn(Vec<StateKind>),
    /// The attribute holds this value.
    Equals(&'static str, Attr),
    /// The attribute is absent.
    Absent(&'static str),
    /// The attribute is absent or a number (what a version bump needs: DynamoDB refuses to add
    /// to a string).
    AbsentOrNumber(&'static str),
}

/// One part of an effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write the attribute.
    Set(&'static str, Attr),
    /// Remove the attribute.
    Remove(&'static str),
    /// `version = version + 1` (1 for items never written by this service).
    BumpVersion,
}

/// A transition as the store carries it out: only if every condition holds (and the item
/// exists), apply every effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What the rule does.
    pub name: &'static str,
    /// All must hold.
    pub guard: Vec<Cond>,
    /// Applied in order.
    pub effect: Vec<Effect>,
}

/// Pending attributes of an in-flight rotation, all cleared when it ends (or is cancelled).
const IN_FLIGHT: [&str; 7] = [
    attr::COMMAND_ID,
    attr::PENDING_CERT_ARN,
    attr::KEY_FINGERPRINT,
    attr::PENDING_SERIAL,
    attr::PENDING_NOT_BEFORE,
    attr::PENDING_NOT_AFTER,
    attr::ROTATION_ID,
];

/// The longest failure reason stored.
pub const MAX_REASON_BYTES: usize = 1000;

impl Rule {
    /// The rule that carries out `change` at `now`.
    pub fn for_change(change: &Change, now: OffsetDateTime) -> Rule {
        use StateKind::*;
        let b = Builder::new(change.name());
        let b = match change {
            Change::Start {
                expected_version,
                rotation,
            } => {
                let b = match expected_version {
                    Some(v) => b.equals(attr::VERSION, Attr::n(*v as i64)),
                    None => b.absent(attr::VERSION),
                };
                // A host held by its revocation reason is never claimed (only released).
                b.state(&[Idle, Deployed, Failed, Revoked])
                    .absent(attr::HOLD)
                    .enter(CsrRequested, now)
                    .set(attr::ROTATION_ID, Attr::s(rotation.as_str()))
                    .remove(&IN_FLIGHT[..6])
            }
            Change::CsrSent {
                rotation,
                command_id,
            } => b
                .state(&[CsrRequested])
                .equals(attr::ROTATION_ID, Attr::s(rotation.as_str()))
                .absent(attr::COMMAND_ID)
                .set(attr::COMMAND_ID, Attr::s(command_id)),
            Change::Issuing {
                rotation,
                command_id,
                cert_arn,
                key_fingerprint,
            } => b
                .state(&[CsrRequested])
                .equals(attr::ROTATION_ID, Attr::s(rotation.as_str()))
                .equals(attr::COMMAND_ID, Attr::s(command_id))
                .enter(Issuing, now)
                .set(attr::PENDING_CERT_ARN, Attr::s(cert_arn))
                .set(attr::KEY_FINGERPRINT, Attr::s(key_fingerprint))
                .remove(&[attr::COMMAND_ID]),
            Change::BeginDeploy {
                rotation,
                cert_arn,
                pending,
            } => b
                .state(&[Issuing])
                .equals(attr::ROTATION_ID, Attr::s(rotation.as_str()))
                .equals(attr::PENDING_CERT_ARN, Attr::s(cert_arn))
                .enter(Deploying, now)
                .set_opt(attr::PENDING_SERIAL, pending.serial.as_deref().map(Attr::s))
                .set_opt(
                    attr::PENDING_NOT_BEFORE,
                    pending.not_before.map(|t| Attr::s(rfc3339(t))),
                )
                .set(attr::PENDING_NOT_AFTER, Attr::s(rfc3339(pending.not_after)))
                .remove(&[attr::COMMAND_ID]),
            Change::DeploySent {
                rotation,
                command_id,
            } => b
                .state(&[Deploying])
                .equals(attr::ROTATION_ID, Attr::s(rotation.as_str()))
                .absent(attr::COMMAND_ID)
                .set(attr::COMMAND_ID, Attr::s(command_id)),
            Change::Deployed { command_id, cert } => {
                let renew_at = cert.renew_at.unwrap_or(cert.not_after);
                b.state(&[Deploying])
                    .equals(attr::COMMAND_ID, Attr::s(command_id))
                    .enter(Deployed, now)
                    .set_opt(attr::SERIAL, cert.serial.as_deref().map(Attr::s))
                    .set_opt(
                        attr::NOT_BEFORE,
                        cert.not_before.map(|t| Attr::s(rfc3339(t))),
                    )
                    .set(attr::NOT_AFTER, Attr::s(rfc3339(cert.not_after)))
                    .set(attr::EXPIRY, Attr::s(legacy_time(cert.not_after)))
                    .set(attr::RENEW_AT, Attr::n(renew_at.unix_timestamp()))
                    .set(attr::RENEWAL_DATE, Attr::s(legacy_time(renew_at)))
                    .set_opt(attr::CERT_ARN, cert.cert_arn.as_deref().map(Attr::s))
                    .remove(&IN_FLIGHT)
                    .remove(&[
                        attr::ATTEMPTS,
                        attr::FAILED_STAGE,
                        attr::FAILURE_REASON,
                        attr::NEXT_ATTEMPT_AT,
                        attr::REVOKED_SERIAL,
                        attr::ALERT_LEVEL,
                    ])
            }
            Change::Fail {
                from,
                rotation,
                stage,
                reason,
                attempts,
                next_attempt_at,
            } => {
                // Only an in-flight rotation can fail; anything else is a stale or duplicated
                // event, and an empty state set is a guard that never holds.
                let from: &[StateKind] = if from.in_flight() {
                    std::slice::from_ref(from)
                } else {
                    &[]
                };
                b.state(from)
                    .equals(attr::ROTATION_ID, Attr::s(rotation.as_str()))
                    .enter(Failed, now)
                    .set(attr::ATTEMPTS, Attr::n(*attempts as i64))
                    .set(attr::FAILED_STAGE, Attr::s(stage.as_str()))
                    .set(
                        attr::FAILURE_REASON,
                        Attr::s(truncate(reason, MAX_REASON_BYTES)),
                    )
                    .set(
                        attr::NEXT_ATTEMPT_AT,
                        Attr::n(next_attempt_at.unix_timestamp()),
                    )
                    .remove(&[
                        attr::COMMAND_ID,
                        attr::PENDING_CERT_ARN,
                        attr::PENDING_SERIAL,
                        attr::PENDING_NOT_BEFORE,
                        attr::PENDING_NOT_AFTER,
                    ])
            }
            // Any state but REVOKED (a revoked serial is not revoked again). A rotation in
            // flight is named by its ID and cancelled: its pending attributes go, so every
            // later event of it finds nothing to match. The serial guard keeps a revocation
            // from landing on a certificate that changed since the caller read it.
            Change::Revoke {
                from,
                rotation,
                current,
                serial,
                held,
            } => {
                let from: &[StateKind] = match (from, rotation) {
                    (Revoked, _) => &[],
                    (k, None) if k.in_flight() => &[],
                    (k, _) => std::slice::from_ref(k),
                };
                let b = b.state(from);
                let b = match rotation {
                    Some(r) => b.equals(attr::ROTATION_ID, Attr::s(r.as_str())),
                    None => b,
                };
                let b = match current {
                    Some(c) => b.equals(attr::SERIAL, Attr::s(c)),
                    None => b.absent(attr::SERIAL),
                };
                b.enter(Revoked, now)
                    .set(attr::REVOKED_SERIAL, Attr::s(serial))
                    .set_opt(attr::HOLD, held.as_deref().map(Attr::s))
                    .remove(&IN_FLIGHT)
                    .remove(&[
                        attr::ATTEMPTS,
                        attr::FAILED_STAGE,
                        attr::FAILURE_REASON,
                        attr::NEXT_ATTEMPT_AT,
                    ])
            }
            Change::Release { held } => b
                .state(&[Revoked])
                .equals(attr::HOLD, Attr::s(held))
                .bump()
                .remove(&[attr::HOLD]),
            Change::Alerted { level } => b.set(attr::ALERT_LEVEL, Attr::s(level.as_str())),
            Change::AwaitingOnline => b
                .state(&[Idle, Deployed])
                .set(attr::UNSETTLED, Attr::s(crate::item::UNSETTLED_VALUE)),
        };
        b.rule
    }

    /// Whether no item can satisfy the guard (the store need not ask).
    pub fn never_holds(&self) -> bool {
        self.guard
            .iter()
            .any(|c| matches!(c, Cond::StateIn(k) if k.is_empty()))
    }

    /// Whether the guard holds on `item` (an absent item never satisfies a rule).
    pub fn holds(&self, item: Option<&Item>) -> bool {
        let Some(item) = item else { return false };
        self.guard.iter().all(|c| match c {
            Cond::StateIn(kinds) => kinds.iter().any(|k| match item.get(attr::STATE) {
                None => *k == StateKind::Idle,
                Some(v) => v.same_as(&Attr::s(k.as_str())),
            }),
            Cond::Equals(a, v) => item.get(*a).is_some_and(|x| x.same_as(v)),
            Cond::Absent(a) => !item.contains_key(*a),
            Cond::AbsentOrNumber(a) => matches!(item.get(*a), None | Some(Attr::N(_))),
        })
    }

    /// The item after the effect (the guard is not checked here).
    pub fn effect_on(&self, item: &Item) -> Item {
        let mut out = item.clone();
        for e in &self.effect {
            match e {
                Effect::Set(a, v) => {
                    out.insert((*a).to_owned(), v.clone());
                }
                Effect::Remove(a) => {
                    out.remove(*a);
                }
                Effect::BumpVersion => {
                    // `if_not_exists(version, 0) + 1`, in DynamoDB's decimal arithmetic: a
                    // whole number stays whole; anything else is added as a decimal and the
                    // row mapping then refuses it, as it refuses the row DynamoDB writes.
                    let next = match out.get(attr::VERSION) {
                        Some(Attr::N(n)) => match n.parse::<i64>() {
                            Ok(v) => Attr::n(v + 1),
                            Err(_) => Attr::N(
                                n.parse::<f64>()
                                    .map_or(n.clone(), |v| (v + 1.0).to_string()),
                            ),
                        },
                        _ => Attr::n(1),
                    };
                    out.insert(attr::VERSION.to_owned(), next);
                }
            }
        }
        out
    }
}

/// The pure model: `change` applied to `item` at `now`, or the conflict a store would answer.
pub fn apply(
    host: &HostId,
    item: Option<&Item>,
    change: &Change,
    now: OffsetDateTime,
) -> Result<Item, TransitionConflict> {
    let rule = Rule::for_change(change, now);
    if rule.holds(item) {
        Ok(rule.effect_on(item.unwrap_or(&Item::new())))
    } else {
        Err(TransitionConflict {
            host: host.clone(),
            transition: rule.name,
        })
    }
}

/// The pure model on records: what a store would return for `change` on `record`.
pub fn apply_to_record(
    record: &HostRecord,
    change: &Change,
    now: OffsetDateTime,
) -> Result<HostRecord, TransitionConflict> {
    let item = crate::item::item_from_record(record);
    let next = apply(&record.host, Some(&item), change, now)?;
    Ok(record_from_item(&next).expect("the rules only write items the mapping reads"))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests;
