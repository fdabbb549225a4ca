//! Listing the fleet: every page, in parallel segments, with a server-side filter.
//!
//! A row is left out only when it provably needs nothing at `now`: a deployed host of ours whose
//! renewal point lies ahead, or a hand-made / original-sample row (no renewal point, no state,
//! no NotBefore) whose `YYYY-MM-DD HH:MM:SS` expiry lies past the [`DueWindow`]. Rows with
//! attributes of the wrong type or shape are kept, so the planner refuses them with a reason
//! instead of the filter hiding them. Comparisons sit behind `attribute_type` so no row compares
//! a number with a string (moto answers HTTP 500 to that). Cheap tests first: most rows are
//! deployed and not due.

use aws_sdk_dynamodb::types::AttributeValue;

use super::error::backend;
use super::mapping::{self, SdkItem};
use super::DynamoStore;
use crate::host::HostId;
use crate::item::{attr, is_service_item, legacy_time, record_from_item};
use crate::plan::DueWindow;
use crate::ports::{FleetReader, FleetScan, RejectedRow, StoreError};
use crate::record::{HostRecord, StateKind};

const DUE_FILTER: &str = "(attribute_type(#ra, :typeN) AND #ra <= :now) \
     OR attribute_not_exists(#exp) \
     OR (attribute_exists(#st) AND #st <> :deployed) \
     OR (NOT attribute_type(#ra, :typeN) AND (attribute_exists(#st) \
         OR attribute_exists(#nb) OR NOT attribute_type(#exp, :typeS) \
         OR (attribute_type(#exp, :typeS) AND (#exp <= :dueBy \
             OR contains(#exp, :rfc3339) OR NOT begins_with(#exp, :century)))))";

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

impl DynamoStore {
    async fn scan(&self, due_at: Option<DueWindow>) -> Result<FleetScan, StoreError> {
        let mut tasks = tokio::task::JoinSet::new();
        for segment in 0..self.segments {
            let this = self.clone();
            tasks.spawn(async move { this.scan_segment(segment, due_at).await });
        }
        let mut out = FleetScan::default();
        while let Some(joined) = tasks.join_next().await {
            let part = joined.map_err(|e| StoreError::Backend {
                operation: "Scan",
                code: None,
                message: format!("scan task failed: {e}"),
                retryable: true,
                source: Box::new(e),
            })??;
            out.records.extend(part.records);
            out.rejected.extend(part.rejected);
            out.items_read += part.items_read;
            out.pages += part.pages;
        }
        out.records.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(out)
    }

    async fn scan_segment(
        &self,
        segment: u32,
        due_at: Option<DueWindow>,
    ) -> Result<FleetScan, StoreError> {
        let mut out = FleetScan::default();
        let mut start: Option<SdkItem> = None;
        loop {
            let mut req = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take());
            if self.segments > 1 {
                req = req
                    .segment(segment as i32)
                    .total_segments(self.segments as i32);
            }
            if let Some(window) = due_at {
                req = req
                    .filter_expression(DUE_FILTER)
                    .expression_attribute_names("#exp", attr::EXPIRY)
                    .expression_attribute_names("#st", attr::STATE)
                    .expression_attribute_names("#ra", attr::RENEW_AT)
                    .expression_attribute_names("#nb", attr::NOT_BEFORE)
                    .expression_attribute_values(":deployed", s(StateKind::Deployed.as_str()))
                    .expression_attribute_values(
                        ":now",
                        AttributeValue::N(window.now.unix_timestamp().to_string()),
                    )
                    .expression_attribute_values(":typeN", s("N"))
                    .expression_attribute_values(":typeS", s("S"))
                    .expression_attribute_values(
                        ":dueBy",
                        s(&legacy_time(window.unscheduled_due_by)),
                    )
                    // RFC 3339 times (`T` between date and time) do not compare as text with
                    // the legacy format, nor does anything not starting like a year 2000+ date.
                    .expression_attribute_values(":rfc3339", s("T"))
                    .expression_attribute_values(":century", s("2"));
            }
            let page = req.send().await.map_err(|e| backend("Scan", e))?;
            out.pages += 1;
            out.items_read += page.scanned_count().max(0) as u64;
            for sdk in page.items() {
                let item = mapping::item(sdk);
                if is_service_item(&item) {
                    continue;
                }
                match record_from_item(&item) {
                    Ok(r) => out.records.push(r),
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
        Ok(out)
    }
}

impl FleetReader for DynamoStore {
    async fn candidates(&self, window: DueWindow) -> Result<FleetScan, StoreError> {
        self.scan(Some(window)).await
    }

    async fn all_hosts(&self) -> Result<FleetScan, StoreError> {
        self.scan(None).await
    }

    async fn in_flight(&self) -> Result<FleetScan, StoreError> {
        self.query_unsettled().await
    }

    async fn host(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.get(host).await
    }
}
