//! The table's shape, as the CloudFormation template defines it: partition key `hostID`
//! (string), on-demand, and one sparse KEYS_ONLY index from a pending certificate ARN to its
//! host (only items with a rotation in ISSUING or DEPLOYING carry the attribute).

/// The table's shape.
pub struct TableSchema;

impl TableSchema {
    /// The GSI from a pending certificate ARN to its host (KEYS_ONLY).
    pub const CERT_ARN_INDEX: &str = "pendingCertArn-index";
}
