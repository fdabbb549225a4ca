//! What a run reports: the JSON summary, the metrics, and the invocation's answer.
//!
//! The answer carries every count but only the first [`LISTED_HOSTS`] hosts of each list: a run
//! over 100,000 hosts would otherwise list them all and pass Lambda's 6 MB response limit (the
//! invocation would then fail after doing its work). The logs name every host a run acted on.

use rotation::error::{FailureKind, FunctionError};
use rotation::telemetry::Metrics;
use serde::Serialize;
use state::PlanItem;

use super::error::CheckError;
use super::start::Started;

/// Hosts listed per list in the answer; the rest are only counted (`counts`).
pub const LISTED_HOSTS: usize = 50;

/// A host and a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostNote {
    /// The host (or the escaped key of a refused row).
    pub host: String,
    /// Why.
    pub reason: String,
}

impl HostNote {
    /// A note on `host`.
    pub fn new(host: impl ToString, reason: impl Into<String>) -> Self {
        HostNote {
            host: host.to_string(),
            reason: reason.into(),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Hosts due for a new certificate (including retries).
    pub due: usize,
    /// Rotations started (GenerateCsr sent).
    pub started: Vec<String>,
    /// Of those, retries of failed rotations.
    pub retried: Vec<String>,
    /// Hosts not started, with the reason.
    pub skipped: Vec<HostNote>,
    /// Rotations failed by this run (offline hosts, stuck rotations, send errors).
    pub failed: Vec<HostNote>,
    /// Stuck rotations moved on from what their host or the CA said (their events were lost).
    pub reconciled: Vec<HostNote>,
    /// Hosts whose certificate has expired.
    pub expired: Vec<String>,
    /// Table rows refused by validation.
    pub rejected_rows: Vec<HostNote>,
    /// Due hosts not started because the run's time budget was spent (the continuation
    /// starts them).
    pub left: Vec<String>,
    /// Whether the run's time budget was spent before its work was done.
    pub budget_spent: bool,
    /// Revoked serial, when the request was a revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<HostNote>,
    /// The host released, when the request was a release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<HostNote>,
    /// Items DynamoDB read.
    pub items_read: u64,
    /// True when nothing was changed.
    pub dry_run: bool,
    /// The plan, on a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<HostNote>>,
}

impl Summary {
    /// Adds one rotation's start outcome.
    pub fn absorb(&mut self, started: Started) {
        match started {
            Started::Yes { host, retry } => {
                if retry {
                    self.retried.push(host.clone());
                }
                self.started.push(host);
            }
            Started::Skipped(n) => self.skipped.push(n),
            Started::Failed(n) => self.failed.push(n),
        }
    }

    /// The summary as reported (started hosts sorted: tasks finish in any order) and the run's
    /// metrics, `soonest_expiry_hours` being the hours left on the fleet's soonest NotAfter.
    pub fn finish(mut self, soonest_expiry_hours: Option<f64>) -> (Summary, Metrics) {
        self.started.sort();
        let mut metrics = Metrics::default();
        if let Some(hours) = soonest_expiry_hours {
            metrics.hours("HoursToSoonestExpiry", hours);
        }
        metrics
            .count("RotationsStarted", self.started.len() as u64)
            .count("RotationsFailed", self.failed.len() as u64)
            .count("RejectedRows", self.rejected_rows.len() as u64)
            .count("RotationsLeft", self.left.len() as u64);
        (self, metrics)
    }
}

/// The summary as answered: every count, and the first [`LISTED_HOSTS`] of each list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report<'a> {
    /// Hosts due for a new certificate (including retries).
    pub due: usize,
    /// The length of each list, listed in full or not.
    pub counts: Counts,
    /// Whether any list below was cut to its first [`LISTED_HOSTS`].
    pub truncated: bool,
    /// The first rotations started.
    pub started: &'a [String],
    /// The first retries.
    pub retried: &'a [String],
    /// The first hosts not started.
    pub skipped: &'a [HostNote],
    /// The first rotations failed.
    pub failed: &'a [HostNote],
    /// The first stuck rotations moved on.
    pub reconciled: &'a [HostNote],
    /// The first hosts whose certificate has expired.
    pub expired: &'a [String],
    /// The first table rows refused.
    pub rejected_rows: &'a [HostNote],
    /// The first due hosts left because the time budget was spent.
    pub left: &'a [String],
    /// Whether the run's time budget was spent before its work was done.
    pub budget_spent: bool,
    /// Whether the stack should run the same request again: hosts were left and this run
    /// made progress (so a continuation never loops without doing anything).
    #[serde(rename = "continue")]
    pub continuation: bool,
    /// Revoked serial, when the request was a revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<&'a HostNote>,
    /// The host released, when the request was a release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<&'a HostNote>,
    /// Items DynamoDB read.
    pub items_read: u64,
    /// True when nothing was changed.
    pub dry_run: bool,
    /// The first hosts of the plan, on a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<&'a [HostNote]>,
}

/// How many entries each list of a [`Summary`] has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Rotations started.
    pub started: usize,
    /// Retries among them.
    pub retried: usize,
    /// Hosts not started.
    pub skipped: usize,
    /// Rotations failed.
    pub failed: usize,
    /// Stuck rotations moved on.
    pub reconciled: usize,
    /// Expired certificates.
    pub expired: usize,
    /// Table rows refused.
    pub rejected_rows: usize,
    /// Due hosts left for the continuation.
    pub left: usize,
    /// Hosts in the plan, on a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<usize>,
}

impl Summary {
    /// The summary as answered: counts, and the first [`LISTED_HOSTS`] of each list.
    pub fn report(&self) -> Report<'_> {
        fn first<T>(list: &[T]) -> &[T] {
            &list[..list.len().min(LISTED_HOSTS)]
        }
        let counts = Counts {
            started: self.started.len(),
            retried: self.retried.len(),
            skipped: self.skipped.len(),
            failed: self.failed.len(),
            reconciled: self.reconciled.len(),
            expired: self.expired.len(),
            rejected_rows: self.rejected_rows.len(),
            left: self.left.len(),
            plan: self.plan.as_ref().map(Vec::len),
        };
        let progress = counts.started + counts.skipped + counts.failed + counts.reconciled > 0;
        let longest = [
            counts.started,
            counts.retried,
            counts.skipped,
            counts.failed,
            counts.reconciled,
            counts.expired,
            counts.rejected_rows,
            counts.left,
            counts.plan.unwrap_or(0),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        Report {
            due: self.due,
            truncated: longest > LISTED_HOSTS,
            counts,
            started: first(&self.started),
            retried: first(&self.retried),
            skipped: first(&self.skipped),
            failed: first(&self.failed),
            reconciled: first(&self.reconciled),
            expired: first(&self.expired),
            rejected_rows: first(&self.rejected_rows),
            left: first(&self.left),
            budget_spent: self.budget_spent,
            continuation: !self.left.is_empty() && progress,
            revoked: self.revoked.as_ref(),
            released: self.released.as_ref(),
            items_read: self.items_read,
            dry_run: self.dry_run,
            plan: self.plan.as_deref().map(first),
        }
    }
}

/// The metrics of a run that failed: the soonest expiry whenever the table could be read (an
/// alarm on it must not go quiet because later work failed), and one failed run.
pub fn failed_run_metrics(soonest_expiry_hours: Option<f64>) -> Metrics {
    let mut metrics = Metrics::default();
    if let Some(hours) = soonest_expiry_hours {
        metrics.hours("HoursToSoonestExpiry", hours);
    }
    metrics.count("RunsFailed", 1);
    metrics
}

/// A plan item in words (dry runs, logs).
pub fn describe(item: &PlanItem) -> String {
    match item {
        PlanItem::Due(r) => format!("rotate: {}", r.as_str()),
        PlanItem::Retry { attempt } => format!("retry: attempt {attempt}"),
        PlanItem::Stuck { state } => {
            format!("stuck in {state}: will be reconciled from what the host or Private CA reports")
        }
        PlanItem::NotDue { renew_at } => format!("not due until {renew_at}"),
        PlanItem::InFlight => "rotation in flight".into(),
        PlanItem::Backoff { until } => format!("failed; retry after {until}"),
        PlanItem::RevokedHeld => "revoked; re-issue is off".into(),
        PlanItem::Held => super::plan::HELD.into(),
    }
}

/// The invocation's answer: the summary's [`Report`]; `{"error": …}` for a refused revocation; otherwise a
/// failure of the error's kind.
pub fn answer(result: Result<Summary, CheckError>) -> Result<serde_json::Value, FunctionError> {
    match result {
        Ok(summary) => serde_json::to_value(summary.report())
            .map_err(|e| FunctionError::new(FailureKind::Permanent, &e)),
        Err(e @ CheckError::Refused(_)) => Ok(serde_json::json!({ "error": e.to_string() })),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::fixtures::{backend_error, NOW};
    use serde_json::json;
    use state::plan::DueReason;
    use state::record::StateKind;

    fn note(h: &str, r: &str) -> HostNote {
        HostNote::new(h, r)
    }

    #[test]
    fn absorb_sorts_each_outcome_into_its_list() {
        let mut s = Summary::default();
        s.absorb(Started::Yes {
            host: "b".into(),
            retry: true,
        });
        s.absorb(Started::Yes {
            host: "a".into(),
            retry: false,
        });
        s.absorb(Started::Skipped(note(
            "c",
            "another run started this rotation",
        )));
        s.absorb(Started::Failed(note("d", "offline")));
        assert_eq!(s.started, ["b", "a"]);
        assert_eq!(s.retried, ["b"]);
        assert_eq!(s.skipped, [note("c", "another run started this rotation")]);
        assert_eq!(s.failed, [note("d", "offline")]);
    }

    #[test]
    fn finish_sorts_started_and_counts_metrics() {
        let s = Summary {
            started: vec!["b".into(), "a".into()],
            failed: vec![note("c", "x")],
            rejected_rows: vec![note("k1", "bad"), note("k2", "bad")],
            ..Summary::default()
        };
        let (s, metrics) = s.finish(Some(36.5));
        assert_eq!(s.started, ["a", "b"]);
        let doc = metrics.document("CertCheck", 0);
        assert_eq!(doc["HoursToSoonestExpiry"], json!(36.5));
        assert_eq!(doc["RotationsStarted"], json!(2.0));
        assert_eq!(doc["RotationsFailed"], json!(1.0));
        assert_eq!(doc["RejectedRows"], json!(2.0));
        let names = &doc["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(doc["RotationsLeft"], json!(0.0));
        assert_eq!(names.as_array().unwrap().len(), 5);
    }

    #[test]
    fn a_failed_run_still_reports_the_soonest_expiry() {
        let doc = failed_run_metrics(Some(-2.0)).document("CertCheck", 0);
        assert_eq!(doc["HoursToSoonestExpiry"], json!(-2.0));
        assert_eq!(doc["RunsFailed"], json!(1.0));
        let doc = failed_run_metrics(None).document("CertCheck", 0);
        assert!(doc.get("HoursToSoonestExpiry").is_none());
        assert_eq!(doc["RunsFailed"], json!(1.0));
    }

    #[test]
    fn finish_without_certificates_has_no_expiry_metric() {
        let (_, metrics) = Summary::default().finish(None);
        let doc = metrics.document("CertCheck", 0);
        assert!(doc.get("HoursToSoonestExpiry").is_none());
        assert_eq!(doc["RotationsStarted"], json!(0.0));
    }

    #[test]
    fn every_plan_item_is_described() {
        let cases = [
            (PlanItem::Due(DueReason::Forced), "rotate: forced"),
            (PlanItem::Retry { attempt: 3 }, "retry: attempt 3"),
            (
                PlanItem::Stuck {
                    state: StateKind::Issuing,
                },
                "stuck in ISSUING: will be reconciled from what the host or Private CA reports",
            ),
            (PlanItem::InFlight, "rotation in flight"),
            (PlanItem::RevokedHeld, "revoked; re-issue is off"),
        ];
        for (item, text) in cases {
            assert_eq!(describe(&item), text);
        }
        assert!(
            describe(&PlanItem::NotDue { renew_at: NOW }).starts_with("not due until 2026-11-10")
        );
        assert!(describe(&PlanItem::Backoff { until: NOW }).starts_with("failed; retry after 2026"));
    }

    #[test]
    fn the_summary_is_answered_in_camel_case() {
        let v = answer(Ok(Summary {
            items_read: 4,
            dry_run: true,
            plan: Some(vec![]),
            ..Summary::default()
        }))
        .unwrap();
        assert_eq!(v["itemsRead"], json!(4));
        assert_eq!(v["dryRun"], json!(true));
        assert_eq!(v["rejectedRows"], json!([]));
        assert_eq!(v["plan"], json!([]));
        assert!(v.get("revoked").is_none());
        assert!(answer(Ok(Summary::default()))
            .unwrap()
            .get("plan")
            .is_none());
    }

    #[test]
    fn a_run_over_a_large_fleet_answers_counts_and_the_first_hosts_well_under_6_mb() {
        let n = 100_000;
        let name = |i: usize| format!("mi-{i:017x}");
        let reason = "offline, waiting (PingStatus ConnectionLost since 2026-11-30T10:00:00Z)";
        let notes = |k: usize| (0..k).map(|i| note(&name(i), reason)).collect::<Vec<_>>();
        let s = Summary {
            due: n,
            started: (0..n).map(name).collect(),
            retried: (0..n / 10).map(name).collect(),
            skipped: notes(n),
            failed: notes(n / 2),
            reconciled: notes(LISTED_HOSTS),
            expired: (0..n).map(name).collect(),
            rejected_rows: notes(3),
            items_read: n as u64,
            dry_run: true,
            plan: Some(notes(n)),
            ..Summary::default()
        };
        let v = answer(Ok(s)).unwrap();
        let bytes = v.to_string().len();
        println!("answer for {n} hosts: {bytes} bytes");
        assert!(bytes < 200_000, "{bytes} bytes");
        assert_eq!(v["due"], json!(n));
        assert_eq!(
            v["counts"],
            json!({
                "started": n, "retried": n / 10, "skipped": n, "failed": n / 2,
                "reconciled": LISTED_HOSTS, "expired": n, "rejectedRows": 3, "left": 0,
                "plan": n,
            })
        );
        assert_eq!(v["truncated"], json!(true));
        for list in [
            "started",
            "retried",
            "skipped",
            "failed",
            "reconciled",
            "expired",
            "plan",
        ] {
            assert_eq!(v[list].as_array().unwrap().len(), LISTED_HOSTS, "{list}");
        }
        assert_eq!(v["started"][0], json!(name(0)));
        assert_eq!(v["rejectedRows"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn hosts_left_ask_for_a_continuation_only_after_progress() {
        let left = Summary {
            left: vec!["b".into()],
            budget_spent: true,
            started: vec!["a".into()],
            ..Summary::default()
        };
        let v = answer(Ok(left.clone())).unwrap();
        assert_eq!(v["continue"], json!(true));
        assert_eq!(v["budgetSpent"], json!(true));
        assert_eq!(
            (v["left"].clone(), v["counts"]["left"].clone()),
            (json!(["b"]), json!(1))
        );
        let stalled = Summary {
            started: vec![],
            ..left
        };
        assert_eq!(answer(Ok(stalled)).unwrap()["continue"], json!(false));
        assert_eq!(
            answer(Ok(Summary::default())).unwrap()["continue"],
            json!(false)
        );
    }

    #[test]
    fn a_small_run_is_listed_in_full() {
        let v = answer(Ok(Summary {
            started: vec!["a".into(), "b".into()],
            ..Summary::default()
        }))
        .unwrap();
        assert_eq!(v["started"], json!(["a", "b"]));
        assert_eq!(v["counts"]["started"], json!(2));
        assert_eq!(v["truncated"], json!(false));
        assert!(v["counts"].get("plan").is_none());
    }

    #[test]
    fn a_refused_revocation_is_answered_with_its_error() {
        let v = answer(Err(CheckError::Refused("host mi-1 is not enrolled".into()))).unwrap();
        assert_eq!(
            v,
            json!({"error": "invalid request: host mi-1 is not enrolled"})
        );
    }

    #[test]
    fn other_errors_fail_the_invocation_with_their_kind() {
        let e = answer(Err(CheckError::BadRequest(
            "force needs a list of hosts".into(),
        )))
        .unwrap_err();
        assert_eq!(e.kind, FailureKind::BadRequest);
        let e = answer(Err(CheckError::Store(backend_error(
            "AccessDeniedException",
            false,
        ))))
        .unwrap_err();
        assert_eq!(e.kind, FailureKind::Permanent);
        let e = answer(Err(CheckError::LostTask("cancelled".into()))).unwrap_err();
        assert_eq!(e.kind, FailureKind::Retryable);
    }
}
