//! Per-host rotation state, the heart of the service.
//!
//! One DynamoDB item per host (key `hostID`) holds what an admin enrolled (only `hostID`, plus
//! optional per-host paths and key algorithm), the host's current certificate, and where its
//! rotation stands. This crate owns that record and everything that decides on it:
//!
//! - [`host`]: validation of everything read from the table. The table is written by people and
//!   by the original sample; nothing from it reaches a host's shell unchecked.
//! - [`record`]: the domain record and the rotation states.
//! - [`item`]: the table item as the domain sees it, and its mapping to records (no SDK types).
//! - [`rules`]: every transition declared once (guard and effect); the DynamoDB store, the
//!   in-memory store of the tests and the pure model all carry out these rules.
//! - [`plan`]: pure planning: which hosts are due, which rotations are stuck, retry backoff.
//! - [`ports`]: the store's ports, one small trait per capability over one write port.
//! - [`crl_ledger`]: the CRL ledger's claim, so the trust anchor's CRL never goes backwards.
//! - [`dynamo`]: the DynamoDB store; the only module that uses DynamoDB's SDK.

pub mod crl_ledger;
pub mod dynamo;
pub mod host;
pub mod item;
pub mod plan;
pub mod ports;
pub mod record;
pub mod rules;

pub use dynamo::{DynamoStore, TableSchema};
pub use host::{HostId, HostPath, InvalidRow};
pub use item::{Attr, Item};
pub use plan::{Plan, PlanItem, PlanPolicy, RenewalPolicy};
pub use ports::{StoreError, TransitionConflict};
pub use record::{DeployedCert, FailureStage, HostRecord, RotationId, RotationState};
pub use rules::{Change, Rule};
