//! Private CA as the [`CertificateAuthority`].

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{RevocationReason, SigningAlgorithm, Validity, ValidityPeriodType};
use rotation::ca::{CertificateAuthority, Fetched};
use rotation::error::AwsError;

use crate::error::aws_error;

/// The Private-CA-backed [`CertificateAuthority`].
#[derive(Debug, Clone)]
pub struct PrivateCa {
    client: aws_sdk_acmpca::Client,
    ca_arn: String,
    signing_algorithm: String,
    template_arn: String,
}

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
            .map_err(|e| aws_error("ACMPCA", "IssueCertificate", e))?;
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
            Err(e) => Err(aws_error("ACMPCA", "GetCertificate", e)),
        }
    }

    async fn ca_certificate(&self) -> Result<String, AwsError> {
        let out = self
            .client
            .get_certificate_authority_certificate()
            .certificate_authority_arn(&self.ca_arn)
            .send()
            .await
            .map_err(|e| aws_error("ACMPCA", "GetCertificateAuthorityCertificate", e))?;
        out.certificate().map(str::to_owned).ok_or_else(|| {
            AwsError::malformed(
                "ACMPCA",
                "GetCertificateAuthorityCertificate",
                "no certificate",
            )
        })
    }

    /// A certificate already revoked (`RequestAlreadyProcessedException`) is revoked: a retried
    /// or repeated revocation succeeds, whatever reason the first one gave.
    async fn revoke(&self, serial: &str, reason: &str) -> Result<(), AwsError> {
        match self
            .client
            .revoke_certificate()
            .certificate_authority_arn(&self.ca_arn)
            .certificate_serial(serial)
            .revocation_reason(RevocationReason::from(reason))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_request_already_processed_exception()) =>
            {
                tracing::info!(serial, "already revoked");
                Ok(())
            }
            Err(e) => Err(aws_error("ACMPCA", "RevokeCertificate", e)),
        }
    }
}
