//! The Run Command emulator's commands, driven through the real AWS SDK client.
//!
//! Why: the end-to-end tests trust this emulator to behave like the service, so its behaviour is
//! pinned here with the same SDK client production uses (endpoint override, static test
//! credentials, retries off): the validation errors the SDK maps to typed errors, the member
//! names it parses, the asynchrony (`InvocationDoesNotExist` right after SendCommand), real
//! script runs with bash and openssl in the host's sandbox, output cut to the service's limits,
//! step timeouts, and status-change events shaped like the samples in `fixtures/events`.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use aws_sdk_ssm::error::ProvideErrorMetadata as _;
use aws_sdk_ssm::types::{CommandInvocationStatus, CommandStatus};
use serde_json::Value;
use tests::emulators::ssm::{self, HostSpec};
use tests::emulators::{Capture, EventBus};
use x509_parser::prelude::{FromDer, X509CertificationRequest};

mod emulator_common;

use emulator_common::{
    assert_event_shape, command_id, fixture_ssm, pem_der, sample_event, ssm_client,
    visible_invocation, GEN, NOISY,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_command_validates_like_ssm() {
    let h = fixture_ssm(EventBus::new(), Capture::new()).await;
    let host = ssm::managed_instance_id(1);
    h.register_host(&host, HostSpec::default());
    let c = ssm_client(&h);
    let send = || {
        c.send_command()
            .document_name(GEN)
            .instance_ids(&host)
            .parameters("rotationId", vec!["r1".into()])
    };

    // A value breaking allowedPattern (shell injection attempt).
    let e = send()
        .parameters("hostId", vec![format!("{host}';rm -rf /;'")])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_parameters(), "{e:?}");
    // A pattern-valid path with a quote is impossible: the pattern is anchored at both ends.
    let e = send()
        .parameters("hostId", vec![host.clone()])
        .parameters("keyPath", vec!["/etc/pki x".into()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_parameters(), "{e:?}");
    // Missing required parameter, unknown parameter, two values for a String.
    let e = send().send().await.unwrap_err().into_service_error();
    assert!(e.is_invalid_parameters(), "{e:?}");
    let e = send()
        .parameters("hostId", vec![host.clone()])
        .parameters("bogus", vec!["x".into()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_parameters(), "{e:?}");
    let e = send()
        .parameters("hostId", vec![host.clone(), host.clone()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_parameters(), "{e:?}");
    // Unknown document, unknown instance, duplicate instance, too many instances.
    let e = c
        .send_command()
        .document_name("nope")
        .instance_ids(&host)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_document(), "{e:?}");
    let e = send()
        .instance_ids(ssm::managed_instance_id(2))
        .parameters("hostId", vec![host.clone()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_instance_id(), "{e:?}");
    let e = send()
        .instance_ids(&host)
        .parameters("hostId", vec![host.clone()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_duplicate_instance_id(), "{e:?}");
    let mut many = c.send_command().document_name(GEN);
    for n in 0..51 {
        many = many.instance_ids(ssm::managed_instance_id(100 + n));
    }
    let e = many.send().await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"), "{e:?}");
    let e = c
        .send_command()
        .document_name(GEN)
        .instance_ids("host-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"), "{e:?}");

    // None of these ran anything.
    assert!(h.invocations().is_empty());
    assert_eq!(h.calls()["SSM.SendCommand"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_csr_runs_in_the_sandbox() {
    let bus = EventBus::new();
    let capture = Capture::new();
    let h = fixture_ssm(bus.clone(), capture.clone()).await;
    let host = ssm::managed_instance_id(0xa1);
    let root = h.register_host(&host, HostSpec::default());
    let c = ssm_client(&h);

    let out = c
        .send_command()
        .document_name(GEN)
        .instance_ids(&host)
        .parameters("hostId", vec![host.clone()])
        .parameters("rotationId", vec!["rot-1".into()])
        .timeout_seconds(600)
        .comment("fixture run")
        .send()
        .await
        .unwrap();
    let cmd = out.command().unwrap();
    assert_eq!(cmd.status(), Some(&CommandStatus::Pending));
    assert_eq!(cmd.document_name(), Some(GEN));
    assert_eq!(cmd.instance_ids(), std::slice::from_ref(&host));
    assert_eq!(cmd.target_count(), 1);
    assert_eq!(cmd.timeout_seconds(), Some(600));
    assert_eq!(cmd.parameters().unwrap()["hostId"], vec![host.clone()]);
    assert!(cmd.requested_date_time().is_some() && cmd.expires_after().is_some());
    let id = cmd.command_id().unwrap().to_string();
    assert_eq!(id.len(), 36);

    // Right after SendCommand the invocation does not exist yet.
    let e = c
        .get_command_invocation()
        .command_id(&id)
        .instance_id(&host)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invocation_does_not_exist(), "{e:?}");

    h.wait_idle().await;
    let inv = c
        .get_command_invocation()
        .command_id(&id)
        .instance_id(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(
        inv.status(),
        Some(&CommandInvocationStatus::Success),
        "{:?}",
        inv.standard_error_content()
    );
    assert_eq!(inv.status_details(), Some("Success"));
    assert_eq!(inv.response_code(), 0);
    assert_eq!(inv.plugin_name(), Some("generateCsr"));
    assert_eq!(inv.document_name(), Some(GEN));
    assert_eq!(inv.comment(), Some("fixture run"));
    let ts = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
    assert!(ts.is_match(inv.execution_start_date_time().unwrap()));
    assert!(ts.is_match(inv.execution_end_date_time().unwrap()));
    let stdout = inv.standard_output_content().unwrap();
    let csr_pem = stdout
        .strip_prefix("ROTATION rot-1\n")
        .expect("rotation line first");
    let csr_der = pem_der(csr_pem);
    let (_, csr) = X509CertificationRequest::from_der(&csr_der).unwrap();
    assert_eq!(
        csr.certification_request_info.subject.to_string(),
        format!("CN={host}")
    );

    // The key stayed in the host's sandbox (default keyPath /etc/pki/fixture), mode 0400.
    let key = root.join(format!("etc/pki/fixture/{host}.key.next"));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .contains("PRIVATE KEY"));
    assert!(
        capture.find("PRIVATE KEY").is_empty(),
        "a key crossed the wire"
    );

    // ListCommandInvocations with details carries the plugin output.
    let list = c
        .list_command_invocations()
        .command_id(&id)
        .details(true)
        .send()
        .await
        .unwrap();
    let ci = &list.command_invocations()[0];
    assert_eq!(ci.status(), Some(&CommandInvocationStatus::Success));
    let plugin = &ci.command_plugins()[0];
    assert_eq!(plugin.name(), Some("generateCsr"));
    assert_eq!(plugin.response_code(), 0);
    assert!(plugin.output().unwrap().starts_with("ROTATION rot-1"));
    assert!(plugin.response_finish_date_time().is_some());

    // Events: invocation InProgress then Success, command InProgress then Success.
    let events = bus.drain();
    let inv_sample = sample_event("ssm-command-invocation-status-change.json");
    let cmd_sample = sample_event("ssm-command-status-change.json");
    let inv_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == inv_sample["detail-type"])
        .collect();
    let cmd_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == cmd_sample["detail-type"])
        .collect();
    assert_eq!(events.len(), inv_events.len() + cmd_events.len());
    let statuses = |v: &[&Value]| -> Vec<String> {
        v.iter()
            .map(|e| e["detail"]["status"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(statuses(&inv_events), ["InProgress", "Success"]);
    assert_eq!(statuses(&cmd_events), ["InProgress", "Success"]);
    for e in &inv_events {
        assert_event_shape(e, &inv_sample);
        assert_eq!(e["detail"]["command-id"], id.as_str());
        assert_eq!(e["detail"]["instance-id"], host.as_str());
        assert_eq!(e["detail"]["document-name"], GEN);
        assert_eq!(
            e["resources"][0],
            format!("arn:aws:ec2:us-east-1:111122223333:instance/{host}").as_str()
        );
        assert!(ts.is_match(e["detail"]["requested-date-time"].as_str().unwrap()));
    }
    for e in &cmd_events {
        assert_event_shape(e, &cmd_sample);
        assert_eq!(e["detail"]["parameters"]["hostId"][0], host.as_str());
    }

    let calls = h.calls();
    assert_eq!(calls["SSM.SendCommand"], 1);
    assert_eq!(calls["SSM.GetCommandInvocation"], 2);
    assert_eq!(calls["SSM.ListCommandInvocations"], 1);
    assert_eq!(h.invocation(&id, &host).unwrap().status, "Success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_without_openssl_fails_with_the_scripts_error() {
    let h = fixture_ssm(EventBus::new(), Capture::new()).await;
    let host = ssm::managed_instance_id(0xb2);
    h.register_host(
        &host,
        HostSpec {
            online: true,
            has_openssl: false,
        },
    );
    let c = ssm_client(&h);
    let out = c
        .send_command()
        .document_name(GEN)
        .instance_ids(&host)
        .parameters("hostId", vec![host.clone()])
        .parameters("rotationId", vec!["r".into()])
        .send()
        .await
        .unwrap();
    h.wait_idle().await;
    let inv = visible_invocation(&c, &command_id(&out), &host).await;
    assert_eq!(inv.status(), Some(&CommandInvocationStatus::Failed));
    assert_eq!(inv.status_details(), Some("Failed"));
    assert_eq!(inv.response_code(), 3);
    assert_eq!(
        inv.standard_error_content(),
        Some("ERROR: openssl not found on this host\n")
    );
    let events = h.bus().drain();
    assert_eq!(events.last().unwrap()["detail"]["status"], "Failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_cut_and_timeouts_end_runs() {
    let h = fixture_ssm(EventBus::new(), Capture::new()).await;
    let host = "i-0123456789abcdef0";
    h.register_host(host, HostSpec::default());
    let c = ssm_client(&h);
    let p = |k: &str, v: &str| (k.to_string(), vec![v.to_string()]);
    let run = |params: Vec<(String, Vec<String>)>| {
        let mut b = c.send_command().document_name(NOISY).instance_ids(host);
        for (k, v) in params {
            b = b.parameters(k, v);
        }
        b.send()
    };
    let noisy = run(vec![p("chars", "30000"), p("exitCode", "7")])
        .await
        .unwrap();
    let slow = run(vec![p("sleepSeconds", "30"), p("executionTimeout", "1")])
        .await
        .unwrap();
    h.wait_idle().await;

    let inv = visible_invocation(&c, &command_id(&noisy), host).await;
    assert_eq!(inv.status(), Some(&CommandInvocationStatus::Failed));
    assert_eq!(inv.response_code(), 7);
    assert_eq!(inv.standard_output_content().unwrap().len(), 24_000);
    assert_eq!(inv.standard_error_content().unwrap().len(), 8_000);
    let list = c
        .list_command_invocations()
        .command_id(command_id(&noisy))
        .details(true)
        .send()
        .await
        .unwrap();
    let output = list.command_invocations()[0].command_plugins()[0]
        .output()
        .unwrap();
    assert_eq!(output.len(), 2_500);

    let started = std::time::Instant::now();
    let inv = visible_invocation(&c, &command_id(&slow), host).await;
    assert_eq!(inv.status(), Some(&CommandInvocationStatus::TimedOut));
    assert_eq!(inv.status_details(), Some("ExecutionTimedOut"));
    assert!(started.elapsed() < Duration::from_secs(20));
}
