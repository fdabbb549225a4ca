//! Per-host rotation state, the heart of the service.
//!
//! One DynamoDB item per host (key `hostID`) holds what an admin enrolled (only `hostID`, plus
//! optional per-host paths and key algorithm), the host's current certificate, and where its
//! rotation stands. This crate owns that record and everything that decides on it:
//!
//! - [`host`]: validation of everything read from the table. The table is written by people and
//!   by the original sample; nothing from it reaches a host's shell unchecked.
//! - [`record`]: the domain record and the rotation state machine
//!   (`IDLE → CSR_REQUESTED → ISSUING → DEPLOYING → DEPLOYED`, any step `→ FAILED`, `REVOKED`).
//! - [`plan`]: pure planning: which hosts are due, which rotations are stuck, retry backoff.
//! - [`ports`]: small traits per capability, so each function depends only on what it uses.
//! - [`dynamo`]: the DynamoDB repository; every transition is a conditional write, so two
//!   schedulers or a duplicated event can never start two rotations or deploy twice.

pub mod dynamo;
pub mod host;
pub mod plan;
pub mod ports;
pub mod record;

pub use dynamo::{DynamoStore, TableSchema};
pub use host::{HostId, HostPath, InvalidRow};
pub use plan::{Plan, PlanItem, PlanPolicy, RenewalPolicy};
pub use ports::{StoreError, TransitionConflict};
pub use record::{DeployedCert, FailureStage, HostRecord, RotationId, RotationState};
