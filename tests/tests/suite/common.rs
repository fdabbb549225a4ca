//! Shared set-up for the suite.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use state::DynamoStore;
use tests::moto::MotoServer;

/// A moto server with one fresh state table created from the template.
pub struct TableFixture {
    pub _moto: MotoServer,
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl TableFixture {
    pub async fn new() -> TableFixture {
        let moto = MotoServer::start().expect("moto server");
        let client = tests::aws::dynamodb(&moto.url());
        let table = "cert-rotation-state".to_owned();
        tests::table::create_state_table(&client, &table)
            .await
            .expect("create table from template");
        TableFixture {
            _moto: moto,
            client,
            table,
        }
    }

    pub fn store(&self, segments: u32) -> DynamoStore {
        DynamoStore::new(self.client.clone(), &self.table, segments)
    }

    /// Writes raw items with BatchWriteItem (25 per call), as a bulk enrolment would.
    pub async fn put_raw(&self, items: Vec<HashMap<String, AttributeValue>>) {
        for chunk in items.chunks(25) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|i| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(i.clone()))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
                .collect();
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .expect("batch write");
                pending = out
                    .unprocessed_items()
                    .and_then(|m| m.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }
}

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn host_id(i: u64) -> String {
    format!("mi-{i:017x}")
}

pub fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}
