//! The DynamoDB store: the only place in the service where DynamoDB's SDK types appear.
//!
//! - [`schema`]: the table's shape as the template defines it.
//! - [`mapping`]: SDK attribute values to and from the domain's [`crate::item::Attr`].
//! - [`scan`]: listing the fleet, every page, in parallel segments, with a filter that leaves
//!   out only rows that provably need nothing.
//! - [`transitions`]: a rule of [`crate::rules`] rendered as one conditional `UpdateItem`, and
//!   enrolment as a conditional `PutItem`.
//! - [`unsettled`]: the hosts in flight or failed, from their sparse index (the reconcile pass).
//! - [`ledger`]: the CRL ledger item.
//! - [`error`]: SDK errors to [`crate::StoreError`], with the service's code and message kept.

mod error;
mod ledger;
pub mod mapping;
mod scan;
pub mod schema;
mod transitions;
mod unsettled;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

pub use crate::item::{attr, legacy_time, parse_time, SERVICE_KEY_PREFIX};
pub use schema::TableSchema;

use crate::host::HostId;
use crate::ports::StoreError;
use crate::record::HostRecord;

/// The DynamoDB-backed state store.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    segments: u32,
}

impl DynamoStore {
    /// A store over `table`, scanning with `segments` parallel segments (1 to 64).
    pub fn new(client: Client, table: impl Into<String>, segments: u32) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            segments: segments.clamp(1, 64),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(host: &str) -> (String, AttributeValue) {
        (attr::HOST_ID.to_owned(), AttributeValue::S(host.to_owned()))
    }

    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        let (k, v) = Self::key(host.as_str());
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(k, v)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| error::backend("GetItem", e))?;
        match out.item() {
            None => Ok(None),
            Some(item) => mapping::record(item).map(Some),
        }
    }
}
