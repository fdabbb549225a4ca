//! The hosts in flight or failed (and those at rest that a run found due but unreachable), read
//! from the sparse `unsettled` index: every page of one
//! Query on its only partition.
//!
//! Why ALL projection and not KEYS_ONLY plus a GetItem per host: the index holds only the hosts
//! the reconcile pass looks at (in flight or failed, a small share of the fleet), so the
//! duplicated storage and the index writes are bounded by those hosts, and one Query returns
//! the records with no second round trip. The index is eventually consistent; that is harmless
//! here: the pass acts only on rotations older than the in-flight timeout, every action it takes
//! is a conditional write, and the handlers it calls reload the record with a consistent read.

use aws_sdk_dynamodb::types::AttributeValue;

use super::error::backend;
use super::mapping::{self, SdkItem};
use super::schema::TableSchema;
use super::DynamoStore;
use crate::item::{attr, is_reconciled, is_service_item, record_from_item, UNSETTLED_VALUE};
use crate::ports::{FleetScan, RejectedRow, StoreError};

impl DynamoStore {
    pub(super) async fn query_unsettled(&self) -> Result<FleetScan, StoreError> {
        let mut out = FleetScan::default();
        let mut start: Option<SdkItem> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(TableSchema::UNSETTLED_INDEX)
                .key_condition_expression("#u = :u")
                .expression_attribute_names("#u", attr::UNSETTLED)
                .expression_attribute_values(":u", AttributeValue::S(UNSETTLED_VALUE.to_owned()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("Query", e))?;
            out.pages += 1;
            out.items_read += page.scanned_count().max(0) as u64;
            for sdk in page.items() {
                let item = mapping::item(sdk);
                if is_service_item(&item) {
                    continue;
                }
                match record_from_item(&item) {
                    // The index may lag a write that settled the host; the planner would skip
                    // it anyway, and leaving it out keeps the pass's figures honest.
                    // In flight, failed, or at rest and waiting to be online (due, unreachable).
                    Ok(r) if is_reconciled(r.state.kind()) => out.records.push(r),
                    Ok(_) => {}
                    Err((key, reason)) => {
                        tracing::warn!(host = %key, %reason, "refused table row");
                        out.rejected.push(RejectedRow { key, reason })
                    }
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        out.records.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(out)
    }
}
