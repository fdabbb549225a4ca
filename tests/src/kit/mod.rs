//! An in-memory implementation of every port, for tests and the fleet simulator.
//!
//! Why: the handlers are generic over their ports, so the same code that runs against AWS runs
//! against these fakes in microseconds, with no server, in a deterministic order. Each fake
//! keeps the contract of the real service that the handlers rely on (and nothing more):
//!
//! - [`store`]: the state table, carrying out `state::rules` on raw items exactly as the
//!   DynamoDB store's conditional writes do; the scan filter, a lagging pending index, the CRL
//!   ledger.
//! - [`hosts`]: Run Command: reachability, recorded commands, invocations the test answers
//!   (or that answer themselves with a real CSR).
//! - [`ca`]: Private CA: real certificates from rcgen, idempotency tokens for five minutes,
//!   issuance delay, revocations, CRLs.
//! - [`alerts`]: the alert topic.
//! - [`crl`]: the CRL bucket and a trust anchor holding at most two CRLs.
//! - [`clock`]: virtual time shared by all of them.
//! - [`deps`]: all of them on one clock, as the handlers' `Deps` and `CrlDeps`.
//!
//! Every fake is a cheap handle (`Clone` shares the state), so a test hands one clone to the
//! handler and keeps another to inspect. Listings come out in a fixed order (`BTreeMap`s and
//! counters, no random IDs), so two runs with the same inputs give the same outputs.

pub mod alerts;
pub mod ca;
pub mod clock;
pub mod crl;
pub mod deps;
pub mod hosts;
pub mod store;

pub use alerts::MemoryAlerts;
pub use ca::MemoryCa;
pub use clock::ManualClock;
pub use crl::{MemoryCrlSource, MemoryTrustAnchor};
pub use deps::Kit;
pub use hosts::{HostSetup, MemoryHosts};
pub use store::MemoryStore;
