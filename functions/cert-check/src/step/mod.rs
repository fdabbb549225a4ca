//! CertCheck's decisions, as pure functions: decide in pure functions, act in the shell.
//!
//! Why: every branch of a run (a request refused, a host failed as stuck, skipped, started or
//! failed as offline, a send error retried or recorded, a revocation refused or carried out, the
//! summary and the metrics) is a decision over data the run already has: the request, the
//! records, the config, the time, and the results of the I/O done so far. Written as functions
//! of exactly that, each branch is tested in microseconds with records built in the test, and
//! the shell ([`crate::run`]) is left with loading, calling these functions, carrying out the
//! effects they return through the ports (store, hosts, CA, alerts) and recording the results;
//! the end-to-end suite checks that wiring.
//!
//! - [`request`]: the payload to a validated [`request::Request`] (or a refusal);
//! - [`plan`]: the records to a [`plan::Loaded`] plan, and the plan to [`plan::Actions`]
//!   (stuck rotations to reconcile, hosts to skip, rotations to start, expired-certificate alerts);
//! - [`reconcile`]: a stuck rotation moved on from what its host or the CA says, or failed;
//! - [`start`]: one rotation's start, step by step (claim, reachability, GenerateCsr, record);
//! - [`revoke`]: an operator's revocation, refused or carried out (a rotation in flight is
//!   cancelled, its pending certificate revoked too; the reason decides the hold);
//! - [`release`]: an operator's release of a held host;
//! - [`summary`]: the summary, the metrics, and the invocation's answer;
//! - [`budget`]: until when a run may start work;
//! - [`error`]: why a run stopped, and how Lambda sees it.
//!
//! No function here performs I/O, reads the clock or logs.

pub mod budget;
pub mod error;
pub mod plan;
pub mod reconcile;
pub mod release;
pub mod request;
pub mod revoke;
pub mod start;
pub mod summary;

#[cfg(test)]
pub(crate) mod fixtures;
