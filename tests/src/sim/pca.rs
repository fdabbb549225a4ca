//! Private CA: the kit's CA behind IssueCertificate 25/s, GetCertificate 75/s and
//! RevokeCertificate 20/s token buckets answering `ThrottlingException`, per-call latency, the
//! issuance delay (`RequestInProgressException`, which the port reads as pending, until ready)
//! and an outage window.
//!
//! It also checks two invariants where they are decided: no certificate for a CSR that names
//! another host than the one its rotation's command went to, and at most one new certificate per
//! rotation that the idempotency token did not deduplicate.

use rotation::ca::{CertificateAuthority, Fetched};
use rotation::error::AwsError;
use time::Duration;

use crate::kit::MemoryCa;
use crate::sim::env::{Effect, Env};

/// Which quota a call draws on.
#[derive(Debug, Clone, Copy)]
enum Quota {
    Issue,
    Get,
    Revoke,
    None,
}

/// Private CA with its quotas. Clones share it.
#[derive(Debug, Clone)]
pub struct SimCa {
    /// The kit's CA.
    pub inner: MemoryCa,
    env: Env,
}

impl SimCa {
    /// `inner` with `env`'s quotas and issuance delay.
    pub fn new(inner: MemoryCa, env: Env) -> Self {
        let delay = env.lock().params.pca_issue_delay_s;
        inner.set_issue_delay(Duration::seconds_f64(delay));
        SimCa { inner, env }
    }

    /// The quota, the SDK's attempts and the outage: `Ok(Some)` to go on, `Ok(None)` if killed.
    fn admit(&self, op: &'static str, quota: Quota) -> Result<Option<()>, AwsError> {
        let (latency, attempts, outage) = {
            let s = self.env.lock();
            let p = &s.params;
            (
                p.pca_latency_ms,
                p.sdk_attempts.max(1),
                (p.outage_start_hours, p.outage_hours),
            )
        };
        for attempt in 0..attempts {
            let Ok(at) = self.env.call("ACMPCA", op, latency, false) else {
                return Ok(None);
            };
            if self.env.in_window(at, outage.0, outage.1) {
                if attempt + 1 < attempts {
                    self.env
                        .backoff(self.env.draw() * f64::from(1u32 << attempt.min(5)));
                    continue;
                }
                return Err(pca_error(
                    op,
                    "InternalFailure",
                    "Private CA is unavailable (simulated outage)",
                ));
            }
            let admitted = {
                let mut s = self.env.lock();
                match quota {
                    Quota::Issue => s.pca_issue.take(at, 1.0),
                    Quota::Get => s.pca_get.take(at, 1.0),
                    Quota::Revoke => s.pca_revoke.take(at, 1.0),
                    Quota::None => true,
                }
            };
            if admitted {
                return Ok(Some(()));
            }
            self.env.throttled("ACMPCA", op);
            if attempt + 1 < attempts {
                self.env
                    .backoff(self.env.draw() * f64::from(1u32 << attempt.min(5)));
            }
        }
        self.env.throttled_after_retries("ACMPCA", op);
        Err(pca_error(op, "ThrottlingException", "Rate exceeded"))
    }

    /// The CN of the CSR, if it parses.
    fn csr_name(csr_pem: &str) -> Option<String> {
        use x509_parser::prelude::FromDer;
        let (_, pem) = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes()).ok()?;
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
                .ok()?;
        let cn = csr
            .certification_request_info
            .subject
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_owned();
        Some(cn)
    }
}

impl CertificateAuthority for SimCa {
    async fn issue(
        &self,
        csr_pem: &str,
        validity_days: i64,
        idempotency_token: &str,
    ) -> Result<String, AwsError> {
        if self.admit("IssueCertificate", Quota::Issue)?.is_none() {
            return std::future::pending().await;
        }
        let before = self.inner.calls().issued;
        let arn = self
            .inner
            .issue(csr_pem, validity_days, idempotency_token)
            .await?;
        if self.inner.calls().issued == before {
            self.env.lock().token_replays += 1;
            return Ok(arn);
        }
        // Issued at the call's virtual time (the kit's clock stands at the invocation's start;
        // an invocation that issues many certificates spreads them over its run).
        let delay = time::Duration::seconds_f64(self.env.lock().params.pca_issue_delay_s);
        let ready_at = self.env.now() + delay;
        let mut s = self.env.lock();
        let n = s
            .issued_per_token
            .entry(idempotency_token.to_owned())
            .or_default();
        *n += 1;
        let n = *n;
        let expected = s.rotation_hosts.get(idempotency_token).cloned();
        if n > 1 {
            s.violations.push(format!(
                "one IssueCertificate per rotation: rotation {idempotency_token} of {expected:?} got {n} certificates"
            ));
        }
        drop(s);
        let named = SimCa::csr_name(csr_pem);
        if expected.as_ref().map(|h| h.as_str()) != named.as_deref() {
            self.env.violation(format!(
                "CSR names its host: certificate {arn} issued for CN {named:?}, rotation {idempotency_token} of {expected:?}"
            ));
        }
        self.env.effect(Effect::Issued {
            arn: arn.clone(),
            ready_at,
        });
        Ok(arn)
    }

    async fn fetch(&self, cert_arn: &str) -> Result<Fetched, AwsError> {
        if self.admit("GetCertificate", Quota::Get)?.is_none() {
            return std::future::pending().await;
        }
        self.inner.fetch(cert_arn).await
    }

    async fn ca_certificate(&self) -> Result<String, AwsError> {
        if self
            .admit("GetCertificateAuthorityCertificate", Quota::None)?
            .is_none()
        {
            return std::future::pending().await;
        }
        self.inner.ca_certificate().await
    }

    async fn revoke(&self, serial: &str, reason: &str) -> Result<(), AwsError> {
        if self.admit("RevokeCertificate", Quota::Revoke)?.is_none() {
            return std::future::pending().await;
        }
        self.inner.revoke(serial, reason).await
    }
}

fn pca_error(operation: &'static str, code: &str, message: &str) -> AwsError {
    AwsError {
        service: "ACMPCA",
        operation,
        code: Some(code.to_owned()),
        message: message.to_owned(),
        retryable: true,
        source: None,
    }
}
