//! `CrlSource` and `TrustAnchorCrls`: CRL objects in a bucket, and a trust anchor's CRLs.
//!
//! Why the anchor enforces two CRLs: Roles Anywhere keeps at most two CRLs per trust anchor and
//! refuses a third import. The original sample imported every CRL and broke at the third;
//! `replace` must update the existing CRL in place instead. [`MemoryTrustAnchor::import`] is
//! the raw `ImportCrl` (with the limit), so a test can fill the anchor first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use pki::MAX_CRL_BYTES;
use rotation::crl::{CrlSource, Replaced, TrustAnchorCrls};
use rotation::error::AwsError;
use time::OffsetDateTime;

use crate::kit::clock::ManualClock;

/// CRLs Roles Anywhere keeps per trust anchor.
pub const MAX_CRLS_PER_TRUST_ANCHOR: usize = 2;

/// The in-memory bucket of CRL objects. Clones share the same objects.
#[derive(Debug, Clone, Default)]
pub struct MemoryCrlSource {
    inner: Arc<Mutex<SourceInner>>,
}

/// Every version of one object, oldest first: (version ID, bytes).
type Versions = Vec<(String, Vec<u8>)>;

#[derive(Debug, Default)]
struct SourceInner {
    objects: BTreeMap<(String, String), Versions>,
    fetches: u64,
}

impl MemoryCrlSource {
    /// No objects.
    pub fn new() -> Self {
        MemoryCrlSource::default()
    }

    /// Puts a new version of an object (a versioned bucket: earlier versions stay readable);
    /// returns its version ID.
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> String {
        let mut inner = self.lock();
        let versions = inner
            .objects
            .entry((bucket.to_owned(), key.to_owned()))
            .or_default();
        let id = format!("v{}", versions.len() + 1);
        versions.push((id.clone(), bytes));
        id
    }

    /// `fetch` calls so far.
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    fn lock(&self) -> MutexGuard<'_, SourceInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CrlSource for MemoryCrlSource {
    /// The object's bytes at `version` (the latest if `None`); `NoSuchKey` if absent (and
    /// `NoSuchVersion` for an unknown version); refused over [`MAX_CRL_BYTES`] as S3Crls does.
    async fn fetch(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Vec<u8>, AwsError> {
        let mut inner = self.lock();
        inner.fetches += 1;
        let versions = inner.objects.get(&(bucket.to_owned(), key.to_owned()));
        let found = match (versions, version) {
            (None, _) => None,
            (Some(vs), None) => vs.last().map(|(_, b)| b),
            (Some(vs), Some(v)) => match vs.iter().find(|(id, _)| id == v) {
                Some((_, b)) => Some(b),
                None => {
                    return Err(AwsError {
                        service: "S3",
                        operation: "GetObject",
                        code: Some("NoSuchVersion".into()),
                        message: "The specified version does not exist.".into(),
                        retryable: false,
                        source: None,
                    })
                }
            },
        };
        match found {
            None => Err(AwsError {
                service: "S3",
                operation: "GetObject",
                code: Some("NoSuchKey".into()),
                message: "The specified key does not exist.".into(),
                retryable: false,
                source: None,
            }),
            Some(v) if v.len() > MAX_CRL_BYTES => Err(AwsError::malformed(
                "S3",
                "GetObject",
                "object larger than 4 MiB: not a CRL we accept",
            )),
            Some(v) => Ok(v.clone()),
        }
    }
}

/// One CRL of the trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorCrl {
    /// Its ID.
    pub crl_id: String,
    /// Its name.
    pub name: String,
    /// The CRL, DER.
    pub der: Vec<u8>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// When it was last imported or updated.
    pub updated_at: OffsetDateTime,
}

/// How often each operation was called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnchorCalls {
    /// `ImportCrl` calls (including refused ones).
    pub imports: u64,
    /// `UpdateCrl` calls.
    pub updates: u64,
}

/// One Roles Anywhere trust anchor's CRLs. Clones share the same anchor.
#[derive(Debug, Clone)]
pub struct MemoryTrustAnchor {
    inner: Arc<Mutex<AnchorInner>>,
    clock: ManualClock,
}

#[derive(Debug, Default)]
struct AnchorInner {
    crls: Vec<AnchorCrl>,
    next_id: u64,
    calls: AnchorCalls,
    hold: Option<ReplaceHold>,
}

/// A `replace` held mid-way (after the claim, before the anchor changes): a test makes a slow
/// `UpdateCrl` with it, and lets another event overtake it.
#[derive(Debug, Clone, Default)]
pub struct ReplaceHold {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl ReplaceHold {
    /// Waits until the held `replace` has started.
    pub async fn entered(&self) {
        self.entered.notified().await;
    }

    /// Lets the held `replace` go on.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

impl MemoryTrustAnchor {
    /// An anchor without CRLs, timing updates on `clock`.
    pub fn new(clock: ManualClock) -> Self {
        MemoryTrustAnchor {
            inner: Arc::default(),
            clock,
        }
    }

    /// Holds the next `replace` until [`ReplaceHold::release`].
    pub fn hold_next_replace(&self) -> ReplaceHold {
        let hold = ReplaceHold::default();
        self.lock().hold = Some(hold.clone());
        hold
    }

    /// `DisableCrl`.
    pub fn disable(&self, crl_id: &str) {
        if let Some(c) = self.lock().crls.iter_mut().find(|c| c.crl_id == crl_id) {
            c.enabled = false;
        }
    }

    /// `ImportCrl`: adds an enabled CRL, refused (`ValidationException`) when the anchor
    /// already has [`MAX_CRLS_PER_TRUST_ANCHOR`].
    pub fn import(&self, name: &str, der: &[u8]) -> Result<String, AwsError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.calls.imports += 1;
        let existing = inner.crls.len();
        if existing >= MAX_CRLS_PER_TRUST_ANCHOR {
            return Err(AwsError {
                service: "RolesAnywhere",
                operation: "ImportCrl",
                code: Some("ValidationException".into()),
                message: format!(
                    "Cannot import certificate revocation list (CRL): trust anchor already has \
                     {existing} CRLs, the maximum allowed ({MAX_CRLS_PER_TRUST_ANCHOR})"
                ),
                retryable: false,
                source: None,
            });
        }
        inner.next_id += 1;
        let crl_id = format!("00000000-0000-4000-9000-{:012x}", inner.next_id);
        inner.crls.push(AnchorCrl {
            crl_id: crl_id.clone(),
            name: name.to_owned(),
            der: der.to_vec(),
            enabled: true,
            updated_at: now,
        });
        Ok(crl_id)
    }

    /// `UpdateCrl`: replaces the name and data of CRL `crl_id`.
    pub fn update(&self, crl_id: &str, name: &str, der: &[u8]) -> Result<(), AwsError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.calls.updates += 1;
        let Some(crl) = inner.crls.iter_mut().find(|c| c.crl_id == crl_id) else {
            return Err(AwsError {
                service: "RolesAnywhere",
                operation: "UpdateCrl",
                code: Some("ResourceNotFoundException".into()),
                message: format!("CRL {crl_id} not found"),
                retryable: false,
                source: None,
            });
        };
        crl.name = name.to_owned();
        crl.der = der.to_vec();
        crl.updated_at = now;
        Ok(())
    }

    /// The anchor's CRLs, in import order.
    pub fn crls(&self) -> Vec<AnchorCrl> {
        self.lock().crls.clone()
    }

    /// How often each operation was called so far.
    pub fn calls(&self) -> AnchorCalls {
        self.lock().calls
    }

    fn lock(&self) -> MutexGuard<'_, AnchorInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TrustAnchorCrls for MemoryTrustAnchor {
    /// As the Roles Anywhere adapter: update the enabled CRL named `name` (`known` first, then
    /// the most recently updated, by whole second, then by ID), import only if there is none.
    async fn replace(
        &self,
        name: &str,
        der: &[u8],
        known: Option<&str>,
    ) -> Result<Replaced, AwsError> {
        let hold = self.lock().hold.take();
        if let Some(hold) = hold {
            hold.entered.notify_one();
            hold.release.notified().await;
        }
        let latest = {
            let inner = self.lock();
            inner
                .crls
                .iter()
                .filter(|c| c.enabled && c.name == name)
                .map(|c| {
                    (
                        Some(c.crl_id.as_str()) == known,
                        c.updated_at.unix_timestamp(),
                        c.crl_id.clone(),
                    )
                })
                .max()
        };
        match latest {
            Some((_, _, crl_id)) => {
                self.update(&crl_id, name, der)?;
                Ok(Replaced::Updated { crl_id })
            }
            None => self
                .import(name, der)
                .map(|crl_id| Replaced::Imported { crl_id }),
        }
    }
}
