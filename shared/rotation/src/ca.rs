//! AWS Private CA: issue a certificate for an accepted CSR, fetch it, revoke it.
//!
//! Issuance carries an idempotency token derived from the rotation, so a retried CertIssue
//! (Lambda retries, duplicated events) gets the same certificate back instead of a second one.

use std::future::Future;

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

    /// Revokes a certificate by serial (hex, `:`-separated as in the table). A certificate
    /// already revoked counts as revoked (`Ok`): revocations are retried and repeated.
    fn revoke(
        &self,
        serial: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
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
