//! The CRL ledger item (`crl#<CA id>`): read strongly consistent, written with one conditional
//! `UpdateItem` per [`LedgerWrite`] (its condition on the version or on the claim's token,
//! rendered here as the in-memory store evaluates it with [`LedgerWrite::holds`]).

use aws_sdk_dynamodb::types::AttributeValue;

use super::error::{backend, is_condition_failure};
use super::{mapping, DynamoStore};
use crate::crl_ledger::{attr, entry_from_item, ledger_key, LedgerEntry, LedgerWrite};
use crate::ports::{CrlLedger, StoreError};

impl CrlLedger for DynamoStore {
    async fn crl_ledger(&self, ca_id: &str) -> Result<LedgerEntry, StoreError> {
        let (k, v) = Self::key(&ledger_key(ca_id));
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(k, v)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        let item = out.item().map(mapping::item);
        Ok(entry_from_item(item.as_ref()))
    }

    async fn write_crl_ledger(&self, ca_id: &str, write: &LedgerWrite) -> Result<bool, StoreError> {
        let (k, v) = Self::key(&ledger_key(ca_id));
        let mut req = self.client.update_item().table_name(&self.table).key(k, v);
        let mut sets = Vec::new();
        for (i, (a, value)) in write.set.iter().enumerate() {
            sets.push(format!("#s{i} = :s{i}"));
            req = req
                .expression_attribute_names(format!("#s{i}"), *a)
                .expression_attribute_values(format!(":s{i}"), mapping::value(value));
        }
        let mut update = format!("SET {}", sets.join(", "));
        if !write.remove.is_empty() {
            let mut removes = Vec::new();
            for (i, a) in write.remove.iter().enumerate() {
                removes.push(format!("#r{i}"));
                req = req.expression_attribute_names(format!("#r{i}"), *a);
            }
            update.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let condition = match &write.holder {
            Some(token) => {
                req = req
                    .expression_attribute_names("#tok", attr::CLAIM_TOKEN)
                    .expression_attribute_values(":tok", AttributeValue::S(token.clone()));
                "#tok = :tok".to_owned()
            }
            None if write.expected_version == 0 => {
                req = req.expression_attribute_names("#ver", attr::LEDGER_VERSION);
                "attribute_not_exists(#ver)".to_owned()
            }
            None => {
                req = req
                    .expression_attribute_names("#ver", attr::LEDGER_VERSION)
                    .expression_attribute_values(
                        ":ver",
                        AttributeValue::N(write.expected_version.to_string()),
                    );
                "#ver = :ver".to_owned()
            }
        };
        match req
            .update_expression(update)
            .condition_expression(condition)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(backend("UpdateItem", e)),
        }
    }
}
