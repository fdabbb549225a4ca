//! Pure planning: given validated records and the time, decide what each host needs.
//!
//! The renewal point comes from the certificate's real validity: renew when `renew_share` of the
//! lifetime is left (default a third), minus a per-host jitter so a fleet enrolled at once does not
//! rotate at once. The jitter is deterministic (a hash of the host ID), so every CertCheck run
//! agrees on it and a host's renewal point never moves between runs. The original sample applied
//! its threshold twice; here the threshold is applied once, in [`RenewalPolicy::renewal_point`].

use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::host::HostId;
use crate::record::{AlertLevel, HostRecord, RotationState, StateKind};

/// How the renewal point is placed inside a certificate's lifetime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenewalPolicy {
    /// Share of the lifetime left when renewal is due (0 < share < 1). Default 1/3.
    pub renew_share: f64,
    /// Width of the jitter window as a share of the lifetime (0 ≤ jitter < 1 − renew_share).
    /// Default 0.1: for 7-day certificates, renewals of one fleet spread over about 17 hours.
    pub jitter_share: f64,
    /// Lifetime assumed for items that record no NotBefore (the original sample's items).
    pub assumed_lifetime: Duration,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        RenewalPolicy {
            renew_share: 1.0 / 3.0,
            jitter_share: 0.1,
            assumed_lifetime: Duration::days(7),
        }
    }
}

impl RenewalPolicy {
    /// This host's jitter for a certificate of `lifetime`: in `[0, jitter_share × lifetime)`.
    pub fn jitter(&self, host: &HostId, lifetime: Duration) -> Duration {
        let window = lifetime.as_seconds_f64() * self.jitter_share.clamp(0.0, 1.0);
        let digest = Sha256::digest(host.as_str().as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 53 bits keep the fraction exactly representable and strictly below 1.
        let fraction = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
        Duration::seconds_f64((window * fraction).floor())
    }

    /// When `host` should renew a certificate valid from `not_before` to `not_after`: when
    /// `renew_share` of the lifetime is left, moved earlier by the host's jitter, never before
    /// `not_before`. Always strictly before `not_after` for a certificate with a positive lifetime.
    pub fn renewal_point(
        &self,
        host: &HostId,
        not_before: Option<OffsetDateTime>,
        not_after: OffsetDateTime,
    ) -> OffsetDateTime {
        let not_before = not_before.unwrap_or(not_after - self.assumed_lifetime);
        let lifetime = not_after - not_before;
        if lifetime <= Duration::ZERO {
            return not_before.min(not_after);
        }
        let point = not_after - self.left_at_renewal(lifetime) - self.jitter(host, lifetime);
        point.max(not_before).min(not_after - Duration::SECOND)
    }

    /// The validity left at the renewal point, before jitter.
    fn left_at_renewal(&self, lifetime: Duration) -> Duration {
        Duration::seconds_f64((lifetime.as_seconds_f64() * self.renew_share.clamp(0.0, 1.0)).ceil())
            .max(Duration::SECOND)
    }

    /// The latest NotAfter a certificate with no recorded NotBefore (the original sample's items)
    /// can have and still be due at `now`: its renewal point is at least
    /// `left_at_renewal + jitter window` before NotAfter. Listings may leave out such items whose
    /// NotAfter is later, without reading them into the planner.
    pub fn latest_due_not_after(&self, now: OffsetDateTime) -> OffsetDateTime {
        let lifetime = self.assumed_lifetime.max(Duration::ZERO);
        let jitter_window = Duration::seconds_f64(
            (lifetime.as_seconds_f64() * self.jitter_share.clamp(0.0, 1.0)).ceil(),
        );
        now + self.left_at_renewal(lifetime) + jitter_window + Duration::SECOND
    }
}

/// What a listing of candidates must cover at one instant.
///
/// Items this service wrote carry their renewal point (`renewAt`), so the store can tell server
/// side whether a deployed host is due. Items written by hand or by the original sample carry
/// only `expiry`; those are candidates only while `expiry` is before `unscheduled_due_by`, which
/// keeps the first run after a migration from reading every host into the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueWindow {
    /// The planning instant.
    pub now: OffsetDateTime,
    /// Items with no renewal point and no NotBefore whose `expiry` is later than this cannot be due.
    pub unscheduled_due_by: OffsetDateTime,
}

impl DueWindow {
    /// The window for `now` under `policy`.
    pub fn at(now: OffsetDateTime, policy: &PlanPolicy) -> DueWindow {
        DueWindow {
            now,
            unscheduled_due_by: policy.renewal.latest_due_not_after(now),
        }
    }
}

/// Everything the planner needs to know besides the records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanPolicy {
    /// Where renewal falls.
    pub renewal: RenewalPolicy,
    /// An in-flight rotation older than this is stuck (events are best effort).
    pub in_flight_timeout: Duration,
    /// `MAX_ATTEMPTS`, still parsed so existing stacks deploy; it no longer stops retries: a
    /// failed rotation is retried with the capped backoff for as long as it takes, and alerts
    /// escalate by the time left on the certificate instead (see [`AlertLevel`]).
    pub max_attempts: u32,
    /// Backoff after the first failure; doubles per further failure.
    pub backoff_base: Duration,
    /// Upper bound of the backoff.
    pub backoff_max: Duration,
    /// Whether hosts revoked for a reason that does not hold them (`SUPERSEDED`) get a new
    /// certificate automatically. A host held by its revocation's reason is never re-issued
    /// until an operator releases it, whatever this says (`rotation::revocation`).
    pub reissue_revoked: bool,
}

impl Default for PlanPolicy {
    fn default() -> Self {
        PlanPolicy {
            renewal: RenewalPolicy::default(),
            in_flight_timeout: Duration::hours(1),
            max_attempts: 5,
            backoff_base: Duration::minutes(30),
            backoff_max: Duration::hours(12),
            reissue_revoked: true,
        }
    }
}

impl PlanPolicy {
    /// The wait before retry number `failed + 1`, after `failed` failures (≥ 1).
    pub fn backoff(&self, failed: u32) -> Duration {
        let exp = failed.saturating_sub(1).min(20);
        let secs = self
            .backoff_base
            .whole_seconds()
            .saturating_mul(1i64 << exp);
        Duration::seconds(secs).min(self.backoff_max)
    }
}

/// Why a host is due for a new certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueReason {
    /// Enrolled and never issued.
    NeverIssued,
    /// The `expiry` attribute was removed (the seed's manual-rotation gesture).
    ExpiryRemoved,
    /// The renewal point has passed.
    RenewalWindow,
    /// The certificate has already expired: also an alert of its own.
    Expired,
    /// The certificate was revoked.
    Revoked,
    /// An operator asked for it (`force`).
    Forced,
}

impl DueReason {
    /// Short name for summaries and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DueReason::NeverIssued => "never-issued",
            DueReason::ExpiryRemoved => "expiry-removed",
            DueReason::RenewalWindow => "renewal-window",
            DueReason::Expired => "expired",
            DueReason::Revoked => "revoked",
            DueReason::Forced => "forced",
        }
    }
}

/// What one host needs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanItem {
    /// Start a rotation.
    Due(DueReason),
    /// Retry a failed rotation (this will be attempt `attempt`).
    Retry {
        /// The attempt number the retry will be.
        attempt: u32,
    },
    /// An in-flight rotation is older than the timeout: fail it (it will be retried later).
    Stuck {
        /// The state it is stuck in.
        state: StateKind,
    },
    /// Nothing to do until `renew_at`.
    NotDue {
        /// The renewal point.
        renew_at: OffsetDateTime,
    },
    /// A rotation is in flight and within its timeout.
    InFlight,
    /// A failed rotation waits for its backoff.
    Backoff {
        /// Earliest retry.
        until: OffsetDateTime,
    },
    /// Revoked, and the stack does not re-issue automatically.
    RevokedHeld,
    /// Revoked for a reason that holds the host (key compromise, cessation of operation …):
    /// nothing starts, not even a forced rotation, until an operator releases it.
    Held,
}

impl PlanItem {
    /// Whether CertCheck should start a rotation for this item.
    pub fn starts_rotation(&self) -> bool {
        matches!(self, PlanItem::Due(_) | PlanItem::Retry { .. })
    }
}

/// Decides what one host needs at `now`.
pub fn plan_host(record: &HostRecord, now: OffsetDateTime, policy: &PlanPolicy) -> PlanItem {
    let kind = record.state.kind();
    if kind.in_flight() {
        return match record.state_since {
            Some(since) if now - since < policy.in_flight_timeout => PlanItem::InFlight,
            _ => PlanItem::Stuck { state: kind },
        };
    }
    match &record.state {
        RotationState::Failed { .. } => {
            // Retries never give up: the backoff is capped, and the alerts escalate by time left.
            let failed = record.attempts.failed.max(1);
            match record.attempts.next_attempt_at {
                Some(until) if until > now => PlanItem::Backoff { until },
                _ => PlanItem::Retry {
                    attempt: failed + 1,
                },
            }
        }
        RotationState::Revoked { held: Some(_), .. } => PlanItem::Held,
        RotationState::Revoked { .. } => {
            if policy.reissue_revoked {
                PlanItem::Due(DueReason::Revoked)
            } else {
                PlanItem::RevokedHeld
            }
        }
        _ => match &record.current {
            None if kind == StateKind::Idle && record.version.is_none() => {
                PlanItem::Due(DueReason::NeverIssued)
            }
            None if kind == StateKind::Idle => PlanItem::Due(DueReason::NeverIssued),
            None => PlanItem::Due(DueReason::ExpiryRemoved),
            Some(cert) => {
                if cert.not_after <= now {
                    return PlanItem::Due(DueReason::Expired);
                }
                let renew_at = cert.renew_at.unwrap_or_else(|| {
                    policy
                        .renewal
                        .renewal_point(&record.host, cert.not_before, cert.not_after)
                });
                if renew_at <= now {
                    PlanItem::Due(DueReason::RenewalWindow)
                } else {
                    PlanItem::NotDue { renew_at }
                }
            }
        },
    }
}

/// Validity left under which a host in trouble is alerted again ([`AlertLevel::Urgent`]).
pub const URGENT_LEFT: Duration = Duration::hours(24);

/// The alert level `record`'s trouble has reached at `now`, if it is above the one already
/// raised this episode. `failing`: the host has just failed, is failed, or cannot be reached.
/// An expired certificate is alerted whatever the host is doing; under [`URGENT_LEFT`] left only
/// a host in trouble is; a first failure is [`AlertLevel::Failed`].
pub fn alert_due(record: &HostRecord, failing: bool, now: OffsetDateTime) -> Option<AlertLevel> {
    let left = record.current.as_ref().map(|c| c.not_after - now);
    let level = match left {
        Some(left) if left <= Duration::ZERO => AlertLevel::Expired,
        _ if !failing => return None,
        Some(left) if left < URGENT_LEFT => AlertLevel::Urgent,
        _ => AlertLevel::Failed,
    };
    match record.attempts.alerted {
        Some(done) if done >= level => None,
        _ => Some(level),
    }
}

/// A whole fleet's plan, in table order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Each host with what it needs.
    pub items: Vec<(HostRecord, PlanItem)>,
}

impl Plan {
    /// Plans every record.
    pub fn build(records: Vec<HostRecord>, now: OffsetDateTime, policy: &PlanPolicy) -> Plan {
        let items = records
            .into_iter()
            .map(|r| {
                let item = plan_host(&r, now, policy);
                (r, item)
            })
            .collect();
        Plan { items }
    }

    /// Hosts for which a rotation should start now.
    pub fn starting(&self) -> impl Iterator<Item = &(HostRecord, PlanItem)> {
        self.items.iter().filter(|(_, i)| i.starts_rotation())
    }

    /// The earliest NotAfter among hosts with a certificate in place.
    pub fn soonest_expiry(&self) -> Option<OffsetDateTime> {
        self.items
            .iter()
            .filter_map(|(r, _)| r.current.as_ref().map(|c| c.not_after))
            .min()
    }
}

#[cfg(test)]
mod tests;
