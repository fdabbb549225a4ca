//! Where CRLs come from (the Private CA's S3 bucket) and where they go (the Roles Anywhere trust
//! anchor).
//!
//! Roles Anywhere keeps at most two CRLs per trust anchor and that limit cannot be raised: the
//! original sample imported every CRL and failed at the third. [`TrustAnchorCrls::replace`]
//! updates the trust anchor's existing CRL in place and imports only when it has none.

use std::future::Future;

use aws_sdk_rolesanywhere::primitives::Blob;
use pki::MAX_CRL_BYTES;

use crate::error::AwsError;

/// Reading a CRL object.
pub trait CrlSource: Send + Sync {
    /// The object's bytes, refusing anything over [`MAX_CRL_BYTES`].
    fn fetch(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, AwsError>> + Send;
}

/// What `replace` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// The trust anchor's CRL `crl_id` now holds the new data.
    Updated {
        /// The CRL's ID.
        crl_id: String,
    },
    /// The trust anchor had no CRL; one was imported (enabled).
    Imported {
        /// The new CRL's ID.
        crl_id: String,
    },
}

/// The trust anchor's CRLs.
pub trait TrustAnchorCrls: Send + Sync {
    /// Makes `der` the trust anchor's CRL: update its existing CRL (the most recently updated one
    /// if there are several), import only if it has none.
    fn replace(
        &self,
        name: &str,
        der: &[u8],
    ) -> impl Future<Output = Result<Replaced, AwsError>> + Send;
}

/// The S3-backed [`CrlSource`].
#[derive(Debug, Clone)]
pub struct S3Crls {
    client: aws_sdk_s3::Client,
}

impl S3Crls {
    /// Reads through `client`.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Crls { client }
    }
}

impl CrlSource for S3Crls {
    async fn fetch(&self, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("S3", "GetObject", e))?;
        // Refused before the body is read when S3 gives the size, and again after reading.
        let too_big = || {
            AwsError::malformed(
                "S3",
                "GetObject",
                "object larger than 4 MiB: not a CRL we accept",
            )
        };
        if out.content_length().unwrap_or(0) > MAX_CRL_BYTES as i64 {
            return Err(too_big());
        }
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| AwsError::malformed("S3", "GetObject", format!("reading the body: {e}")))?
            .into_bytes();
        if bytes.len() > MAX_CRL_BYTES {
            return Err(too_big());
        }
        Ok(bytes.to_vec())
    }
}

/// The Roles-Anywhere-backed [`TrustAnchorCrls`].
#[derive(Debug, Clone)]
pub struct RolesAnywhereCrls {
    client: aws_sdk_rolesanywhere::Client,
    trust_anchor_arn: String,
}

impl RolesAnywhereCrls {
    /// CRLs of `trust_anchor_arn`.
    pub fn new(client: aws_sdk_rolesanywhere::Client, trust_anchor_arn: impl Into<String>) -> Self {
        RolesAnywhereCrls {
            client,
            trust_anchor_arn: trust_anchor_arn.into(),
        }
    }
}

impl TrustAnchorCrls for RolesAnywhereCrls {
    async fn replace(&self, name: &str, der: &[u8]) -> Result<Replaced, AwsError> {
        let mut ours = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_crls()
                .page_size(50)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("RolesAnywhere", "ListCrls", e))?;
            for crl in page.crls() {
                if crl.trust_anchor_arn() == Some(self.trust_anchor_arn.as_str()) {
                    if let Some(id) = crl.crl_id() {
                        ours.push((
                            crl.updated_at().map(|t| t.secs()).unwrap_or(0),
                            id.to_owned(),
                        ));
                    }
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        ours.sort();
        if let Some((_, crl_id)) = ours.pop() {
            self.client
                .update_crl()
                .crl_id(&crl_id)
                .name(name)
                .crl_data(Blob::new(der))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("RolesAnywhere", "UpdateCrl", e))?;
            return Ok(Replaced::Updated { crl_id });
        }
        let out = self
            .client
            .import_crl()
            .name(name)
            .crl_data(Blob::new(der))
            .trust_anchor_arn(&self.trust_anchor_arn)
            .enabled(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("RolesAnywhere", "ImportCrl", e))?;
        let crl_id = out
            .crl()
            .and_then(|c| c.crl_id())
            .map(str::to_owned)
            .ok_or_else(|| {
                AwsError::malformed("RolesAnywhere", "ImportCrl", "no CRL ID in the answer")
            })?;
        Ok(Replaced::Imported { crl_id })
    }
}
