//! What the step tests share: the config, the sample events, records as values, a CA and
//! certificates made in-process with rcgen, and the errors the ports answer with.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rotation::error::{AwsError, FailureKind, FunctionError};
use rotation::events::{CommandInvocationDetail, Envelope, IssuanceDetail};
use rotation::Config;
use serde_json::Value;
use sha2::{Digest, Sha256};
use state::ports::{StoreError, TransitionConflict};
use state::record::{Attempts, DeployedCert, HostOverrides, RotationState};
use state::{HostId, HostPath, HostRecord, RotationId};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::{Failing, Stop};

const ISSUED: &str =
    include_str!("../../tests/fixtures/events/pca-certificate-issuance-success.json");
const NOT_ISSUED: &str =
    include_str!("../../tests/fixtures/events/pca-certificate-issuance-failure.json");
const INVOCATION: &str =
    include_str!("../../tests/fixtures/events/ssm-command-invocation-status-change.json");

/// The CA of the sample events.
pub const CA_ARN: &str = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11223344-1234-1122-2233-112233445566";
/// The certificate of the sample issuance events.
pub const CERT_ARN: &str = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11223344-1234-1122-2233-112233445566/certificate/e8cbd2bedb122329f97706bcfec990f8";
/// The host of the sample Run Command event.
pub const HOST: &str = "mi-0a1b2c3d4e5f60718";
/// The command of the sample Run Command event.
pub const COMMAND: &str = "9b3c2d1e-0f4a-4b5c-8d6e-7f8091a2b3c4";
/// The rotation of the records.
pub const ROTATION: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
/// When the steps run: an hour after the certificates' NotBefore.
pub const NOW: OffsetDateTime = datetime!(2026-11-21 10:15:31 UTC);

/// The stack's config, with the sample events' CA and document names.
pub fn config() -> Config {
    Config::from_lookup(|k| {
        let v = match k {
            "TABLE_NAME" => "certrotation-hosts",
            "ALERT_TOPIC_ARN" => "arn:aws:sns:us-east-1:111122223333:certrotation-alerts",
            "CA_ARN" => CA_ARN,
            "GENERATE_CSR_DOCUMENT" => "certrotation-GenerateCsr",
            "DEPLOY_CERT_DOCUMENT" => "certrotation-DeployCert",
            "RELOAD_HOOK" => "/usr/local/sbin/reload-app",
            _ => return None,
        };
        Some(v.to_owned())
    })
    .unwrap()
}

fn edited<D: serde::de::DeserializeOwned>(
    text: &str,
    edit: impl FnOnce(&mut Value),
) -> Envelope<D> {
    let mut v: Value = serde_json::from_str(text).unwrap();
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

/// The sample successful issuance event, with `edit` applied to its JSON.
pub fn issued_with(edit: impl FnOnce(&mut Value)) -> Envelope<IssuanceDetail> {
    edited(ISSUED, edit)
}

/// The sample successful issuance event.
pub fn issued() -> Envelope<IssuanceDetail> {
    issued_with(|_| {})
}

/// The sample failed issuance event.
pub fn not_issued() -> Envelope<IssuanceDetail> {
    edited(NOT_ISSUED, |_| {})
}

/// The sample Run Command event made a DeployCert one finished with `status`.
pub fn deploy_status_event(status: &str) -> Envelope<CommandInvocationDetail> {
    deploy_event_with(|v| v["detail"]["status"] = status.into())
}

/// The sample Run Command event made a DeployCert one, with `edit` applied to its JSON.
pub fn deploy_event_with(edit: impl FnOnce(&mut Value)) -> Envelope<CommandInvocationDetail> {
    edited(INVOCATION, |v| {
        v["detail"]["document-name"] = "certrotation-DeployCert".into();
        edit(v)
    })
}

/// The sample host.
pub fn host() -> HostId {
    HostId::parse(HOST).unwrap()
}

/// The sample host's record in `state`, with its own certificate directory.
pub fn record(state: RotationState) -> HostRecord {
    HostRecord {
        host: host(),
        overrides: HostOverrides {
            cert_path: Some(HostPath::parse("certPath", "/srv/pki/certs").unwrap()),
            ..HostOverrides::default()
        },
        version: Some(7),
        state,
        state_since: Some(NOW),
        current: None,
        attempts: Attempts::default(),
    }
}

/// The rotation.
pub fn rotation() -> RotationId {
    RotationId(ROTATION.into())
}

/// The record of a rotation waiting for [`CERT_ARN`] with a key of `fingerprint`.
pub fn issuing(fingerprint: &str) -> HostRecord {
    record(RotationState::Issuing {
        rotation: rotation(),
        cert_arn: CERT_ARN.into(),
        key_fingerprint: fingerprint.into(),
    })
}

/// The facts of a certificate valid for seven days from an hour before [`NOW`].
pub fn pending_cert() -> DeployedCert {
    DeployedCert {
        serial: Some("01:02:03".into()),
        not_before: Some(NOW - Duration::hours(1)),
        not_after: NOW + Duration::days(7) - Duration::hours(1),
        renew_at: None,
        cert_arn: None,
    }
}

/// The record of a rotation deploying [`CERT_ARN`] with DeployCert `command_id`.
pub fn deploying(command_id: Option<&str>) -> HostRecord {
    record(RotationState::Deploying {
        rotation: rotation(),
        cert_arn: CERT_ARN.into(),
        command_id: command_id.map(str::to_owned),
        pending: pending_cert(),
    })
}

/// A CA, a host key and what Private CA would return for it.
pub struct Pki {
    /// The CA certificate, PEM (the chain Private CA returns).
    pub chain: String,
    /// An end-entity certificate for [`HOST`] with the host key, signed by the CA.
    pub certificate: String,
    /// SHA-256 of the host key's SubjectPublicKeyInfo (as recorded from the CSR).
    pub fingerprint: String,
    ca_params: CertificateParams,
    ca_key: KeyPair,
    host_key: KeyPair,
}

impl Pki {
    /// A new CA and host key, and the host's certificate.
    pub fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name = name("Example Issuing CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = NOW - Duration::days(30);
        ca_params.not_after = NOW + Duration::days(365);
        let chain = ca_params.self_signed(&ca_key).unwrap().pem();
        let host_key = KeyPair::generate().unwrap();
        let fingerprint = hex::encode(Sha256::digest(host_key.subject_public_key_info()));
        let mut pki = Pki {
            chain,
            certificate: String::new(),
            fingerprint,
            ca_params,
            ca_key,
            host_key,
        };
        pki.certificate = pki.issue(HOST, None);
        pki
    }

    /// A client-auth certificate for `cn`, valid seven days from an hour before [`NOW`], for
    /// `key` (default: the host key), signed by the CA.
    pub fn issue(&self, cn: &str, key: Option<&KeyPair>) -> String {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = name(cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = NOW - Duration::hours(1);
        params.not_after = NOW + Duration::days(7) - Duration::hours(1);
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        params
            .signed_by(key.unwrap_or(&self.host_key), &issuer)
            .unwrap()
            .pem()
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// An AWS error, retryable or not.
pub fn aws(retryable: bool) -> AwsError {
    AwsError {
        service: "ACMPCA",
        operation: "GetCertificate",
        code: Some(code(retryable).into()),
        message: "no".into(),
        retryable,
        source: None,
    }
}

/// A store backend error, retryable or not.
pub fn backend(retryable: bool) -> StoreError {
    StoreError::Backend {
        operation: "UpdateItem",
        code: Some(code(retryable).into()),
        message: "no".into(),
        retryable,
        source: "cause".into(),
    }
}

/// A service error code a retry may cure, or one it will not.
fn code(retryable: bool) -> &'static str {
    match retryable {
        true => "ThrottlingException",
        false => "AccessDeniedException",
    }
}

/// A lost race.
pub fn conflict() -> StoreError {
    StoreError::Conflict(TransitionConflict {
        host: host(),
        transition: "begin deployment",
    })
}

/// The reason of an ignore, or a panic.
pub fn ignored<T: std::fmt::Debug>(r: Result<T, Stop>) -> String {
    match r {
        Err(Stop::Ignore(why)) => why,
        other => panic!("expected ignore, got {other:?}"),
    }
}

/// The kind of an invocation error, or a panic.
pub fn error_kind<T: std::fmt::Debug>(r: Result<T, Stop>) -> FailureKind {
    match r {
        Err(Stop::Error(e)) => FunctionError::from(e).kind,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The failure to record, or a panic.
pub fn failing<T: std::fmt::Debug>(r: Result<T, Stop>) -> Failing {
    match r {
        Err(Stop::Fail(f)) => *f,
        other => panic!("expected a failure, got {other:?}"),
    }
}
