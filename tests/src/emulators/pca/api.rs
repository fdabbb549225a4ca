//! The AWS JSON 1.1 operations of the Private CA emulator (`ACMPrivateCA.*`): IssueCertificate,
//! GetCertificate, RevokeCertificate, GetCertificateAuthorityCertificate and
//! DescribeCertificateAuthority, with the service's checks and error codes.
//!
//! Why apart: this is the wire contract the production adapter is tested against; the CA, the
//! certificate contents and the CRLs it relies on live in the sibling modules.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber, SubjectPublicKeyInfo,
};
use serde_json::{json, Value};
use sha2::Digest as _;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer as _;

use super::ca::{random_serial, trim_pem};
use super::cert::{sans_of, subject_of, validity_time};
use super::crl::crl_configuration;
use super::{
    pca_event, serial_hex, serial_key, CertEntry, IssuedRecord, RevokedRecord, Shared, State,
    UsageMode, CLIENT_AUTH_TEMPLATE, DEFAULT_TEMPLATE, SERVER_AUTH_TEMPLATE, SHORT_LIVED_MAX,
};
use crate::emulators::wire::{input, ApiError, JsonApi};
use crate::emulators::{epoch_seconds, lock, ACCOUNT};

const REVOCATION_REASONS: [&str; 8] = [
    "UNSPECIFIED",
    "KEY_COMPROMISE",
    "CERTIFICATE_AUTHORITY_COMPROMISE",
    "AFFILIATION_CHANGED",
    "SUPERSEDED",
    "CESSATION_OF_OPERATION",
    "PRIVILEGE_WITHDRAWN",
    "A_A_COMPROMISE",
];

const ARN_RE: &str = r"^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:[0-9]{12}:certificate-authority/[0-9a-f-]{36}(/certificate/[0-9a-f]{1,64})?$";

fn check_arn(arn: &str) -> Result<(), ApiError> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    if RE
        .get_or_init(|| regex::Regex::new(ARN_RE).expect("arn regex"))
        .is_match(arn)
    {
        Ok(())
    } else {
        Err(ApiError::new(
            "InvalidArnException",
            format!("The ARN {arn} is not valid."),
        ))
    }
}

pub(super) struct Api(pub(super) Arc<Shared>);

impl JsonApi for Api {
    fn call(&self, op: &str, input: Value) -> Result<Value, ApiError> {
        match op {
            "IssueCertificate" => self.issue_certificate(&input),
            "GetCertificate" => self.get_certificate(&input),
            "GetCertificateAuthorityCertificate" => self.get_ca_certificate(&input),
            "DescribeCertificateAuthority" => self.describe_ca(&input),
            "RevokeCertificate" => self.revoke_certificate(&input),
            _ => Err(ApiError::new(
                "UnknownOperationException",
                format!("the emulator does not implement ACMPrivateCA.{op}"),
            )),
        }
    }
}

impl Api {
    fn ca_arn_matches(st: &State, v: &Value) -> Result<(), ApiError> {
        let arn = input::req_str(v, "CertificateAuthorityArn")?;
        check_arn(arn)?;
        if arn != st.ca.arn {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                format!("Could not find certificate authority {arn}"),
            ));
        }
        Ok(())
    }

    fn issue_certificate(&self, v: &Value) -> Result<Value, ApiError> {
        let csr_b64 = input::req_str(v, "Csr")?;
        let signing_algorithm = input::req_str(v, "SigningAlgorithm")?.to_string();
        let validity = v
            .get("Validity")
            .ok_or_else(|| ApiError::not_null("validity"))?;
        let template_arn = input::opt_str(v, "TemplateArn")
            .unwrap_or(DEFAULT_TEMPLATE)
            .to_string();
        let token = input::opt_str(v, "IdempotencyToken").map(str::to_string);
        if v.get("ApiPassthrough").is_some() {
            return Err(ApiError::new(
                "InvalidArgsException",
                "emulator limit: ApiPassthrough is not implemented",
            ));
        }
        let csr_bytes = base64::engine::general_purpose::STANDARD
            .decode(csr_b64)
            .map_err(|e| {
                ApiError::new("SerializationException", format!("Csr is not base64: {e}"))
            })?;

        let mut st = lock(&self.0.state);
        Self::ca_arn_matches(&st, v)?;
        if st.ca.status != "ACTIVE" {
            return Err(ApiError::new(
                "InvalidStateException",
                format!("The certificate authority is in the {} state", st.ca.status),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let csr_hash: [u8; 32] = sha2::Sha256::digest(&csr_bytes).into();
        let window = self.0.idempotency_window;
        st.idempotency.retain(|_, (_, at)| at.elapsed() < window);
        if let Some(t) = &token {
            if let Some((arn, _)) = st.idempotency.get(&(t.clone(), csr_hash)) {
                return Ok(json!({ "CertificateArn": arn }));
            }
        }

        let malformed = |m: &str| ApiError::new("MalformedCSRException", m.to_string());
        let csr_text = std::str::from_utf8(&csr_bytes)
            .map_err(|_| malformed("The CSR must be PEM encoded"))?;
        let pem_start = csr_text
            .find("-----BEGIN CERTIFICATE REQUEST-----")
            .or_else(|| csr_text.find("-----BEGIN NEW CERTIFICATE REQUEST-----"))
            .ok_or_else(|| malformed("The CSR is not a PEM certificate request"))?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(&csr_bytes[pem_start..])
            .map_err(|_| malformed("The CSR PEM is damaged"))?;
        let der = pem.contents;
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
            .map_err(|_| malformed("The CSR could not be parsed"))?;
        csr.verify_signature()
            .map_err(|_| malformed("The CSR signature does not verify"))?;
        let info = &csr.certification_request_info;
        let sans = sans_of(&csr);
        if info.subject.iter_attributes().next().is_none() && sans.is_empty() {
            return Err(malformed(
                "The CSR has neither a subject nor a subject alternative name",
            ));
        }
        let subject = subject_of(&info.subject).map_err(|e| malformed(&e))?;
        let spki = SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
            .map_err(|_| malformed("The CSR's public key type is not supported"))?;

        let signer = st.ca.key_algorithm.signer(&signing_algorithm)?;

        let (key_usages, ekus) = match template_arn.as_str() {
            CLIENT_AUTH_TEMPLATE => (
                vec![KeyUsagePurpose::DigitalSignature],
                vec![ExtendedKeyUsagePurpose::ClientAuth],
            ),
            SERVER_AUTH_TEMPLATE => (
                vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment],
                vec![ExtendedKeyUsagePurpose::ServerAuth],
            ),
            DEFAULT_TEMPLATE => (
                vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment],
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            ),
            other => {
                return Err(ApiError::new(
                    "InvalidArgsException",
                    format!("emulator limit: template {other} is not implemented (end-entity templates only)"),
                ))
            }
        };

        let not_after = validity_time(validity, now, "validity")?;
        let not_before = match v.get("ValidityNotBefore") {
            Some(nb) => validity_time(nb, now, "validityNotBefore")?,
            None => now - time::Duration::hours(1),
        };
        let invalid = |m: String| ApiError::new("InvalidArgsException", m);
        if not_after <= now {
            return Err(invalid(
                "The certificate validity end date is in the past".into(),
            ));
        }
        if not_after <= not_before {
            return Err(invalid(
                "The validity end is not after the validity start".into(),
            ));
        }
        if st.ca.usage_mode == UsageMode::ShortLivedCertificate && not_after - now > SHORT_LIVED_MAX
        {
            return Err(invalid(
                "Certificates issued by a CA in SHORT_LIVED_CERTIFICATE mode must have a validity of 7 days or less".into(),
            ));
        }
        if not_after > st.ca.not_after {
            return Err(invalid(
                "The certificate validity exceeds the validity of the CA certificate".into(),
            ));
        }

        let serial = random_serial();
        let serial_hex = hex::encode(serial);
        let arn = format!("{}/certificate/{serial_hex}", st.ca.arn);
        if let Some(t) = &token {
            st.idempotency
                .insert((t.clone(), csr_hash), (arn.clone(), Instant::now()));
        }

        if st.fail_next > 0 {
            st.fail_next -= 1;
            st.certs.insert(
                arn.clone(),
                CertEntry {
                    record: None,
                    get_calls: 0,
                },
            );
            st.order.push(arn.clone());
            self.issuance_event(&st.ca.arn, &arn, "failure");
            return Ok(json!({ "CertificateArn": arn }));
        }

        let mut params = CertificateParams::default();
        params.distinguished_name = subject;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = key_usages;
        params.extended_key_usages = ekus;
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let internal = |e: rcgen::Error| ApiError::internal("InternalFailure", e.to_string());
        let key = KeyPair::from_pem_and_sign_algo(&st.ca.key_pem, signer).map_err(internal)?;
        let issuer = Issuer::from_ca_cert_pem(&st.ca.cert_pem, key).map_err(internal)?;
        let cert = params.signed_by(&spki, &issuer).map_err(internal)?;
        let cert_pem = trim_pem(&cert.pem());
        let subject_text = x509_parser::parse_x509_certificate(cert.der())
            .map(|(_, c)| c.subject().to_string())
            .unwrap_or_default();
        let second = |t: OffsetDateTime| t.replace_nanosecond(0).unwrap_or(t);
        let record = IssuedRecord {
            arn: arn.clone(),
            serial: serial_hex,
            subject: subject_text,
            not_before: second(not_before),
            not_after: second(not_after),
            csr_pem: csr_text.to_string(),
            certificate_pem: cert_pem,
            template_arn,
            signing_algorithm,
            idempotency_token: token,
        };
        st.certs.insert(
            arn.clone(),
            CertEntry {
                record: Some(record),
                get_calls: 0,
            },
        );
        st.order.push(arn.clone());
        self.issuance_event(&st.ca.arn, &arn, "success");
        Ok(json!({ "CertificateArn": arn }))
    }

    fn issuance_event(&self, ca_arn: &str, cert_arn: &str, result: &str) {
        self.0.bus.push(pca_event(
            "ACM Private CA Certificate Issuance",
            vec![ca_arn.to_string(), cert_arn.to_string()],
            result,
        ));
    }

    fn get_certificate(&self, v: &Value) -> Result<Value, ApiError> {
        let cert_arn = input::req_str(v, "CertificateArn")?;
        check_arn(cert_arn)?;
        let mut st = lock(&self.0.state);
        Self::ca_arn_matches(&st, v)?;
        let ca_pem = trim_pem(&st.ca.cert_pem);
        let entry = st.certs.get_mut(cert_arn).ok_or_else(|| {
            ApiError::new(
                "ResourceNotFoundException",
                format!("Could not find certificate {cert_arn}"),
            )
        })?;
        entry.get_calls += 1;
        if entry.get_calls <= self.0.in_progress_calls {
            return Err(ApiError::new(
                "RequestInProgressException",
                "The request to issue the certificate is still in progress.",
            ));
        }
        match &entry.record {
            None => Err(ApiError::new(
                "RequestFailedException",
                "The request to issue the certificate failed.",
            )),
            Some(r) => Ok(json!({
                "Certificate": r.certificate_pem,
                "CertificateChain": ca_pem,
            })),
        }
    }

    fn revoke_certificate(&self, v: &Value) -> Result<Value, ApiError> {
        let serial_in = input::req_str(v, "CertificateSerial")?;
        let reason = input::req_str(v, "RevocationReason")?;
        if !REVOCATION_REASONS.contains(&reason) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{reason}' at 'revocationReason' failed to satisfy constraint: Member must satisfy enum value set"
            )));
        }
        let serial = serial_hex(serial_in);
        if serial.is_empty() || !serial.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ApiError::new(
                "InvalidRequestException",
                format!("The certificate serial {serial_in} is not hexadecimal"),
            ));
        }
        let mut st = lock(&self.0.state);
        Self::ca_arn_matches(&st, v)?;
        if st.ca.status != "ACTIVE" {
            return Err(ApiError::new(
                "InvalidStateException",
                format!("The certificate authority is in the {} state", st.ca.status),
            ));
        }
        let record = st
            .order
            .iter()
            .filter_map(|a| st.certs.get(a).and_then(|c| c.record.as_ref()))
            .find(|r| serial_key(&r.serial) == serial_key(&serial))
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    "ResourceNotFoundException",
                    format!(
                        "Could not find a certificate with serial {serial_in} issued by this CA"
                    ),
                )
            })?;
        if st.revoked.iter().any(|r| r.serial == record.serial) {
            return Err(ApiError::new(
                "RequestAlreadyProcessedException",
                "The certificate is already revoked.",
            ));
        }
        st.revoked.push(RevokedRecord {
            arn: record.arn.clone(),
            serial: record.serial.clone(),
            reason: reason.to_string(),
            revoked_at: OffsetDateTime::now_utc(),
        });
        self.0.bus.push(pca_event(
            "ACM Private CA Certificate Revocation",
            vec![st.ca.arn.clone(), record.arn.clone()],
            "success",
        ));
        Ok(json!({}))
    }

    fn get_ca_certificate(&self, v: &Value) -> Result<Value, ApiError> {
        let st = lock(&self.0.state);
        Self::ca_arn_matches(&st, v)?;
        // A root CA: no chain above it, so no CertificateChain member.
        Ok(json!({ "Certificate": trim_pem(&st.ca.cert_pem) }))
    }

    fn describe_ca(&self, v: &Value) -> Result<Value, ApiError> {
        let st = lock(&self.0.state);
        Self::ca_arn_matches(&st, v)?;
        let ca = &st.ca;
        let serial = ca
            .serial
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(":");
        let mut subject = json!({ "CommonName": ca.common_name });
        if let Some(o) = &ca.organization {
            subject["Organization"] = json!(o);
        }
        Ok(json!({
            "CertificateAuthority": {
                "Arn": ca.arn,
                "OwnerAccount": ACCOUNT,
                "CreatedAt": epoch_seconds(ca.created),
                "LastStateChangeAt": epoch_seconds(ca.created),
                "Type": "ROOT",
                "Serial": serial,
                "Status": ca.status,
                "NotBefore": epoch_seconds(ca.not_before),
                "NotAfter": epoch_seconds(ca.not_after),
                "CertificateAuthorityConfiguration": {
                    "KeyAlgorithm": ca.key_algorithm.api_name(),
                    "SigningAlgorithm": ca.key_algorithm.default_signing_algorithm(),
                    "Subject": subject,
                },
                "RevocationConfiguration": {
                    "CrlConfiguration": crl_configuration(self.0.crl.as_ref()),
                    "OcspConfiguration": { "Enabled": false },
                },
                "KeyStorageSecurityStandard": "FIPS_140_2_LEVEL_3_OR_HIGHER",
                "UsageMode": ca.usage_mode.api_name(),
            }
        }))
    }
}
