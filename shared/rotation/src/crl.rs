//! Where CRLs come from (the Private CA's S3 bucket) and where they go (the Roles Anywhere trust
//! anchor).
//!
//! Roles Anywhere keeps at most two CRLs per trust anchor and that limit cannot be raised: the
//! original sample imported every CRL and failed at the third. [`TrustAnchorCrls::replace`]
//! updates this stack's enabled CRL on the trust anchor in place and imports only when there is
//! none; a CRL an operator imported (another name) or disabled is never overwritten.
//!
//! Private CA rewrites the same key for every CRL, so an event names the object's version and
//! [`CrlSource::fetch`] reads that version: two events delivered late never read the same bytes.

use std::future::Future;

use crate::error::AwsError;

/// The largest `crlData` Roles Anywhere accepts (`ImportCrl`, `UpdateCrl`).
pub const MAX_ANCHOR_CRL_BYTES: usize = 300_000;

/// Reading a CRL object.
pub trait CrlSource: Send + Sync {
    /// The object's bytes at `version` (the latest when `None`: an unversioned bucket),
    /// refusing anything over `pki::MAX_CRL_BYTES`.
    fn fetch(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
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
    /// Makes `der` the trust anchor's CRL named `name`: update the enabled CRL of that name
    /// (`known` first, the ID the ledger recorded, else the most recently updated), import an
    /// enabled one only if there is none. Other CRLs (another name, or disabled) are left alone.
    fn replace(
        &self,
        name: &str,
        der: &[u8],
        known: Option<&str>,
    ) -> impl Future<Output = Result<Replaced, AwsError>> + Send;
}
