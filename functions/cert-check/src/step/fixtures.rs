//! Records, config and errors the step tests build directly (no store, no AWS).

use rotation::{AwsError, Config};
use state::ports::{StoreError, TransitionConflict};
use state::record::{Attempts, DeployedCert, HostOverrides, RotationState};
use state::{HostId, HostRecord, RotationId};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// The instant the tests plan at.
pub const NOW: OffsetDateTime = datetime!(2026-11-10 12:00 UTC);

/// The stack's config with its defaults (in-flight timeout 60 minutes, five attempts).
pub fn config() -> Config {
    let env = [
        ("TABLE_NAME", "hosts"),
        (
            "ALERT_TOPIC_ARN",
            "arn:aws:sns:us-east-1:111122223333:alerts",
        ),
        (
            "CA_ARN",
            "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/x",
        ),
        ("GENERATE_CSR_DOCUMENT", "gen"),
        ("DEPLOY_CERT_DOCUMENT", "dep"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Config::from_map(&env).unwrap()
}

/// Managed-node ID number `n`.
pub fn host(n: u32) -> HostId {
    HostId::parse(&format!("mi-{n:017x}")).unwrap()
}

/// Host `n` with a deployed 7-day certificate valid from `not_before`.
pub fn deployed(n: u32, not_before: OffsetDateTime) -> HostRecord {
    HostRecord {
        host: host(n),
        overrides: HostOverrides::default(),
        version: Some(3),
        state: RotationState::Deployed,
        state_since: Some(not_before),
        current: Some(DeployedCert {
            serial: Some(format!("0{n}:ab")),
            not_before: Some(not_before),
            not_after: not_before + Duration::days(7),
            renew_at: None,
            cert_arn: None,
        }),
        attempts: Attempts::default(),
    }
}

/// Host `n` as enrolled: no version, no certificate.
pub fn enrolled(n: u32) -> HostRecord {
    HostRecord {
        host: host(n),
        overrides: HostOverrides::default(),
        version: None,
        state: RotationState::Idle,
        state_since: None,
        current: None,
        attempts: Attempts::default(),
    }
}

/// Host `n` with a GenerateCsr sent at `since`.
pub fn csr_requested(n: u32, since: OffsetDateTime) -> HostRecord {
    HostRecord {
        state: RotationState::CsrRequested {
            rotation: RotationId("r-1".into()),
            command_id: Some("c-1".into()),
        },
        state_since: Some(since),
        ..deployed(n, NOW - Duration::days(5))
    }
}

/// Host `n` after `failed` failed attempts, retryable from `next`.
pub fn failed(n: u32, failed: u32, next: OffsetDateTime) -> HostRecord {
    HostRecord {
        state: RotationState::Failed {
            rotation: Some(RotationId("r-1".into())),
            stage: state::FailureStage::RequestCsr,
            reason: "host is not online".into(),
        },
        attempts: Attempts {
            failed,
            next_attempt_at: Some(next),
            ..Attempts::default()
        },
        ..deployed(n, NOW - Duration::days(5))
    }
}

/// Host `n` whose certificate was revoked.
pub fn revoked(n: u32) -> HostRecord {
    HostRecord {
        state: RotationState::Revoked {
            serial: format!("0{n}:ab"),
            held: None,
        },
        ..deployed(n, NOW - Duration::days(1))
    }
}

/// A DynamoDB backend error with `code`.
pub fn backend_error(code: &str, retryable: bool) -> StoreError {
    StoreError::Backend {
        operation: "UpdateItem",
        code: Some(code.into()),
        message: "refused".into(),
        retryable,
        source: "the service said no".into(),
    }
}

/// The conflict a lost race gives.
pub fn conflict(n: u32) -> StoreError {
    StoreError::Conflict(TransitionConflict {
        host: host(n),
        transition: "start",
    })
}

/// An SSM SendCommand error with `code`.
pub fn aws_error(code: &str, retryable: bool) -> AwsError {
    AwsError {
        service: "SSM",
        operation: "SendCommand",
        code: Some(code.into()),
        message: "no".into(),
        retryable,
        source: None,
    }
}
