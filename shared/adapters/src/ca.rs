//! AWS Private CA: issue a certificate for an accepted CSR, fetch it, revoke it.
//!
//! Issuance carries an idempotency token derived from the rotation, so a retried CertIssue
//! (Lambda retries, duplicated events) gets the same certificate back instead of a second one.

use std::future::Future;

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{RevocationReason, SigningAlgorithm, Validity, ValidityPeriodType};

use crate::error::AwsError;

/// The answer to a certificate fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Still being issued (`RequestInProgressException`).
    Pending,
    /// Ready.
    Ready {
        /// The certificate, PEM.
        certificate: String,
        /// The chain up to the root, PEM.
        chain: String,
    },
}

/// What the functions need from the certificate authority.
pub trait CertificateAuthority: Send + Sync {
    /// Requests a certificate for `csr_pem`, valid `validity_days`; returns its ARN.
    fn issue(
        &self,
        csr_pem: &str,
        validity_days: i64,
        idempotency_token: &str,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// Fetches an issued certificate and its chain.
    fn fetch(&self, cert_arn: &str) -> impl Future<Output = Result<Fetched, AwsError>> + Send;

    /// The CA's own certificate, PEM.
    fn ca_certificate(&self) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// Revokes a certificate by serial (hex, `:`-separated as in the table).
    fn revoke(
        &self,
        serial: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The Private-CA-backed [`CertificateAuthority`].
#[derive(Debug, Clone)]
pub struct PrivateCa {
    client: aws_sdk_acmpca::Client,
    ca_arn: String,
    signing_algorithm: String,
    template_arn: String,
}

/// The revocation reasons Private CA accepts.
pub const REVOCATION_REASONS: &[&str] = &[
    "UNSPECIFIED",
    "KEY_COMPROMISE",
    "CERTIFICATE_AUTHORITY_COMPROMISE",
    "AFFILIATION_CHANGED",
    "SUPERSEDED",
    "CESSATION_OF_OPERATION",
    "PRIVILEGE_WITHDRAWN",
    "A_A_COMPROMISE",
];

impl PrivateCa {
    /// A CA client for `ca_arn`.
    pub fn new(
        client: aws_sdk_acmpca::Client,
        ca_arn: impl Into<String>,
        signing_algorithm: impl Into<String>,
        template_arn: impl Into<String>,
    ) -> Self {
        PrivateCa {
            client,
            ca_arn: ca_arn.into(),
            signing_algorithm: signing_algorithm.into(),
            template_arn: template_arn.into(),
        }
    }
}

impl CertificateAuthority for PrivateCa {
    async fn issue(
        &self,
        csr_pem: &str,
        validity_days: i64,
        idempotency_token: &str,
    ) -> Result<String, AwsError> {
        let validity = Validity::builder()
            .value(validity_days)
            .r#type(ValidityPeriodType::Days)
            .build()
            .map_err(|e| AwsError::malformed("ACMPCA", "IssueCertificate", e.to_string()))?;
        let out = self
            .client
            .issue_certificate()
            .certificate_authority_arn(&self.ca_arn)
            .csr(Blob::new(csr_pem.as_bytes()))
            .signing_algorithm(SigningAlgorithm::from(self.signing_algorithm.as_str()))
            .template_arn(&self.template_arn)
            .validity(validity)
            .idempotency_token(idempotency_token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ACMPCA", "IssueCertificate", e))?;
        out.certificate_arn()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::malformed("ACMPCA", "IssueCertificate", "no certificate ARN"))
    }

    async fn fetch(&self, cert_arn: &str) -> Result<Fetched, AwsError> {
        match self
            .client
            .get_certificate()
            .certificate_authority_arn(&self.ca_arn)
            .certificate_arn(cert_arn)
            .send()
            .await
        {
            Ok(out) => Ok(Fetched::Ready {
                certificate: out.certificate().unwrap_or_default().to_owned(),
                chain: out.certificate_chain().unwrap_or_default().to_owned(),
            }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_request_in_progress_exception()) =>
            {
                Ok(Fetched::Pending)
            }
            Err(e) => Err(AwsError::from_sdk("ACMPCA", "GetCertificate", e)),
        }
    }

    async fn ca_certificate(&self) -> Result<String, AwsError> {
        let out = self
            .client
            .get_certificate_authority_certificate()
            .certificate_authority_arn(&self.ca_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ACMPCA", "GetCertificateAuthorityCertificate", e))?;
        out.certificate().map(str::to_owned).ok_or_else(|| {
            AwsError::malformed(
                "ACMPCA",
                "GetCertificateAuthorityCertificate",
                "no certificate",
            )
        })
    }

    async fn revoke(&self, serial: &str, reason: &str) -> Result<(), AwsError> {
        self.client
            .revoke_certificate()
            .certificate_authority_arn(&self.ca_arn)
            .certificate_serial(serial)
            .revocation_reason(RevocationReason::from(reason))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ACMPCA", "RevokeCertificate", e))?;
        Ok(())
    }
}
