//! Stuck rotations moved on from the truth, not failed blind.
//!
//! A rotation is stuck when it has been in flight longer than the in-flight timeout: one of its
//! events was lost (events are best effort) or the host never answered. Failing it blind is
//! wrong when the work was done: a DeployCert that succeeded on the host but whose status event
//! was lost would be recorded FAILED while the host runs the new certificate, and the table
//! would keep naming the old serial. So each stuck rotation is first asked about:
//!
//! - CSR_REQUESTED with its GenerateCsr command recorded: Run Command's invocation. Finished →
//!   exactly what CertIssue does on the lost status event (the shell calls it with the event
//!   built here, [`invocation_event`]); still pending → left in flight, unless past
//!   [`hard_limit`] (Run Command has long given up delivering it by then): failed.
//! - ISSUING: Private CA's certificate. Ready → exactly what CertDeploy does on the lost
//!   issuance event ([`issuance_event`]); still issuing → left; an answer that says the
//!   certificate failed ([`CERTIFICATE_FAILED_CODES`]) → failed.
//! - DEPLOYING with its DeployCert command recorded: the invocation. Finished → exactly what
//!   CertDeploy does on the lost status event (success records DEPLOYED with the new serial);
//!   pending → left (never failed while DeployCert may still swap the pair: failing it could
//!   leave the table naming a serial the host no longer runs).
//! - No command recorded ([`Probe::Find`]): the claim was written but SendCommand's answer was
//!   lost (or the function died in between). Every command is sent with a comment naming its
//!   rotation, so Run Command is asked for the host's command of this rotation
//!   ([`after_find`]). Found → recorded, then asked about as above: a DeployCert that swapped
//!   the pair is recorded DEPLOYED with the serial the host runs. Not found → the command never
//!   reached Run Command and the host's pair is untouched. A GenerateCsr is failed (retried
//!   later with a fresh rotation), which leaves the table naming the certificate the host runs.
//!   A DeployCert is sent again, for the certificate already issued, by exactly what CertDeploy
//!   does on a redelivered issuance event: a DeployCert refused by SendCommand's throttling
//!   costs no second certificate and no new key (a wave of new hosts throttles it for hours).
//!
//! The shell ([`crate::reconcile`]) carries out each probe, passes the answer back here, and
//! carries out the decision; the handlers' outcomes become the summary's notes in
//! [`after_handler`].

use rotation::ca::Fetched;
use rotation::error::EventError;
use rotation::events::{
    CommandInvocationDetail, Envelope, IssuanceDetail, PCA_ISSUANCE, SSM_INVOCATION_STATUS,
};
use rotation::failure::RotationFailure;
use rotation::hosts::Invocation;
use rotation::{AwsError, Config};
use state::record::{FailureStage, RotationState};
use state::{HostRecord, RotationId};
use time::{Duration, OffsetDateTime};

use super::error::CheckError;
use super::summary::HostNote;

/// How long Run Command takes at most to settle an invocation: the delivery timeout CertCheck
/// and CertDeploy send with (600 s) plus the documents' execution timeout (300 s). After that it
/// reports a final status (`DeliveryTimedOut`, `TimedOut`, …) rather than pending.
pub const COMMAND_DEADLINE: Duration = Duration::minutes(15);

/// Private CA's error codes for a certificate that will never be ready: the request failed, or
/// the certificate does not exist.
pub const CERTIFICATE_FAILED_CODES: &[&str] = &[
    "RequestFailedException",
    "ResourceNotFoundException",
    "InvalidArnException",
];

pub use rotation::hosts::Document;

/// What to ask about one stuck rotation.
#[derive(Debug, Clone)]
pub enum Probe {
    /// Run Command's invocation of the recorded command on the host.
    Invocation {
        /// The command.
        command_id: String,
        /// Its document.
        document: Document,
    },
    /// Run Command's command of this rotation, never recorded (SendCommand's answer lost).
    Find {
        /// The rotation's document.
        document: Document,
        /// The rotation.
        rotation: RotationId,
    },
    /// Private CA's answer for the pending certificate.
    Certificate {
        /// The certificate.
        cert_arn: String,
    },
    /// Nothing to ask: fail it (see the module's comment).
    Fail(RotationFailure),
}

/// One stuck rotation and what to ask about it.
#[derive(Debug, Clone)]
pub struct Stuck {
    /// The host as planned.
    pub record: HostRecord,
    /// What to ask.
    pub probe: Probe,
}

/// What the answer calls for.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Leave it in flight (a note for the summary says why).
    Leave(HostNote),
    /// Fail it (retried after its backoff).
    Fail(RotationFailure),
    /// CertIssue's step on this GenerateCsr status change.
    Issue(Envelope<CommandInvocationDetail>),
    /// CertDeploy's step on this issuance.
    Deploy(Envelope<IssuanceDetail>),
    /// CertDeploy's step on this DeployCert status change.
    DeployStatus(Envelope<CommandInvocationDetail>),
}

/// What reconciling one rotation came to, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Moved on (issued, DeployCert sent, deployed).
    Moved(HostNote),
    /// Failed (by the reconciler or by the handler it called).
    Failed(HostNote),
    /// Left in flight, or nothing to do.
    Left(HostNote),
}

/// What to ask about `record`'s stuck rotation.
pub fn probe(record: HostRecord) -> Stuck {
    let probe = match &record.state {
        RotationState::CsrRequested {
            command_id: Some(c),
            ..
        } => Probe::Invocation {
            command_id: c.clone(),
            document: Document::GenerateCsr,
        },
        RotationState::CsrRequested {
            command_id: None,
            rotation,
        } => Probe::Find {
            document: Document::GenerateCsr,
            rotation: rotation.clone(),
        },
        RotationState::Issuing { cert_arn, .. } => Probe::Certificate {
            cert_arn: cert_arn.clone(),
        },
        RotationState::Deploying {
            command_id: Some(c),
            ..
        } => Probe::Invocation {
            command_id: c.clone(),
            document: Document::DeployCert,
        },
        RotationState::Deploying {
            command_id: None,
            rotation,
            ..
        } => Probe::Find {
            document: Document::DeployCert,
            rotation: rotation.clone(),
        },
        // The planner only calls in-flight rotations stuck.
        other => Probe::Fail(RotationFailure::new(
            FailureStage::RequestCsr,
            format!("stuck in {}", other.kind()),
        )),
    };
    Stuck { record, probe }
}

/// What Run Command's answer about an unrecorded command calls for.
#[derive(Debug, Clone)]
pub enum Found {
    /// The rotation's command: record it, then ask about its invocation.
    Command(String),
    /// No DeployCert was ever sent for the claimed deployment: send it, as CertDeploy does on
    /// the certificate's issuance event.
    Deploy(Envelope<IssuanceDetail>),
    /// Fail the rotation.
    Fail(RotationFailure),
    /// Leave it in flight.
    Leave(HostNote),
}

/// With Run Command's answer to "which command of `document` was sent for this rotation",
/// what to do at `now`.
pub fn after_find(
    stuck: &Stuck,
    document: Document,
    answer: Result<Option<String>, AwsError>,
    config: &Config,
    now: OffsetDateTime,
) -> Found {
    let minutes = config.plan.in_flight_timeout.whole_minutes();
    let (stage, cert_arn) = match &stuck.record.state {
        RotationState::Deploying { cert_arn, .. } => (FailureStage::Deploy, Some(cert_arn.clone())),
        _ => (FailureStage::RequestCsr, None),
    };
    let fail = |reason: String| {
        Found::Fail(RotationFailure {
            certificate_arn: cert_arn.clone(),
            ..RotationFailure::new(stage, reason)
        })
    };
    match answer {
        Ok(Some(command_id)) => Found::Command(command_id),
        Ok(None) => match (document, &cert_arn) {
            (Document::DeployCert, Some(arn)) => Found::Deploy(issuance_event(arn, config)),
            _ => fail(format!(
                "no {document:?} command reached Run Command within {minutes} minutes (SendCommand failed or never arrived); the host's pair is untouched"
            )),
        },
        Err(e) if now >= hard_limit(&stuck.record, config, now) => fail(format!(
            "no {document:?} command recorded, and Run Command could not be asked which was sent: {e}"
        )),
        Err(e) => Found::Leave(HostNote::new(
            &stuck.record.host,
            format!("in flight: could not ask Run Command which {document:?} command was sent: {e}"),
        )),
    }
}

/// When a command still pending is given up: the in-flight timeout plus [`COMMAND_DEADLINE`]
/// after the state was entered (unknown entry time: now).
pub fn hard_limit(record: &HostRecord, config: &Config, now: OffsetDateTime) -> OffsetDateTime {
    record.state_since.unwrap_or(now) + config.plan.in_flight_timeout + COMMAND_DEADLINE
}

/// Whether to ask again (after the shell's next delay): the answer is still pending, or an
/// error a retry may cure.
pub fn ask_again<T>(answer: &Result<T, AwsError>, pending: impl Fn(&T) -> bool) -> bool {
    match answer {
        Ok(v) => pending(v),
        Err(e) => e.retryable,
    }
}

/// With Run Command's answer for the recorded `command_id`, what to do at `now`.
pub fn after_invocation(
    stuck: &Stuck,
    command_id: &str,
    document: Document,
    answer: Result<Invocation, AwsError>,
    config: &Config,
    now: OffsetDateTime,
) -> Decision {
    let host = &stuck.record.host;
    match (answer, document) {
        (Ok(Invocation::Finished { status, .. }), Document::GenerateCsr) => Decision::Issue(
            invocation_event(stuck, command_id, document, &status, config),
        ),
        (Ok(Invocation::Finished { status, .. }), Document::DeployCert) => Decision::DeployStatus(
            invocation_event(stuck, command_id, document, &status, config),
        ),
        (Ok(Invocation::Pending), Document::GenerateCsr)
            if now >= hard_limit(&stuck.record, config, now) =>
        {
            let minutes = (now - stuck.record.state_since.unwrap_or(now)).whole_minutes();
            Decision::Fail(RotationFailure {
                command_id: Some(command_id.to_owned()),
                ..RotationFailure::new(
                    FailureStage::RequestCsr,
                    format!("GenerateCsr command {command_id} still not finished after {minutes} minutes (past Run Command's delivery and execution timeouts)"),
                )
            })
        }
        (Ok(Invocation::Pending), _) => Decision::Leave(HostNote::new(
            host,
            format!("in flight: {document:?} command {command_id} still running on the host"),
        )),
        (Err(e), _) => Decision::Leave(HostNote::new(
            host,
            format!("in flight: could not ask Run Command about {command_id}: {e}"),
        )),
    }
}

/// With Private CA's answer for the pending certificate, what to do.
pub fn after_fetch(
    stuck: &Stuck,
    cert_arn: &str,
    answer: Result<Fetched, AwsError>,
    config: &Config,
) -> Decision {
    let host = &stuck.record.host;
    match answer {
        Ok(Fetched::Ready { .. }) => Decision::Deploy(issuance_event(cert_arn, config)),
        Ok(Fetched::Pending) => Decision::Leave(HostNote::new(
            host,
            format!("in flight: Private CA is still issuing {cert_arn}"),
        )),
        Err(e)
            if e.code
                .as_deref()
                .is_some_and(|c| CERTIFICATE_FAILED_CODES.contains(&c)) =>
        {
            Decision::Fail(RotationFailure {
                certificate_arn: Some(cert_arn.to_owned()),
                ..RotationFailure::new(
                    FailureStage::Issue,
                    format!("Private CA says the certificate failed: {e}"),
                )
            })
        }
        Err(e) => Decision::Leave(HostNote::new(
            host,
            format!("in flight: could not ask Private CA about {cert_arn}: {e}"),
        )),
    }
}

/// The status-change event Run Command would have sent for the host's invocation of
/// `command_id` (the shape of `rotation::events`, as EventBridge delivers it).
pub fn invocation_event(
    stuck: &Stuck,
    command_id: &str,
    document: Document,
    status: &str,
    config: &Config,
) -> Envelope<CommandInvocationDetail> {
    let host = stuck.record.host.as_str();
    Envelope {
        id: format!("reconcile-{command_id}-{host}"),
        detail_type: SSM_INVOCATION_STATUS.to_owned(),
        source: "aws.ssm".to_owned(),
        resources: vec![],
        detail: CommandInvocationDetail {
            command_id: command_id.to_owned(),
            document_name: document.name(config).to_owned(),
            instance_id: host.to_owned(),
            status: status.to_owned(),
        },
    }
}

/// The issuance event Private CA would have sent for `cert_arn` (resources: the CA, then the
/// certificate).
pub fn issuance_event(cert_arn: &str, config: &Config) -> Envelope<IssuanceDetail> {
    Envelope {
        id: format!("reconcile-{cert_arn}"),
        detail_type: PCA_ISSUANCE.to_owned(),
        source: "aws.acm-pca".to_owned(),
        resources: vec![config.ca_arn.clone(), cert_arn.to_owned()],
        detail: IssuanceDetail {
            result: "success".to_owned(),
        },
    }
}

/// A handler's outcome, in the reconciler's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// It moved the rotation on; what it did.
    Moved(String),
    /// It failed the rotation; why.
    Failed(String),
    /// It did nothing; why (a late event moved the host first).
    Ignored(String),
}

/// CertIssue's outcome in the reconciler's terms.
pub fn issue_handled(outcome: cert_issue::Outcome) -> Handled {
    match outcome {
        cert_issue::Outcome::Issued {
            certificate_arn, ..
        } => Handled::Moved(format!("certificate {certificate_arn} requested")),
        cert_issue::Outcome::Failed { reason, .. } => Handled::Failed(reason),
        cert_issue::Outcome::Ignored { reason } => Handled::Ignored(reason),
    }
}

/// CertDeploy's outcome in the reconciler's terms.
pub fn deploy_handled(outcome: cert_deploy::Outcome) -> Handled {
    match outcome {
        cert_deploy::Outcome::DeploySent { command_id, .. } => {
            Handled::Moved(format!("DeployCert {command_id} sent"))
        }
        cert_deploy::Outcome::Deployed { serial, .. } => {
            Handled::Moved(format!("deployed, serial {serial}"))
        }
        cert_deploy::Outcome::Failed { reason, .. } => Handled::Failed(reason),
        // The certificate asked about belongs to no rotation any more (revoked as an orphan).
        cert_deploy::Outcome::Retired { serial, .. } => Handled::Ignored(format!(
            "certificate {serial} never reached the host: revoked"
        )),
        cert_deploy::Outcome::Ignored { reason } => Handled::Ignored(reason),
    }
}

/// With a handler's answer, the note for the summary. An error a retry may cure leaves the
/// rotation for the next pass; one it will not (the table refused us) stops the run, as the
/// run's own store errors do.
pub fn after_handler(
    stuck: &Stuck,
    what: &str,
    answer: Result<Handled, EventError>,
) -> Result<Reconciled, CheckError> {
    let host = &stuck.record.host;
    match answer {
        Ok(Handled::Moved(did)) => Ok(Reconciled::Moved(HostNote::new(
            host,
            format!("{what}: {did}"),
        ))),
        Ok(Handled::Failed(why)) => Ok(Reconciled::Failed(HostNote::new(
            host,
            format!("{what}: {why}"),
        ))),
        Ok(Handled::Ignored(why)) => Ok(Reconciled::Left(HostNote::new(
            host,
            format!("{what}: nothing to do ({why})"),
        ))),
        Err(e) if e.is_retryable() => Ok(Reconciled::Left(HostNote::new(
            host,
            format!("{what}: will try again on the next pass ({e})"),
        ))),
        Err(EventError::Store(e)) => Err(e.into()),
        Err(EventError::Aws(e)) => Err(e.into()),
        Err(e @ EventError::NotReady(_)) => Ok(Reconciled::Left(HostNote::new(
            host,
            format!("{what}: {e}"),
        ))),
    }
}

/// After failing a stuck rotation: a note; nothing changed when someone else moved the host
/// first (a late event); the error when the store failed.
pub fn after_failing<T>(
    stuck: &Stuck,
    failure: &RotationFailure,
    result: Result<T, state::StoreError>,
) -> Result<Reconciled, CheckError> {
    match result {
        Ok(_) => Ok(Reconciled::Failed(HostNote::new(
            &stuck.record.host,
            &failure.reason,
        ))),
        Err(state::StoreError::Conflict(_)) => Ok(Reconciled::Left(HostNote::new(
            &stuck.record.host,
            "moved on before it could be failed (a late event)",
        ))),
        Err(e) => Err(e.into()),
    }
}

/// After recording a found command failed: left when someone else moved the host first (a
/// late event), else the store's error.
pub fn after_recording(
    stuck: &Stuck,
    command_id: &str,
    error: state::StoreError,
) -> Result<Reconciled, CheckError> {
    match error {
        state::StoreError::Conflict(_) => Ok(Reconciled::Left(HostNote::new(
            &stuck.record.host,
            format!("moved on before its command {command_id} could be recorded (a late event)"),
        ))),
        e => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::fixtures::*;
    use rotation::failure::Failed;
    use state::record::DeployedCert;

    fn stuck(record: HostRecord) -> Stuck {
        probe(record)
    }

    fn issuing(n: u32, since: OffsetDateTime) -> HostRecord {
        HostRecord {
            state: RotationState::Issuing {
                rotation: RotationId("r-1".into()),
                cert_arn: "arn:cert/1".into(),
                key_fingerprint: "f".into(),
            },
            ..csr_requested(n, since)
        }
    }

    fn deploying(n: u32, command: Option<&str>, since: OffsetDateTime) -> HostRecord {
        HostRecord {
            state: RotationState::Deploying {
                rotation: RotationId("r-1".into()),
                cert_arn: "arn:cert/1".into(),
                command_id: command.map(str::to_owned),
                pending: DeployedCert {
                    serial: Some("0b".into()),
                    not_before: Some(NOW),
                    not_after: NOW + Duration::days(7),
                    renew_at: None,
                    cert_arn: None,
                },
            },
            ..csr_requested(n, since)
        }
    }

    fn finished(status: &str) -> Invocation {
        Invocation::Finished {
            success: status == "Success",
            status: status.into(),
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    fn pca_error(code: &str) -> AwsError {
        AwsError {
            service: "ACMPCA",
            operation: "GetCertificate",
            code: Some(code.into()),
            message: "no".into(),
            retryable: false,
            source: None,
        }
    }

    #[test]
    fn each_stuck_state_asks_its_source_of_truth() {
        let old = NOW - Duration::hours(2);
        assert!(matches!(
            stuck(csr_requested(1, old)).probe,
            Probe::Invocation { command_id, document: Document::GenerateCsr } if command_id == "c-1"
        ));
        assert!(matches!(
            stuck(issuing(2, old)).probe,
            Probe::Certificate { cert_arn } if cert_arn == "arn:cert/1"
        ));
        assert!(matches!(
            stuck(deploying(3, Some("d-1"), old)).probe,
            Probe::Invocation { command_id, document: Document::DeployCert } if command_id == "d-1"
        ));
    }

    #[test]
    fn pending_answers_and_retryable_errors_are_asked_again() {
        let pending = |i: &Invocation| *i == Invocation::Pending;
        assert!(ask_again(&Ok(Invocation::Pending), pending));
        assert!(!ask_again(&Ok(finished("Success")), pending));
        assert!(ask_again::<Invocation>(
            &Err(aws_error("ThrottlingException", true)),
            pending
        ));
        assert!(!ask_again::<Invocation>(
            &Err(aws_error("AccessDenied", false)),
            pending
        ));
    }

    #[test]
    fn a_rotation_with_no_command_recorded_asks_run_command_for_it() {
        let mut r = csr_requested(1, NOW - Duration::hours(2));
        r.state = RotationState::CsrRequested {
            rotation: RotationId("r-1".into()),
            command_id: None,
        };
        assert!(matches!(
            stuck(r).probe,
            Probe::Find { document: Document::GenerateCsr, rotation } if rotation.0 == "r-1"
        ));
        assert!(matches!(
            stuck(deploying(2, None, NOW - Duration::hours(2))).probe,
            Probe::Find {
                document: Document::DeployCert,
                ..
            }
        ));
    }

    #[test]
    fn an_unrecorded_command_found_is_followed_a_deploy_never_sent_is_sent_a_csr_failed() {
        let config = config();
        let s = stuck(deploying(2, None, NOW - Duration::hours(2)));
        let found = after_find(
            &s,
            Document::DeployCert,
            Ok(Some("d-9".into())),
            &config,
            NOW,
        );
        assert!(matches!(found, Found::Command(c) if c == "d-9"));

        // A DeployCert never sent is sent for the certificate already issued: the issuance
        // event CertDeploy would have been given again.
        let Found::Deploy(event) = after_find(&s, Document::DeployCert, Ok(None), &config, NOW)
        else {
            panic!("sends DeployCert again")
        };
        assert_eq!(event.detail_type, PCA_ISSUANCE);
        assert!(event.resources.iter().any(|r| r == "arn:cert/1"));

        // A GenerateCsr never sent fails its rotation (the host's pair is untouched).
        let s_csr = stuck(HostRecord {
            state: RotationState::CsrRequested {
                rotation: RotationId("r-1".into()),
                command_id: None,
            },
            ..csr_requested(2, NOW - Duration::hours(2))
        });
        let Found::Fail(f) = after_find(&s_csr, Document::GenerateCsr, Ok(None), &config, NOW)
        else {
            panic!("fails")
        };
        assert_eq!(f.stage, FailureStage::RequestCsr);
        let within = format!(
            "no GenerateCsr command reached Run Command within {} minutes",
            config.plan.in_flight_timeout.whole_minutes()
        );
        assert!(f.reason.starts_with(&within), "{}", f.reason);

        // Run Command can't be asked: left, until the hard limit (15 minutes past the
        // in-flight timeout).
        let since = NOW - config.plan.in_flight_timeout - Duration::minutes(5);
        let s = stuck(deploying(2, None, since));
        let throttled = || Err(aws_error("ThrottlingException", true));
        assert!(matches!(
            after_find(&s, Document::DeployCert, throttled(), &config, NOW),
            Found::Leave(_)
        ));
        let late = NOW + Duration::hours(1);
        assert!(matches!(
            after_find(&s, Document::DeployCert, throttled(), &config, late),
            Found::Fail(_)
        ));
    }

    #[test]
    fn a_finished_generate_csr_becomes_the_status_event_cert_issue_expects() {
        let s = stuck(csr_requested(1, NOW - Duration::hours(2)));
        let d = after_invocation(
            &s,
            "c-1",
            Document::GenerateCsr,
            Ok(finished("Success")),
            &config(),
            NOW,
        );
        let Decision::Issue(ev) = d else {
            panic!("{d:?}")
        };
        assert_eq!(ev.source, "aws.ssm");
        assert_eq!(ev.detail_type, SSM_INVOCATION_STATUS);
        assert_eq!(ev.detail.command_id, "c-1");
        assert_eq!(ev.detail.document_name, "gen");
        assert_eq!(ev.detail.instance_id, host(1).as_str());
        assert_eq!(ev.detail.status, "Success");
        assert_eq!(ev.detail.finished_host(), Ok(host(1)));
        // A failed one too: CertIssue records the host's reason.
        let d = after_invocation(
            &s,
            "c-1",
            Document::GenerateCsr,
            Ok(finished("Failed")),
            &config(),
            NOW,
        );
        assert!(matches!(d, Decision::Issue(ev) if ev.detail.status == "Failed"));
    }

    #[test]
    fn a_finished_deploy_cert_becomes_cert_deploys_status_event() {
        let s = stuck(deploying(1, Some("d-1"), NOW - Duration::hours(2)));
        let d = after_invocation(
            &s,
            "d-1",
            Document::DeployCert,
            Ok(finished("Success")),
            &config(),
            NOW,
        );
        let Decision::DeployStatus(ev) = d else {
            panic!("{d:?}")
        };
        assert_eq!(
            (
                ev.detail.document_name.as_str(),
                ev.detail.command_id.as_str()
            ),
            ("dep", "d-1")
        );
    }

    #[test]
    fn a_pending_generate_csr_is_left_until_the_hard_limit_then_failed() {
        let config = config();
        // Stuck after the in-flight timeout; Run Command settles within 15 more.
        let timeout = config.plan.in_flight_timeout;
        let since = NOW - timeout - Duration::minutes(10);
        let s = stuck(csr_requested(1, since));
        let ask = |now| {
            after_invocation(
                &s,
                "c-1",
                Document::GenerateCsr,
                Ok(Invocation::Pending),
                &config,
                now,
            )
        };
        assert!(matches!(ask(NOW), Decision::Leave(n) if n.reason.contains("still running")));
        assert_eq!(
            hard_limit(&s.record, &config, NOW),
            since + timeout + Duration::minutes(15)
        );
        let Decision::Fail(f) = ask(NOW + Duration::minutes(5)) else {
            panic!("fails at the hard limit")
        };
        assert_eq!(f.stage, FailureStage::RequestCsr);
        assert_eq!(f.command_id.as_deref(), Some("c-1"));
        let after = format!("after {} minutes", timeout.whole_minutes() + 15);
        assert!(f.reason.contains(&after), "{}", f.reason);
    }

    #[test]
    fn a_pending_deploy_cert_is_never_failed() {
        let s = stuck(deploying(1, Some("d-1"), NOW - Duration::days(2)));
        let d = after_invocation(
            &s,
            "d-1",
            Document::DeployCert,
            Ok(Invocation::Pending),
            &config(),
            NOW,
        );
        assert!(matches!(d, Decision::Leave(_)), "{d:?}");
    }

    #[test]
    fn an_unanswered_question_leaves_the_rotation_for_the_next_pass() {
        let s = stuck(csr_requested(1, NOW - Duration::days(2)));
        let d = after_invocation(
            &s,
            "c-1",
            Document::GenerateCsr,
            Err(aws_error("ThrottlingException", true)),
            &config(),
            NOW,
        );
        assert!(
            matches!(&d, Decision::Leave(n) if n.reason.contains("ThrottlingException")),
            "{d:?}"
        );
        let s = stuck(issuing(2, NOW - Duration::hours(2)));
        let d = after_fetch(
            &s,
            "arn:cert/1",
            Err(pca_error("AccessDeniedException")),
            &config(),
        );
        assert!(matches!(d, Decision::Leave(_)), "{d:?}");
    }

    #[test]
    fn an_issued_certificate_becomes_the_issuance_event_cert_deploy_expects() {
        let s = stuck(issuing(1, NOW - Duration::hours(2)));
        let ready = Fetched::Ready {
            certificate: "pem".into(),
            chain: "chain".into(),
        };
        let Decision::Deploy(ev) = after_fetch(&s, "arn:cert/1", Ok(ready), &config()) else {
            panic!("deploys")
        };
        assert_eq!(ev.source, "aws.acm-pca");
        assert_eq!(ev.detail_type, PCA_ISSUANCE);
        assert_eq!(ev.resources, [config().ca_arn, "arn:cert/1".to_owned()]);
        assert_eq!(ev.detail.result, "success");
        let d = after_fetch(&s, "arn:cert/1", Ok(Fetched::Pending), &config());
        assert!(matches!(d, Decision::Leave(n) if n.reason.contains("still issuing")));
    }

    #[test]
    fn a_certificate_private_ca_says_failed_fails_the_rotation() {
        let s = stuck(issuing(1, NOW - Duration::hours(2)));
        for code in CERTIFICATE_FAILED_CODES {
            let Decision::Fail(f) = after_fetch(&s, "arn:cert/1", Err(pca_error(code)), &config())
            else {
                panic!("{code}: fails")
            };
            assert_eq!(f.stage, FailureStage::Issue);
            assert_eq!(f.certificate_arn.as_deref(), Some("arn:cert/1"));
            assert!(f.reason.contains(code), "{}", f.reason);
        }
    }

    #[test]
    fn the_handlers_outcomes_become_notes_and_only_lasting_errors_stop_the_run() {
        let s = stuck(csr_requested(1, NOW - Duration::hours(2)));
        let what = "GenerateCsr had finished";
        assert_eq!(
            after_handler(&s, what, Ok(Handled::Moved("certificate requested".into()))).unwrap(),
            Reconciled::Moved(HostNote::new(
                host(1),
                "GenerateCsr had finished: certificate requested"
            ))
        );
        assert!(matches!(
            after_handler(&s, what, Ok(Handled::Failed("CSR refused".into()))).unwrap(),
            Reconciled::Failed(n) if n.reason.ends_with("CSR refused")
        ));
        assert!(matches!(
            after_handler(&s, what, Ok(Handled::Ignored("host is in DEPLOYED".into()))).unwrap(),
            Reconciled::Left(n) if n.reason.contains("nothing to do")
        ));
        assert!(matches!(
            after_handler(&s, what, Err(EventError::NotReady("output".into()))).unwrap(),
            Reconciled::Left(_)
        ));
        assert!(matches!(
            after_handler(
                &s,
                what,
                Err(EventError::Store(backend_error("ThrottlingException", true)))
            )
            .unwrap(),
            Reconciled::Left(n) if n.reason.contains("next pass")
        ));
        assert!(matches!(
            after_handler(
                &s,
                what,
                Err(EventError::Store(backend_error(
                    "AccessDeniedException",
                    false
                )))
            ),
            Err(CheckError::Store(_))
        ));
    }

    #[test]
    fn the_handlers_outcomes_in_the_reconcilers_terms() {
        let issued = cert_issue::Outcome::Issued {
            host: host(1).to_string(),
            certificate_arn: "arn:cert/1".into(),
        };
        assert_eq!(
            issue_handled(issued),
            Handled::Moved("certificate arn:cert/1 requested".into())
        );
        let deployed = cert_deploy::Outcome::Deployed {
            host: host(1).to_string(),
            serial: "0b".into(),
        };
        assert_eq!(
            deploy_handled(deployed),
            Handled::Moved("deployed, serial 0b".into())
        );
        let ignored = cert_deploy::Outcome::Ignored {
            reason: "stale".into(),
        };
        assert_eq!(deploy_handled(ignored), Handled::Ignored("stale".into()));
    }

    #[test]
    fn after_failing_a_stuck_rotation() {
        let s = stuck(csr_requested(1, NOW - Duration::hours(2)));
        let f = RotationFailure::new(FailureStage::RequestCsr, "gone");
        let done = Failed {
            attempts: 1,
            alerted: true,
        };
        assert_eq!(
            after_failing(&s, &f, Ok(done)).unwrap(),
            Reconciled::Failed(HostNote::new(host(1), "gone"))
        );
        assert!(matches!(
            after_failing::<Failed>(&s, &f, Err(conflict(1))).unwrap(),
            Reconciled::Left(_)
        ));
        assert!(after_failing::<Failed>(&s, &f, Err(backend_error("X", false))).is_err());
    }
}
