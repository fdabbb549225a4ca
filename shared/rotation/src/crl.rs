//! Where CRLs come from (the Private CA's S3 bucket) and where they go (the Roles Anywhere trust
//! anchor).
//!
//! Roles Anywhere keeps at most two CRLs per trust anchor and that limit cannot be raised: the
//! original sample imported every CRL and failed at the third. [`TrustAnchorCrls::replace`]
//! updates the trust anchor's existing CRL in place and imports only when it has none.

use std::future::Future;

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
