//! The CRL ledger: one item per CA (`crl#<CA id>`) holding the last CRL number imported to the
//! trust anchor, moved forward with optimistic concurrency.

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::error::{backend, is_condition_failure};
use super::DynamoStore;
use crate::item::SERVICE_KEY_PREFIX;
use crate::ports::{CrlLedger, StoreError};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

impl CrlLedger for DynamoStore {
    async fn last_crl_number(&self, ca_id: &str) -> Result<Option<String>, StoreError> {
        let (k, v) = Self::key(&format!("{SERVICE_KEY_PREFIX}{ca_id}"));
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(k, v)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        Ok(out
            .item()
            .and_then(|i| i.get("crlNumber"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    async fn record_crl_number(
        &self,
        ca_id: &str,
        previous: Option<&str>,
        number: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (k, v) = Self::key(&format!("{SERVICE_KEY_PREFIX}{ca_id}"));
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(k, v)
            .update_expression("SET #n = :n, #at = :at")
            .expression_attribute_names("#n", "crlNumber")
            .expression_attribute_names("#at", "importedAt")
            .expression_attribute_values(":n", s(number))
            .expression_attribute_values(
                ":at",
                AttributeValue::N(now.unix_timestamp().to_string()),
            );
        req = match previous {
            Some(p) => req
                .condition_expression("#n = :prev")
                .expression_attribute_values(":prev", s(p)),
            None => req.condition_expression("attribute_not_exists(#n)"),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::Backend {
                operation: "UpdateItem",
                code: Some("ConditionalCheckFailedException".into()),
                message: format!("the CRL ledger of {ca_id} moved concurrently"),
                retryable: true,
                source: format!("the CRL ledger of {ca_id} moved concurrently").into(),
            }),
            Err(e) => Err(backend("UpdateItem", e)),
        }
    }
}
