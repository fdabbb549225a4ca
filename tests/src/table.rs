//! Creates a state table exactly as `cloudformation/template.yaml` defines it: same key schema,
//! attribute definitions and global secondary indexes, read from the template itself so the tests
//! cannot drift from what users deploy.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, PutRequest, ScalarAttributeType, WriteRequest,
};
use serde_yaml::Value;

use crate::moto::workspace_root;

/// The template's path.
pub fn template_path() -> std::path::PathBuf {
    workspace_root().join("cloudformation/template.yaml")
}

/// The template parsed (CloudFormation tags such as `!Ref` come through as tagged values).
pub fn template() -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(template_path())?;
    Ok(serde_yaml::from_str(&text)?)
}

/// The `Properties` of the one `AWS::DynamoDB::Table` resource.
pub fn table_properties(template: &Value) -> anyhow::Result<Value> {
    let resources = template
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| anyhow::anyhow!("template has no Resources"))?;
    let tables: Vec<&Value> = resources
        .values()
        .filter(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table"))
        .collect();
    anyhow::ensure!(
        tables.len() == 1,
        "expected one DynamoDB table in the template, found {}",
        tables.len()
    );
    tables[0]
        .get("Properties")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("table has no Properties"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("table property {key} missing or not a plain string"))
}

fn key_schema(v: &Value) -> anyhow::Result<Vec<KeySchemaElement>> {
    v.get("KeySchema")
        .and_then(Value::as_sequence)
        .ok_or_else(|| anyhow::anyhow!("KeySchema missing"))?
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(str_of(k, "AttributeName")?)
                .key_type(KeyType::from(str_of(k, "KeyType")?))
                .build()?)
        })
        .collect()
}

/// Creates `name` with the template's definition and waits until it is usable.
pub async fn create_state_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> anyhow::Result<()> {
    let props = table_properties(&template()?)?;
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&props)?));
    for a in props
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .ok_or_else(|| anyhow::anyhow!("AttributeDefinitions missing"))?
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(str_of(a, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(str_of(a, "AttributeType")?))
                .build()?,
        );
    }
    for g in props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let projection = g
            .get("Projection")
            .ok_or_else(|| anyhow::anyhow!("GSI Projection missing"))?;
        let mut p = Projection::builder()
            .projection_type(ProjectionType::from(str_of(projection, "ProjectionType")?));
        for attr in projection
            .get("NonKeyAttributes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            p = p.non_key_attributes(attr);
        }
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(str_of(g, "IndexName")?)
                .set_key_schema(Some(key_schema(g)?))
                .projection(p.build())
                .build()?,
        );
    }
    req.send().await?;
    Ok(())
}

/// A raw table item.
pub type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An item from name/value pairs.
pub fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Writes raw items with BatchWriteItem (25 per call, unprocessed ones retried), as a bulk
/// enrolment by an admin would.
pub async fn put_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: impl IntoIterator<Item = Item>,
) -> anyhow::Result<()> {
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let mut pending = items
            .by_ref()
            .take(25)
            .map(|i| {
                Ok(WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(i)).build()?)
                    .build())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        while !pending.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await?;
            pending = out
                .unprocessed_items()
                .and_then(|m| m.get(table))
                .cloned()
                .unwrap_or_default();
        }
    }
    Ok(())
}
