//! Shared set-up for the suite.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use state::DynamoStore;
use tests::moto::MotoServer;
pub use tests::table::{item, n, s};

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

    /// Writes raw items with BatchWriteItem, as a bulk enrolment would.
    pub async fn put_raw(&self, items: Vec<HashMap<String, AttributeValue>>) {
        tests::table::put_items(&self.client, &self.table, items)
            .await
            .expect("batch write");
    }
}

pub fn host_id(i: u64) -> String {
    format!("mi-{i:017x}")
}
