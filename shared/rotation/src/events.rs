//! The EventBridge events the functions receive, with our own detail structs (the shapes AWS
//! documents; `aws_lambda_events`' SSM types cannot parse the real events).

use serde::{Deserialize, Serialize};

/// `detail-type` of a Run Command invocation status change.
pub const SSM_INVOCATION_STATUS: &str = "EC2 Command Invocation Status-change Notification";
/// `detail-type` of a Private CA issuance.
pub const PCA_ISSUANCE: &str = "ACM Private CA Certificate Issuance";
/// `detail-type` of an S3 object creation.
pub const S3_OBJECT_CREATED: &str = "Object Created";

/// The EventBridge envelope.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Envelope<D> {
    /// Event ID (for logs; EventBridge may deliver the same ID twice).
    #[serde(default)]
    pub id: String,
    /// `detail-type`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// `source`, e.g. `aws.ssm`.
    pub source: String,
    /// Resource ARNs.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The detail.
    pub detail: D,
}

/// Detail of "EC2 Command Invocation Status-change Notification".
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CommandInvocationDetail {
    /// The command.
    #[serde(rename = "command-id")]
    pub command_id: String,
    /// The document.
    #[serde(rename = "document-name")]
    pub document_name: String,
    /// The host.
    #[serde(rename = "instance-id")]
    pub instance_id: String,
    /// `Success`, `Failed`, `TimedOut`, `Cancelled`, …
    pub status: String,
}

impl CommandInvocationDetail {
    /// The host of a finished invocation, or why the event is not one to act on (a status that
    /// is not final, an instance ID that is not a managed node's).
    pub fn finished_host(&self) -> Result<state::HostId, String> {
        if !is_final_status(&self.status) {
            return Err(format!("status {} is not final", self.status));
        }
        state::HostId::parse(&self.instance_id).map_err(|_| {
            format!(
                "instance {} is not a managed-node ID",
                state::host::shown(&self.instance_id)
            )
        })
    }
}

/// Detail of "ACM Private CA Certificate Issuance".
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct IssuanceDetail {
    /// `success` or `failure`.
    pub result: String,
}

/// Detail of S3 "Object Created".
#[derive(Debug, Clone, Deserialize)]
pub struct ObjectCreatedDetail {
    /// The bucket.
    pub bucket: BucketRef,
    /// The object.
    pub object: ObjectRef,
}

/// A bucket reference.
#[derive(Debug, Clone, Deserialize)]
pub struct BucketRef {
    /// Bucket name.
    pub name: String,
}

/// An object reference.
#[derive(Debug, Clone, Deserialize)]
pub struct ObjectRef {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// The version created (`version-id`; present when the bucket is versioned, as the CRL
    /// bucket is): Private CA rewrites one key, so this is what tells two CRLs apart.
    #[serde(default, rename = "version-id")]
    pub version_id: Option<String>,
}

/// Whether a Run Command status is final. The stack's rules forward only final statuses; the
/// handlers apply the same rule for events that arrive some other way.
pub fn is_final_status(status: &str) -> bool {
    !matches!(status, "Pending" | "InProgress" | "Delayed" | "Cancelling")
}

/// An SQS event source mapping's batch: each record's body is one EventBridge event the rule
/// sent to the queue.
#[derive(Debug, Clone, Deserialize)]
pub struct SqsBatch {
    /// The messages.
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

/// One message of an [`SqsBatch`].
#[derive(Debug, Clone, Deserialize)]
pub struct SqsRecord {
    /// The message ID: what a `batchItemFailures` entry names.
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// The body (an EventBridge event, as JSON text).
    pub body: String,
    /// `aws:sqs`.
    #[serde(rename = "eventSource", default)]
    pub event_source: String,
}

impl SqsBatch {
    /// The batch `payload` is, if it is one (a direct EventBridge event is not).
    pub fn from_payload(payload: &serde_json::Value) -> Option<SqsBatch> {
        let records = payload.get("Records")?.as_array()?;
        if !records
            .iter()
            .all(|r| r.get("eventSource").and_then(|s| s.as_str()) == Some("aws:sqs"))
        {
            return None;
        }
        serde_json::from_value(payload.clone()).ok()
    }
}

/// The answer to an [`SqsBatch`] under `ReportBatchItemFailures`: the messages SQS must deliver
/// again (the others are deleted).
pub fn batch_item_failures<'a>(
    message_ids: impl IntoIterator<Item = &'a str>,
) -> serde_json::Value {
    let failures: Vec<serde_json::Value> = message_ids
        .into_iter()
        .map(|id| serde_json::json!({ "itemIdentifier": id }))
        .collect();
    serde_json::json!({ "batchItemFailures": failures })
}

#[cfg(test)]
mod sqs_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_sqs_batch_is_told_from_an_eventbridge_event() {
        let batch = json!({"Records": [
            {"messageId": "m-1", "body": "{\"source\": \"aws.ssm\"}", "eventSource": "aws:sqs"},
        ]});
        let b = SqsBatch::from_payload(&batch).unwrap();
        assert_eq!(b.records[0].message_id, "m-1");
        assert!(SqsBatch::from_payload(&json!({"source": "aws.ssm", "detail": {}})).is_none());
        let s3 = json!({"Records": [{"eventSource": "aws:s3"}]});
        assert!(SqsBatch::from_payload(&s3).is_none());
        assert_eq!(
            batch_item_failures(["m-1", "m-3"]),
            json!({"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-3"}]})
        );
    }
}
