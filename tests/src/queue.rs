//! CertIssue's and CertDeploy's queues in the local stack: real SQS queues in moto with a
//! redrive policy to a dead-letter queue, between the GenerateCsr status events and CertIssue,
//! and between Private CA's issuance events and CertDeploy, as in the template.
//!
//! Why a real queue: redelivery after the visibility timeout, the receive count and the move to
//! the dead-letter queue are SQS's behaviour, not ours; the local stack polls the queue as
//! Lambda's event source mapping does (receive a batch, invoke, delete what succeeded, leave the
//! `batchItemFailures` for redelivery). Read over moto's SQS JSON protocol with a plain HTTP
//! client, as the alert inbox is (no extra SDK crate).

use serde_json::{json, Value};

use crate::inbox::aws_json;

/// Messages one ReceiveMessage returns at most (SQS's limit; Lambda's poller gathers more for
/// a larger batch).
pub const RECEIVE_MAX: usize = 10;

/// A queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct EventQueue {
    endpoint: String,
    /// The queue's URL.
    pub url: String,
    /// The dead-letter queue's URL.
    pub dlq_url: String,
}

/// One message as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message ID.
    pub message_id: String,
    /// What deletes it.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// How often SQS has delivered it, this time included.
    pub receive_count: u32,
}

impl EventQueue {
    /// Creates `name` and `name-dlq` in moto at `endpoint`: a message is visible again
    /// `visibility_s` seconds after a receive that did not delete it, and moves to the
    /// dead-letter queue after `max_receives` receives.
    pub fn create(
        endpoint: &str,
        name: &str,
        visibility_s: u32,
        max_receives: u32,
    ) -> anyhow::Result<EventQueue> {
        let sqs = |target: &str, body: Value| aws_json(endpoint, "sqs", target, &body);
        let dlq = sqs(
            "AmazonSQS.CreateQueue",
            json!({ "QueueName": format!("{name}-dlq") }),
        )?;
        let dlq_url = dlq["QueueUrl"].as_str().unwrap_or_default().to_owned();
        let attrs = sqs(
            "AmazonSQS.GetQueueAttributes",
            json!({ "QueueUrl": dlq_url, "AttributeNames": ["QueueArn"] }),
        )?;
        let dlq_arn = attrs["Attributes"]["QueueArn"].as_str().unwrap_or_default();
        let redrive = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives });
        let queue = sqs(
            "AmazonSQS.CreateQueue",
            json!({
                "QueueName": name,
                "Attributes": {
                    "VisibilityTimeout": visibility_s.to_string(),
                    "RedrivePolicy": redrive.to_string(),
                },
            }),
        )?;
        Ok(EventQueue {
            endpoint: endpoint.to_owned(),
            url: queue["QueueUrl"].as_str().unwrap_or_default().to_owned(),
            dlq_url,
        })
    }

    fn call(&self, target: &str, body: Value) -> anyhow::Result<Value> {
        aws_json(&self.endpoint, "sqs", target, &body)
    }

    /// Sends `event` (the rule's target: the whole EventBridge event as the body).
    pub fn send(&self, event: &Value) -> anyhow::Result<()> {
        self.call(
            "AmazonSQS.SendMessage",
            json!({ "QueueUrl": self.url, "MessageBody": event.to_string() }),
        )?;
        Ok(())
    }

    /// Receives up to `batch_size` visible messages, [`RECEIVE_MAX`] a call, as Lambda's
    /// poller gathers a batch.
    pub fn receive(&self, batch_size: usize) -> anyhow::Result<Vec<Received>> {
        let mut batch = Vec::new();
        while batch.len() < batch_size {
            let got = self.receive_once(RECEIVE_MAX.min(batch_size - batch.len()))?;
            if got.is_empty() {
                break;
            }
            batch.extend(got);
        }
        Ok(batch)
    }

    fn receive_once(&self, max: usize) -> anyhow::Result<Vec<Received>> {
        let out = self.call(
            "AmazonSQS.ReceiveMessage",
            json!({
                "QueueUrl": self.url, "MaxNumberOfMessages": max, "WaitTimeSeconds": 0,
                "AttributeNames": ["ApproximateReceiveCount"],
            }),
        )?;
        let messages = out["Messages"].as_array().cloned().unwrap_or_default();
        Ok(messages
            .iter()
            .map(|m| Received {
                message_id: m["MessageId"].as_str().unwrap_or_default().to_owned(),
                receipt_handle: m["ReceiptHandle"].as_str().unwrap_or_default().to_owned(),
                body: m["Body"].as_str().unwrap_or_default().to_owned(),
                receive_count: m["Attributes"]["ApproximateReceiveCount"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    /// Deletes a received message.
    pub fn delete(&self, message: &Received) -> anyhow::Result<()> {
        self.call(
            "AmazonSQS.DeleteMessage",
            json!({ "QueueUrl": self.url, "ReceiptHandle": message.receipt_handle }),
        )?;
        Ok(())
    }

    /// Messages in the queue, visible or received and not yet deleted.
    pub fn in_queue(&self) -> anyhow::Result<u64> {
        count(&self.call(
            "AmazonSQS.GetQueueAttributes",
            json!({
                "QueueUrl": self.url,
                "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            }),
        )?)
    }

    /// Messages in the dead-letter queue.
    pub fn dead_letters(&self) -> anyhow::Result<u64> {
        count(&self.call(
            "AmazonSQS.GetQueueAttributes",
            json!({ "QueueUrl": self.dlq_url, "AttributeNames": ["ApproximateNumberOfMessages"] }),
        )?)
    }
}

fn count(attrs: &Value) -> anyhow::Result<u64> {
    let mut total = 0;
    for (_, v) in attrs["Attributes"].as_object().into_iter().flatten() {
        total += v.as_str().unwrap_or("0").parse::<u64>()?;
    }
    Ok(total)
}

/// The event Lambda's event source mapping invokes the function with for `messages`.
pub fn sqs_event(messages: &[(String, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "receiptHandle": "local", "body": body,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:cert-rotation",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The message IDs an answer asks SQS to deliver again.
pub fn failed_ids(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}
