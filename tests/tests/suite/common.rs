//! Shared set-up for the suite.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use state::DynamoStore;
use tests::faults::delivery::EventKind;
use tests::moto::MotoServer;
use tests::stack::LocalStack;
pub use tests::table::{item, n, s};
use time::OffsetDateTime;

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

/// CertCheck's reconcile pass (`{"reconcile": true}`) at `now`.
pub async fn reconcile_pass(stack: &LocalStack, now: OffsetDateTime) -> cert_check::Summary {
    let request = cert_check::step::request::parse_request(json!({"reconcile": true})).unwrap();
    cert_check::run(stack.check.clone(), request, now)
        .await
        .expect("the reconcile pass runs")
}

/// Delivers events as the stack's rules do until the system is quiet, except those of `lost`'s
/// kind, which are dropped (as an EventBridge delivery that never happened); returns how many
/// were lost.
pub async fn settle_losing(stack: &mut LocalStack, lost: EventKind) -> usize {
    let mut dropped = 0;
    for _round in 0..50 {
        stack.ssm.wait_idle().await;
        let events = stack.bus.drain();
        if events.is_empty() {
            return dropped;
        }
        for event in events {
            if EventKind::of(&event, &stack.config) == lost {
                dropped += 1;
                continue;
            }
            match stack.deliver(&event).await {
                Ok(Some(outcome)) => stack.outcomes.push(outcome),
                Ok(None) => {}
                Err(e) => {
                    // Retried as Lambda would (not ready yet).
                    tracing::info!(error = %e, "redelivering");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    stack.bus.push(event);
                }
            }
        }
    }
    panic!("events never settled")
}
