//! One set of fakes sharing one clock, wired as the handlers' `Deps` and `CrlDeps`.
//!
//! Why: every test of a handler needs the same six fakes on the same virtual time, and a
//! config that matches them (the CA's ARN, fast EC P-256 host keys); building them in one place
//! keeps tests short and the simulator's wiring identical to theirs.

use std::collections::HashMap;

use rotation::{Config, CrlDeps, Deps};

use crate::kit::{
    ca::CA_ARN, ManualClock, MemoryAlerts, MemoryCa, MemoryCrlSource, MemoryHosts, MemoryStore,
    MemoryTrustAnchor,
};

/// The trust anchor the kit's config names.
pub const TRUST_ANCHOR_ARN: &str =
    "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/22222222-3333-4444-8555-666666666666";
/// The CRL bucket the kit's config names.
pub const CRL_BUCKET: &str = "kit-crls";

/// Every fake, on one clock. Fields are handles: clone one into a handler, keep the field to
/// inspect.
#[derive(Debug, Clone)]
pub struct Kit {
    /// The virtual time.
    pub clock: ManualClock,
    /// The state table.
    pub store: MemoryStore,
    /// The hosts.
    pub hosts: MemoryHosts,
    /// The CA.
    pub ca: MemoryCa,
    /// The alert topic.
    pub alerts: MemoryAlerts,
    /// The CRL bucket.
    pub crl_source: MemoryCrlSource,
    /// The trust anchor.
    pub anchor: MemoryTrustAnchor,
}

impl Default for Kit {
    fn default() -> Self {
        Kit::new(ManualClock::default())
    }
}

impl Kit {
    /// Fresh fakes on `clock`.
    pub fn new(clock: ManualClock) -> Self {
        Kit {
            store: MemoryStore::with_clock(clock.clone()),
            hosts: MemoryHosts::new(),
            ca: MemoryCa::new(clock.clone()),
            alerts: MemoryAlerts::new(),
            crl_source: MemoryCrlSource::new(),
            anchor: MemoryTrustAnchor::new(clock.clone()),
            clock,
        }
    }

    /// A config naming the kit's CA, anchor and bucket, with EC P-256 host keys (fast to make)
    /// and `overrides` (environment variable, value) applied on top.
    ///
    /// # Panics
    /// If an override makes the config invalid.
    pub fn config(overrides: &[(&str, &str)]) -> Config {
        let mut env: HashMap<String, String> = [
            ("TABLE_NAME", "cert-rotation"),
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:us-east-1:111122223333:cert-rotation-alerts",
            ),
            ("CA_ARN", CA_ARN),
            ("SIGNING_ALGORITHM", "SHA256WITHECDSA"),
            ("HOST_KEY_ALGORITHM", "EC_prime256v1"),
            ("GENERATE_CSR_DOCUMENT", "cert-rotation-GenerateCsr"),
            ("DEPLOY_CERT_DOCUMENT", "cert-rotation-DeployCert"),
            ("TRUST_ANCHOR_ARN", TRUST_ANCHOR_ARN),
            ("CRL_BUCKET", CRL_BUCKET),
        ]
        .into_iter()
        .chain(overrides.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.retain(|_, v| !v.is_empty());
        Config::from_map(&env).expect("the kit's config is valid")
    }

    /// A rotation function's dependencies over clones of the fakes.
    pub fn deps(&self, config: Config) -> Deps<MemoryStore, MemoryHosts, MemoryCa, MemoryAlerts> {
        Deps {
            store: self.store.clone(),
            hosts: self.hosts.clone(),
            ca: self.ca.clone(),
            alerts: self.alerts.clone(),
            config,
        }
    }

    /// CRLProcessor's dependencies over clones of the fakes.
    pub fn crl_deps(
        &self,
        config: Config,
    ) -> CrlDeps<MemoryStore, MemoryCrlSource, MemoryTrustAnchor, MemoryCa, MemoryAlerts> {
        CrlDeps {
            store: self.store.clone(),
            source: self.crl_source.clone(),
            anchor: self.anchor.clone(),
            ca: self.ca.clone(),
            alerts: self.alerts.clone(),
            config,
        }
    }
}
