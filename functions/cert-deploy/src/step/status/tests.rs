//! One test per branch of the deploy-status step.

use rotation::error::FailureKind;
use state::record::{FailureStage, RotationState};

use super::*;
use crate::step::testkit::*;

fn verification(status: &str) -> Verification {
    deploy_status(
        &deploy_status_event(status),
        &host(),
        Some(deploying(Some(COMMAND))),
        &config(),
    )
    .unwrap()
}

fn host_failure() -> Verify {
    match verification("Failed") {
        Verification::HostFailed(v) => v,
        other => panic!("expected a host failure, got {other:?}"),
    }
}

fn success() -> (Verify, DeployedCert) {
    match verification("Success") {
        Verification::Succeeded(v, cert) => (v, cert),
        other => panic!("expected success, got {other:?}"),
    }
}

#[test]
fn a_finished_deploy_cert_names_its_host() {
    let e = deploy_status_event("Failed");
    assert_eq!(deploy_event(&e, &config()).unwrap(), host());
}

#[test]
fn another_document_or_event_type_is_ignored() {
    let e = deploy_event_with(|v| v["detail"]["document-name"] = "certrotation-GenerateCsr".into());
    let why = ignored(deploy_event(&e, &config()));
    assert!(why.contains("is not a DeployCert status change"), "{why}");
    let e =
        deploy_event_with(|v| v["detail-type"] = "EC2 Command Status-change Notification".into());
    let why = ignored(deploy_event(&e, &config()));
    assert!(why.contains("is not a DeployCert status change"), "{why}");
}

#[test]
fn an_unfinished_or_foreign_invocation_is_ignored() {
    let why = ignored(deploy_event(&deploy_status_event("InProgress"), &config()));
    assert!(why.contains("not final"), "{why}");
    let e = deploy_event_with(|v| v["detail"]["instance-id"] = "i-XYZ".into());
    let why = ignored(deploy_event(&e, &config()));
    assert!(why.contains("not a managed-node ID"), "{why}");
}

#[test]
fn a_host_not_enrolled_is_ignored() {
    let why = ignored(deploy_status(
        &deploy_status_event("Success"),
        &host(),
        None,
        &config(),
    ));
    assert!(why.contains("not enrolled"), "{why}");
}

#[test]
fn a_command_not_recorded_yet_is_not_ready() {
    let r = deploy_status(
        &deploy_status_event("Success"),
        &host(),
        Some(deploying(None)),
        &config(),
    );
    assert_eq!(error_kind(r), FailureKind::NotReady);
}

#[test]
fn another_command_or_state_is_ignored() {
    let issuing = record(RotationState::Issuing {
        rotation: rotation(),
        cert_arn: CERT_ARN.into(),
        key_fingerprint: "ab".into(),
    });
    for r in [
        deploying(Some("other-command")),
        issuing,
        record(RotationState::Deployed),
    ] {
        let kind = r.state.kind();
        let why = ignored(deploy_status(
            &deploy_status_event("Success"),
            &host(),
            Some(r),
            &config(),
        ));
        assert!(why.contains(&format!("is in {kind} (stale")), "{why}");
    }
}

#[test]
fn a_status_other_than_success_reads_the_hosts_output() {
    for status in ["Failed", "TimedOut", "Cancelled"] {
        match verification(status) {
            Verification::HostFailed(v) => {
                assert_eq!(v.status, status);
                assert_eq!(
                    (v.command_id.as_str(), v.cert_arn.as_str()),
                    (COMMAND, CERT_ARN)
                );
                assert_eq!(v.record, deploying(Some(COMMAND)));
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn success_records_the_certificate_with_its_renewal_point() {
    let (verify, cert) = success();
    let pending = pending_cert();
    let expected =
        config()
            .plan
            .renewal
            .renewal_point(&host(), pending.not_before, pending.not_after);
    assert_eq!(cert.renew_at, Some(expected));
    assert!(pending.not_before.unwrap() < expected && expected < pending.not_after);
    assert_eq!(cert.cert_arn.as_deref(), Some(CERT_ARN));
    assert_eq!(
        (cert.serial, cert.not_before, cert.not_after),
        (pending.serial, pending.not_before, pending.not_after)
    );
    assert_eq!(verify.command_id, COMMAND);
}

#[test]
fn a_host_failure_is_recorded_with_the_hosts_reason() {
    let output = Ok(Invocation::Finished {
        success: false,
        status: "Failed".into(),
        stdout: "ROTATION x\n".into(),
        stderr: "checking\nERROR: staged key /etc/pki/x.key.next not found\n".into(),
    });
    let f = failing::<()>(Err(host_failed(&host_failure(), output)));
    assert_eq!(f.failure.stage, FailureStage::Verify);
    assert_eq!(
        f.failure.reason,
        "DeployCert Failed on the host: ERROR: staged key /etc/pki/x.key.next not found"
    );
    assert_eq!(f.failure.command_id.as_deref(), Some(COMMAND));
    assert_eq!(f.failure.certificate_arn.as_deref(), Some(CERT_ARN));
    assert_eq!(f.record, deploying(Some(COMMAND)));
}

#[test]
fn a_host_failure_whose_output_is_not_visible_yet_is_not_ready() {
    let stop = host_failed(&host_failure(), Ok(Invocation::Pending));
    assert_eq!(error_kind::<()>(Err(stop)), FailureKind::NotReady);
}

#[test]
fn a_host_failure_whose_output_cannot_be_read_still_fails() {
    for retryable in [true, false] {
        let f = failing::<()>(Err(host_failed(&host_failure(), Err(aws(retryable)))));
        assert!(
            f.failure
                .reason
                .starts_with("DeployCert Failed on the host: output unavailable: "),
            "{}",
            f.failure.reason
        );
    }
}

#[test]
fn a_recorded_deployment_is_the_outcome() {
    let (verify, cert) = success();
    let o = deployed_recorded(&verify, &cert, Ok(record(RotationState::Deployed))).unwrap();
    assert_eq!(
        o,
        Outcome::Deployed {
            host: HOST.into(),
            serial: "01:02:03".into()
        }
    );
}

#[test]
fn a_deployment_recorded_by_a_duplicate_is_ignored() {
    let (verify, cert) = success();
    ignored(deployed_recorded(&verify, &cert, Err(conflict())));
}

#[test]
fn a_deployment_the_store_may_take_later_is_retried() {
    let (verify, cert) = success();
    let r = deployed_recorded(&verify, &cert, Err(backend(true)));
    assert_eq!(error_kind(r), FailureKind::Retryable);
}

#[test]
fn a_deployment_the_store_refuses_for_good_fails_the_rotation() {
    let (verify, cert) = success();
    let f = failing(deployed_recorded(&verify, &cert, Err(backend(false))));
    assert_eq!(f.failure.stage, FailureStage::Verify);
    assert!(
        f.failure
            .reason
            .starts_with("could not record the deployment: "),
        "{}",
        f.failure.reason
    );
    assert_eq!(f.record, deploying(Some(COMMAND)));
}

fn finished(stdout: &str) -> Result<Invocation, AwsError> {
    Ok(Invocation::Finished {
        success: true,
        status: "Success".into(),
        stdout: stdout.into(),
        stderr: String::new(),
    })
}

fn verdict(output: Result<Invocation, AwsError>) -> HookVerdict {
    let now = NOW;
    reload_hook_verdict(output, Some(now), now).expect("a verdict")
}

fn not_ready(r: Result<HookVerdict, Stop>) -> bool {
    matches!(r, Err(Stop::Error(e)) if e.is_retryable())
}

#[test]
fn a_failed_reload_hook_is_read_from_the_output() {
    let out = "ROTATION r-1\nINSTALLED /etc/pki/host.crt\nRELOAD_HOOK_FAILED 3\n";
    assert_eq!(verdict(finished(out)), HookVerdict::Failed("3".into()));
    assert_eq!(
        verdict(finished("RELOAD_HOOK_FAILED\n")),
        HookVerdict::Failed(String::new())
    );
}

#[test]
fn an_output_without_the_line_is_a_reload_hook_that_did_not_fail() {
    for out in [
        "",
        "ROTATION r-1\nINSTALLED\n",
        "RELOAD_HOOK_FAILEDX 1\n",
        "note: RELOAD_HOOK_FAILED 1\n",
    ] {
        assert_eq!(verdict(finished(out)), HookVerdict::Fine, "{out:?}");
    }
}

#[test]
fn an_output_not_visible_yet_is_waited_for_while_the_event_is_young() {
    let now = NOW;
    let young = Some(now - time::Duration::minutes(1));
    let old = Some(now - crate::step::WAIT_FOR_EVENT - time::Duration::minutes(1));
    assert!(not_ready(reload_hook_verdict(
        Ok(Invocation::Pending),
        young,
        now
    )));
    assert!(
        not_ready(reload_hook_verdict(Ok(Invocation::Pending), None, now)),
        "a rebuilt event"
    );
    assert!(not_ready(reload_hook_verdict(Err(aws(true)), young, now)));
    match reload_hook_verdict(Ok(Invocation::Pending), old, now) {
        Ok(HookVerdict::Unknown(why)) => assert!(why.contains("still not visible"), "{why}"),
        other => panic!("expected unknown, got {other:?}"),
    }
}

#[test]
fn an_output_no_retry_can_read_leaves_the_reload_hook_unknown() {
    match verdict(Err(aws(false))) {
        HookVerdict::Unknown(why) => assert!(why.contains("AccessDeniedException"), "{why}"),
        other => panic!("expected unknown, got {other:?}"),
    }
}

#[test]
fn a_failed_reload_hook_alerts_with_the_host_command_and_exit_code() {
    let (verify, _) = success();
    let a = reload_hook_alert(&verify, "3");
    assert_eq!(a.kind, AlertKind::ReloadHookFailed);
    assert_eq!(a.host.as_deref(), Some(HOST));
    assert_eq!(a.command_id.as_deref(), Some(COMMAND));
    assert_eq!(a.certificate_arn.as_deref(), Some(CERT_ARN));
    assert!(a.reason.contains("exited with 3"), "{}", a.reason);
    assert!(
        a.subject().contains("reload hook failed"),
        "{}",
        a.subject()
    );
    let a = reload_hook_alert(&verify, "");
    assert!(a.reason.contains("exited with unknown"), "{}", a.reason);
}

#[test]
fn the_previous_certificate_is_superseded_once_the_new_one_is_deployed() {
    let (mut verify, cert) = success();
    assert_eq!(
        superseded(&verify, &cert),
        None,
        "a first certificate replaces none"
    );
    verify.record.current = Some(DeployedCert {
        serial: Some("0A:0B".into()),
        cert_arn: Some("arn:old".into()),
        ..pending_cert()
    });
    assert_eq!(
        superseded(&verify, &cert),
        Some(Retirement {
            host: HOST.into(),
            serial: "0A:0B".into(),
            cert_arn: Some("arn:old".into()),
            what: "the previous certificate",
        })
    );
    // The same certificate in another notation (a replayed success) is not revoked.
    verify.record.current = Some(DeployedCert {
        serial: Some("01:02:03".to_uppercase()),
        ..pending_cert()
    });
    assert_eq!(cert.serial.as_deref(), Some("01:02:03"));
    assert_eq!(superseded(&verify, &cert), None);
}
