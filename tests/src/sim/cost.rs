//! A cost estimate from the simulated calls and modelled durations, at list prices.
//!
//! Prices are US East (N. Virginia) list prices as the services' pricing pages state them
//! (each constant names its page); free tiers are left out, so the figures are upper bounds for
//! a small account. Run Command on managed nodes and events of AWS services on the default bus
//! cost nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sim::env::{CallCounts, Func};
use crate::sim::lambda::FunctionStats;
use crate::sim::scenario::Scenario;

/// Lambda, arm64, per GB-second (aws.amazon.com/lambda/pricing).
pub const LAMBDA_GB_SECOND_USD: f64 = 0.000_013_333_4;
/// Lambda, per request (aws.amazon.com/lambda/pricing: $0.20 per million).
pub const LAMBDA_REQUEST_USD: f64 = 0.20 / 1e6;
/// DynamoDB on-demand, per write request unit (aws.amazon.com/dynamodb/pricing/on-demand:
/// $0.625 per million).
pub const DDB_WRITE_UNIT_USD: f64 = 0.625 / 1e6;
/// DynamoDB on-demand, per read request unit ($0.125 per million, same page).
pub const DDB_READ_UNIT_USD: f64 = 0.125 / 1e6;
/// SQS standard queue, per request (aws.amazon.com/sqs/pricing: $0.40 per million).
pub const SQS_REQUEST_USD: f64 = 0.40 / 1e6;
/// SNS, per publish (aws.amazon.com/sns/pricing: $0.50 per million requests).
pub const SNS_PUBLISH_USD: f64 = 0.50 / 1e6;
/// EventBridge Scheduler, per invocation (aws.amazon.com/eventbridge/pricing: $1.00 per
/// million).
pub const SCHEDULER_INVOCATION_USD: f64 = 1.0 / 1e6;
/// Private CA, short-lived certificate mode, per certificate (aws.amazon.com/private-ca/pricing).
pub const PCA_SHORT_LIVED_CERT_USD: f64 = 0.058;
/// Private CA, short-lived certificate mode, per CA per month (same page).
pub const PCA_SHORT_LIVED_CA_MONTH_USD: f64 = 50.0;

/// SQS requests per message delivered from CertIssue's or CertDeploy's queue: the rule's
/// SendMessage, and the event source mapping's ReceiveMessage and DeleteMessage. An upper
/// bound: under load a receive and a delete serve up to 10 messages. The mapping's idle long polls (a
/// few hundred thousand requests a month, whatever the fleet) are a fixed cost of the stack,
/// not counted here.
pub const SQS_REQUESTS_PER_MESSAGE: f64 = 3.0;

/// Cost per 1,000 host-months, USD.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cost {
    /// Lambda GB-seconds.
    pub lambda_compute: f64,
    /// Lambda requests.
    pub lambda_requests: f64,
    /// DynamoDB request units.
    pub dynamodb: f64,
    /// SQS requests: CertIssue's and CertDeploy's queues, [`SQS_REQUESTS_PER_MESSAGE`] per
    /// delivered message.
    pub sqs: f64,
    /// SNS publishes.
    pub sns: f64,
    /// EventBridge Scheduler invocations.
    pub scheduler: f64,
    /// The pipeline's own total.
    pub pipeline_total: f64,
    /// Private CA's certificates (next to the pipeline's cost; the CA's monthly fee is apart).
    pub private_ca_certificates: f64,
    /// Private CA's monthly fee per CA (not per 1,000 hosts).
    pub private_ca_per_ca_month: f64,
    /// Lambda GB-seconds per 1,000 host-months.
    pub gb_seconds: f64,
    /// DynamoDB write units per 1,000 host-months.
    pub write_units: f64,
    /// DynamoDB read units per 1,000 host-months.
    pub read_units: f64,
    /// Lambda invocations per 1,000 host-months.
    pub lambda_invocations: f64,
    /// SQS requests per 1,000 host-months.
    pub sqs_requests: f64,
    /// SNS publishes per 1,000 host-months.
    pub sns_publishes: f64,
}

/// The cost of a run of `fleet` hosts over `minutes`, per 1,000 host-months.
pub fn estimate(
    counts: &CallCounts,
    functions: &BTreeMap<Func, FunctionStats>,
    params: &Scenario,
    fleet: u64,
    minutes: f64,
    certificates: u64,
    alerts: u64,
) -> Cost {
    let host_months = fleet as f64 * minutes / (30.0 * 1440.0);
    let per = if host_months > 0.0 {
        1000.0 / host_months
    } else {
        0.0
    };
    let gb = params.lambda_memory_mb / 1024.0;
    let gb_seconds: f64 = functions.values().map(|f| f.busy_seconds * gb).sum::<f64>() * per;
    let requests: f64 = functions
        .values()
        .map(|f| f.invocations as f64)
        .sum::<f64>()
        * per;
    let queued_deliveries: f64 = [Func::Issue, Func::DeployQueue]
        .iter()
        .filter_map(|f| functions.get(f))
        .map(|f| f.messages as f64)
        .sum();
    let sqs_requests = queued_deliveries * SQS_REQUESTS_PER_MESSAGE * per;
    let schedules = functions
        .get(&Func::Check)
        .map_or(0.0, |f| f.invocations as f64)
        * per;
    let write_units = counts.ddb_write_units * per;
    let read_units = counts.ddb_read_units * per;
    let mut c = Cost {
        lambda_compute: gb_seconds * LAMBDA_GB_SECOND_USD,
        lambda_requests: requests * LAMBDA_REQUEST_USD,
        dynamodb: write_units * DDB_WRITE_UNIT_USD + read_units * DDB_READ_UNIT_USD,
        sqs: sqs_requests * SQS_REQUEST_USD,
        sns: alerts as f64 * per * SNS_PUBLISH_USD,
        scheduler: schedules * SCHEDULER_INVOCATION_USD,
        private_ca_certificates: certificates as f64 * per * PCA_SHORT_LIVED_CERT_USD,
        private_ca_per_ca_month: PCA_SHORT_LIVED_CA_MONTH_USD,
        gb_seconds,
        write_units,
        read_units,
        lambda_invocations: requests,
        sqs_requests,
        sns_publishes: alerts as f64 * per,
        ..Cost::default()
    };
    c.pipeline_total =
        c.lambda_compute + c.lambda_requests + c.dynamodb + c.sqs + c.sns + c.scheduler;
    c
}
