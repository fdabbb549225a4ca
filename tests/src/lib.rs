//! The local stack the end-to-end tests, the demo and the benchmarks run on.
//!
//! Real parts wherever one runs here (the moto server for DynamoDB, SNS and S3; real `bash` and
//! `openssl` running the template's own document scripts), and wire-protocol emulators for the
//! services nothing third-party implements faithfully (Run Command, Private CA, Roles Anywhere).
//! The production adapters reach all of them unchanged through `AWS_ENDPOINT_URL_*`.

pub mod aws;
pub mod emulators;
pub mod faults;
pub mod inbox;
pub mod kit;
pub mod moto;
pub mod pair;
pub mod queue;
pub mod recorder;
pub mod sim;
pub mod stack;
pub mod table;
