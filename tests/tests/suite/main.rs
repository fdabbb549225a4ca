//! End-to-end tests on the local stack, grouped by area in one binary.
//!
//! Everything here talks to real servers over HTTP: the moto server for DynamoDB (and later SNS
//! and S3) and the project's wire-protocol emulators. Nothing is an in-memory fake.

mod common;
mod crl;
mod crl_races;
mod demo;
mod issue_queue;
mod least_privilege;
mod reconcile;
mod revocation;
mod rotation;
mod state_store;
