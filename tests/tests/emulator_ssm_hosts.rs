//! The Run Command emulator's hosts, driven through the real AWS SDK client: offline hosts whose
//! invocations wait, then time out or run when the host comes back, and
//! DescribeInstanceInformation (ping status, filters, paging).
//!
//! Why: our code decides what to do with a host from these answers (skip an offline host, treat
//! a delivery timeout as "try later"), so the emulator must give them as the service does.

use aws_sdk_ssm::error::ProvideErrorMetadata as _;
use aws_sdk_ssm::types::{
    CommandInvocationStatus, InstanceInformationFilter, InstanceInformationFilterKey,
    InstanceInformationStringFilter, PingStatus, ResourceType,
};
use tests::emulators::ssm::{self, HostSpec};
use tests::emulators::{Capture, EventBus};

mod emulator_common;

use emulator_common::{command_id, fixture_ssm, ssm_client, visible_invocation, GEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_hosts_wait_then_time_out_or_run_when_back() {
    let bus = EventBus::new();
    let h = fixture_ssm(bus.clone(), Capture::new()).await;
    let host = ssm::managed_instance_id(0xc3);
    h.register_host(
        &host,
        HostSpec {
            online: false,
            has_openssl: true,
        },
    );
    let c = ssm_client(&h);
    let send = || {
        c.send_command()
            .document_name(GEN)
            .instance_ids(&host)
            .parameters("hostId", vec![host.clone()])
            .parameters("rotationId", vec!["r".into()])
            .send()
    };
    let first = command_id(&send().await.unwrap());
    h.wait_idle().await; // Offline invocations do not count.
    let inv = visible_invocation(&c, &first, &host).await;
    assert_eq!(inv.status(), Some(&CommandInvocationStatus::Pending));
    assert_eq!(inv.response_code(), -1);
    assert_eq!(inv.execution_start_date_time(), Some(""));
    assert!(bus.is_empty());

    assert_eq!(h.expire_offline(), 1);
    let inv = c
        .get_command_invocation()
        .command_id(&first)
        .instance_id(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(inv.status(), Some(&CommandInvocationStatus::TimedOut));
    assert_eq!(inv.status_details(), Some("DeliveryTimedOut"));
    let events = bus.drain();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["detail"]["status"], "TimedOut");
    assert_eq!(
        events[1]["detail-type"],
        "EC2 Command Status-change Notification"
    );
    assert_eq!(events[1]["detail"]["status"], "TimedOut");

    // A second command waits, then runs when the agent reconnects.
    let second = command_id(&send().await.unwrap());
    h.set_online(&host, true);
    h.wait_idle().await;
    assert_eq!(h.invocation(&second, &host).unwrap().status, "Success");
    assert_eq!(h.expire_offline(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_instance_information_reports_ping_status() {
    let h = fixture_ssm(EventBus::new(), Capture::new()).await;
    let online: Vec<String> = (1..=4).map(ssm::managed_instance_id).collect();
    let offline: Vec<String> = (5..=6).map(ssm::managed_instance_id).collect();
    let ec2 = "i-0fedcba9876543210".to_string();
    for id in &online {
        h.register_host(id, HostSpec::default());
    }
    for id in &offline {
        h.register_host(
            id,
            HostSpec {
                online: false,
                has_openssl: true,
            },
        );
    }
    h.register_host(&ec2, HostSpec::default());
    let c = ssm_client(&h);

    let out = c
        .describe_instance_information()
        .filters(
            InstanceInformationStringFilter::builder()
                .key("InstanceIds")
                .values(&online[0])
                .values(&offline[0])
                .values(&ec2)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let list = out.instance_information_list();
    assert_eq!(list.len(), 3);
    let by_id = |id: &str| list.iter().find(|i| i.instance_id() == Some(id)).unwrap();
    assert_eq!(by_id(&online[0]).ping_status(), Some(&PingStatus::Online));
    assert_eq!(
        by_id(&offline[0]).ping_status(),
        Some(&PingStatus::ConnectionLost)
    );
    assert_eq!(
        by_id(&online[0]).resource_type(),
        Some(&ResourceType::ManagedInstance)
    );
    assert_eq!(
        by_id(&ec2).resource_type(),
        Some(&ResourceType::Ec2Instance)
    );
    assert_eq!(
        by_id(&ec2).platform_type(),
        Some(&aws_sdk_ssm::types::PlatformType::Linux)
    );
    assert!(by_id(&offline[0]).last_ping_date_time().is_some());

    let out = c
        .describe_instance_information()
        .instance_information_filter_list(
            InstanceInformationFilter::builder()
                .key(InstanceInformationFilterKey::PingStatus)
                .value_set("ConnectionLost")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = out
        .instance_information_list()
        .iter()
        .filter_map(|i| i.instance_id())
        .collect();
    assert_eq!(ids, [offline[0].as_str(), offline[1].as_str()]);

    // Pagination: 7 hosts, pages of 5.
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let out = c
            .describe_instance_information()
            .max_results(5)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            out.instance_information_list()
                .iter()
                .map(|i| i.instance_id().unwrap().to_string()),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), 7);
    let e = c
        .describe_instance_information()
        .max_results(4)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
}
