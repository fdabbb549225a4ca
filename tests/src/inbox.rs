//! Reading what was published to the alert topic: an SQS queue in moto subscribed to the SNS
//! topic, read over moto's SQS JSON protocol with a plain HTTP client (no extra SDK crate).

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{json, Value};

/// One SNS message as delivered to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The SNS subject.
    pub subject: String,
    /// The message body (our alerts are JSON).
    pub message: String,
}

/// A queue subscribed to a topic, accumulating what it received.
pub struct AlertInbox {
    endpoint: String,
    queue_url: String,
    seen: Vec<Published>,
}

/// POSTs an AWS JSON 1.0 request to moto and returns the JSON answer.
pub fn aws_json(
    endpoint: &str,
    service: &str,
    target: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr)?;
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: {target}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, payload) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("malformed HTTP answer"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{target}: {head} {payload}"
    );
    Ok(if payload.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(payload)?
    })
}

impl AlertInbox {
    /// Creates a queue and subscribes it to `topic_arn`.
    pub async fn subscribe(
        endpoint: &str,
        sns: &aws_sdk_sns::Client,
        topic_arn: &str,
    ) -> anyhow::Result<AlertInbox> {
        let created = aws_json(
            endpoint,
            "sqs",
            "AmazonSQS.CreateQueue",
            &json!({ "QueueName": "alert-inbox" }),
        )?;
        let queue_url = created["QueueUrl"].as_str().unwrap_or_default().to_owned();
        let attrs = aws_json(
            endpoint,
            "sqs",
            "AmazonSQS.GetQueueAttributes",
            &json!({ "QueueUrl": queue_url, "AttributeNames": ["QueueArn"] }),
        )?;
        let queue_arn = attrs["Attributes"]["QueueArn"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        sns.subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await?;
        Ok(AlertInbox {
            endpoint: endpoint.to_owned(),
            queue_url,
            seen: Vec::new(),
        })
    }

    /// Everything received so far.
    pub fn messages(&mut self) -> anyhow::Result<&[Published]> {
        loop {
            let out = aws_json(
                &self.endpoint,
                "sqs",
                "AmazonSQS.ReceiveMessage",
                &json!({ "QueueUrl": self.queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0 }),
            )?;
            let batch = out["Messages"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for m in batch {
                let envelope: Value = serde_json::from_str(m["Body"].as_str().unwrap_or("{}"))?;
                self.seen.push(Published {
                    subject: envelope["Subject"].as_str().unwrap_or_default().to_owned(),
                    message: envelope["Message"].as_str().unwrap_or_default().to_owned(),
                });
                aws_json(
                    &self.endpoint,
                    "sqs",
                    "AmazonSQS.DeleteMessage",
                    &json!({ "QueueUrl": self.queue_url, "ReceiptHandle": m["ReceiptHandle"] }),
                )?;
            }
        }
        Ok(&self.seen)
    }
}
