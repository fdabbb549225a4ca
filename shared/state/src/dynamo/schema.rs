//! The table's shape, as the CloudFormation template defines it: partition key `hostID`
//! (string), on-demand, and two sparse indexes: a KEYS_ONLY one from a pending certificate ARN
//! to its host (only items with a rotation in ISSUING or DEPLOYING carry the attribute), and an
//! ALL-projected one of the hosts in flight or failed (`unsettled`, set and removed by the
//! rules), which the reconcile pass queries instead of scanning the fleet.

/// The table's shape.
pub struct TableSchema;

impl TableSchema {
    /// The GSI from a pending certificate ARN to its host (KEYS_ONLY).
    pub const CERT_ARN_INDEX: &str = "pendingCertArn-index";
    /// The GSI of the hosts in flight or failed (hash key `unsettled`, ALL projected).
    pub const UNSETTLED_INDEX: &str = "unsettled-index";
}
