//! The shapes of the answers: `Command` of SendCommand and ListCommands, `CommandInvocation`
//! (with its plugins) of ListCommandInvocations,
//! `InstanceInformation` of DescribeInstanceInformation, the pagination tokens, and the cutting
//! of outputs to the service's limits.
//!
//! Why apart: these are the member names the SDK parses, kept apart from the logic that decides
//! what to answer.

use base64::Engine as _;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::{CommandRec, Host, Invocation, State, PLUGIN_OUTPUT_LIMIT};
use crate::emulators::wire::ApiError;
use crate::emulators::{epoch_seconds, REGION};

pub(super) fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

pub(super) fn elapsed(start: Option<OffsetDateTime>, end: Option<OffsetDateTime>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("PT{:.3}S", (e - s).as_seconds_f64()),
        _ => String::new(),
    }
}

pub(super) fn encode_token(n: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("offset:{n}"))
}

pub(super) fn decode_token(t: &str) -> Result<usize, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::new("InvalidNextToken", "The specified token is not valid."))
}

pub(super) fn ping(h: &Host) -> &'static str {
    if h.spec.online {
        "Online"
    } else {
        "ConnectionLost"
    }
}

pub(super) fn resource_type(id: &str) -> &'static str {
    if id.starts_with("mi-") {
        "ManagedInstance"
    } else {
        "EC2Instance"
    }
}

pub(super) fn instance_json(id: &str, h: &Host) -> Value {
    let last_ping = if h.spec.online {
        OffsetDateTime::now_utc()
    } else {
        h.last_ping
    };
    let mut o = Map::new();
    o.insert("InstanceId".into(), json!(id));
    o.insert("PingStatus".into(), json!(ping(h)));
    o.insert("LastPingDateTime".into(), epoch_seconds(last_ping));
    o.insert("AgentVersion".into(), json!("3.3.1142.0"));
    o.insert("IsLatestVersion".into(), json!(false));
    o.insert("PlatformType".into(), json!("Linux"));
    o.insert("PlatformName".into(), json!("Ubuntu"));
    o.insert("PlatformVersion".into(), json!("22.04"));
    o.insert("ResourceType".into(), json!(resource_type(id)));
    o.insert("ComputerName".into(), json!(format!("{id}.local")));
    o.insert("IPAddress".into(), json!("192.0.2.10"));
    o.insert("AssociationStatus".into(), json!("Success"));
    o.insert("SourceId".into(), json!(id));
    if id.starts_with("mi-") {
        o.insert(
            "ActivationId".into(),
            json!("b2f84e6e-0d7b-4c67-9f00-000000000000"),
        );
        o.insert("IamRole".into(), json!("SSMServiceRole"));
        o.insert("RegistrationDate".into(), epoch_seconds(h.registered));
        o.insert("Name".into(), json!(id));
        o.insert("SourceType".into(), json!("AWS::SSM::ManagedInstance"));
    } else {
        o.insert("SourceType".into(), json!("AWS::EC2::Instance"));
    }
    Value::Object(o)
}

pub(super) fn invocation_json(inv: &Invocation, details: bool) -> Value {
    let plugins: Vec<Value> = if details {
        inv.steps
            .iter()
            .filter_map(|s| inv.plugin(&s.name))
            .map(|r| {
                let mut output = r.stdout;
                if !r.stderr.is_empty() {
                    output.push_str("\n----------ERROR-------\n");
                    output.push_str(&r.stderr);
                }
                let mut p = json!({
                    "Name": r.name,
                    "Status": r.status,
                    "StatusDetails": r.status_details,
                    "ResponseCode": r.response_code,
                    "Output": cut(&output, PLUGIN_OUTPUT_LIMIT),
                    "StandardOutputUrl": "",
                    "StandardErrorUrl": "",
                    "OutputS3Region": REGION,
                    "OutputS3BucketName": "",
                    "OutputS3KeyPrefix": "",
                });
                if let Some(t) = r.start {
                    p["ResponseStartDateTime"] = epoch_seconds(t);
                }
                if let Some(t) = r.end {
                    p["ResponseFinishDateTime"] = epoch_seconds(t);
                }
                p
            })
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "CommandId": inv.command_id,
        "InstanceId": inv.instance_id,
        "InstanceName": "",
        "Comment": inv.comment,
        "DocumentName": inv.document_name,
        "DocumentVersion": "$DEFAULT",
        "RequestedDateTime": epoch_seconds(inv.requested),
        "Status": inv.status,
        "StatusDetails": inv.status_details,
        "TraceOutput": "",
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": plugins,
        "ServiceRole": "",
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
    })
}

/// A `Command` as SendCommand and ListCommands answer it, its counts from its invocations.
pub(super) fn command_json(c: &CommandRec, st: &State) -> Value {
    let invs: Vec<&Invocation> = c
        .instance_ids
        .iter()
        .filter_map(|i| st.invocations.get(&(c.id.clone(), i.clone())))
        .collect();
    let count = |f: &dyn Fn(&Invocation) -> bool| invs.iter().filter(|i| f(i)).count();
    json!({
        "CommandId": c.id,
        "DocumentName": c.document_name,
        "DocumentVersion": "$DEFAULT",
        "Comment": c.comment,
        "ExpiresAfter": epoch_seconds(c.requested + time::Duration::seconds(c.timeout_seconds)),
        "Parameters": c.parameters,
        "InstanceIds": c.instance_ids,
        "Targets": [],
        "RequestedDateTime": epoch_seconds(c.requested),
        "Status": c.status,
        "StatusDetails": c.status_details,
        "OutputS3Region": REGION,
        "OutputS3BucketName": "",
        "OutputS3KeyPrefix": "",
        "MaxConcurrency": c.max_concurrency,
        "MaxErrors": c.max_errors,
        "TargetCount": c.instance_ids.len(),
        "CompletedCount": count(&|i| i.terminal()),
        "ErrorCount": count(&|i| matches!(i.status, "Failed" | "TimedOut")),
        "DeliveryTimedOutCount": count(&|i| i.status_details == "DeliveryTimedOut"),
        "ServiceRole": "",
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
        "TimeoutSeconds": c.timeout_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_counts_chars() {
        assert_eq!(cut("héllo", 2), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }
}
