//! S3 as the [`CrlSource`] and Roles Anywhere as the [`TrustAnchorCrls`].

use aws_sdk_rolesanywhere::primitives::Blob;
use pki::MAX_CRL_BYTES;
use rotation::crl::{CrlSource, Replaced, TrustAnchorCrls};
use rotation::error::AwsError;

use crate::error::aws_error;

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
    async fn fetch(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(|e| aws_error("S3", "GetObject", e))?;
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

/// The tag every CRL this stack imports carries (value: the CRL's name). The stack's IAM policy
/// allows `UpdateCrl` only on CRLs with this tag, and `ImportCrl` only with it.
pub const OWNER_TAG: &str = "cert-rotation:crl";

impl TrustAnchorCrls for RolesAnywhereCrls {
    async fn replace(
        &self,
        name: &str,
        der: &[u8],
        known: Option<&str>,
    ) -> Result<Replaced, AwsError> {
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
                .map_err(|e| aws_error("RolesAnywhere", "ListCrls", e))?;
            for crl in page.crls() {
                let mine = crl.trust_anchor_arn() == Some(self.trust_anchor_arn.as_str())
                    && crl.name() == Some(name)
                    && crl.enabled() == Some(true);
                if let (true, Some(id)) = (mine, crl.crl_id()) {
                    ours.push((
                        Some(id) == known,
                        crl.updated_at().map(|t| t.secs()).unwrap_or(0),
                        id.to_owned(),
                    ));
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        ours.sort();
        if let Some((_, _, crl_id)) = ours.pop() {
            self.client
                .update_crl()
                .crl_id(&crl_id)
                .name(name)
                .crl_data(Blob::new(der))
                .send()
                .await
                .map_err(|e| aws_error("RolesAnywhere", "UpdateCrl", e))?;
            return Ok(Replaced::Updated { crl_id });
        }
        let tag = aws_sdk_rolesanywhere::types::Tag::builder()
            .key(OWNER_TAG)
            .value(name)
            .build()
            .map_err(|e| AwsError::malformed("RolesAnywhere", "ImportCrl", e.to_string()))?;
        let out = self
            .client
            .import_crl()
            .name(name)
            .crl_data(Blob::new(der))
            .trust_anchor_arn(&self.trust_anchor_arn)
            .enabled(true)
            .tags(tag)
            .send()
            .await
            .map_err(|e| aws_error("RolesAnywhere", "ImportCrl", e))?;
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
