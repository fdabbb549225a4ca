//! The AWS JSON 1.1 operations of the Run Command emulator (`AmazonSSM.*`): SendCommand,
//! GetCommandInvocation, ListCommandInvocations, ListCommands and DescribeInstanceInformation.
//!
//! Why apart: this is the wire contract the production adapter is tested against. SendCommand
//! records the invocations (paths rewritten under each host's sandbox) and hands them to the
//! runner; the other operations read the state.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::checks::{check_command_id, check_instance_id_format, parse_parameters};
use super::output::{
    command_json, cut, decode_token, elapsed, encode_token, instance_json, invocation_json, ping,
    resource_type,
};
use super::{
    documents, CommandRec, Host, Invocation, PreparedStep, Shared, State, MAX_INSTANCE_IDS,
    STDERR_LIMIT, STDOUT_LIMIT,
};
use crate::emulators::wire::{input, ApiError, JsonApi};
use crate::emulators::{lock, millis_time, uuid_v4, ACCOUNT};

pub(super) struct Api(pub(super) Arc<Shared>);

impl JsonApi for Api {
    fn call(&self, op: &str, input: Value) -> Result<Value, ApiError> {
        match op {
            "SendCommand" => self.send_command(&input),
            "GetCommandInvocation" => self.get_command_invocation(&input),
            "ListCommandInvocations" => self.list_command_invocations(&input),
            "ListCommands" => self.list_commands(&input),
            "DescribeInstanceInformation" => self.describe_instance_information(&input),
            _ => Err(ApiError::new(
                "UnknownOperationException",
                format!("the emulator does not implement AmazonSSM.{op}"),
            )),
        }
    }
}

impl Api {
    fn send_command(&self, v: &Value) -> Result<Value, ApiError> {
        let doc_name = input::req_str(v, "DocumentName")?;
        let instance_ids = input::str_list(v, "InstanceIds");
        if v.get("Targets")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty())
        {
            return Err(ApiError::new(
                "InvalidParameters",
                "the emulator supports InstanceIds only, not Targets",
            ));
        }
        if instance_ids.is_empty() {
            return Err(ApiError::validation(
                "1 validation error detected: Value '[]' at 'instanceIds' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        if instance_ids.len() > MAX_INSTANCE_IDS {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{instance_ids:?}' at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to {MAX_INSTANCE_IDS}"
            )));
        }
        for id in &instance_ids {
            check_instance_id_format(id, "instanceIds")?;
        }
        let timeout_seconds = input::opt_i64(v, "TimeoutSeconds").unwrap_or(3600);
        if !(30..=2_592_000).contains(&timeout_seconds) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{timeout_seconds}' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000"
            )));
        }
        let comment = input::opt_str(v, "Comment").unwrap_or("").to_string();
        if comment.chars().count() > 100 {
            return Err(ApiError::validation(
                "1 validation error detected: Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to 100",
            ));
        }
        let params = parse_parameters(v)?;
        let mut seen = std::collections::BTreeSet::new();
        for id in &instance_ids {
            if !seen.insert(id) {
                return Err(ApiError::new(
                    "DuplicateInstanceId",
                    format!("Instance {id} appears more than once"),
                ));
            }
        }

        let shared = &self.0;
        let mut guard = lock(&shared.state);
        let st: &mut State = &mut guard;
        let doc = st.documents.get(doc_name).cloned().ok_or_else(|| {
            ApiError::new(
                "InvalidDocument",
                format!("Document with name {doc_name} does not exist."),
            )
        })?;
        let unknown: Vec<&String> = instance_ids
            .iter()
            .filter(|i| !st.hosts.contains_key(*i))
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::new(
                "InvalidInstanceId",
                format!("Instances {unknown:?} not in a valid state for account {ACCOUNT}"),
            ));
        }
        let values = doc
            .resolve_parameters(&params)
            .map_err(|m| ApiError::new("InvalidParameters", m))?;

        let now = OffsetDateTime::now_utc();
        let command_id = uuid_v4();
        let mut ready = Vec::new();
        for id in &instance_ids {
            let host = &st.hosts[id];
            let mut host_values = values.clone();
            for (k, val) in host_values.iter_mut() {
                if shared.is_path_parameter(k) && val.starts_with('/') {
                    *val = host
                        .root
                        .join(val.trim_start_matches('/'))
                        .display()
                        .to_string();
                }
            }
            let steps = doc
                .steps
                .iter()
                .map(|s| PreparedStep {
                    name: s.name.clone(),
                    script: documents::substitute(&s.script(), &host_values),
                    timeout: Duration::from_secs(
                        s.timeout_seconds
                            .as_deref()
                            .map(|t| documents::substitute(t, &host_values))
                            .and_then(|t| t.trim().parse::<u64>().ok())
                            .unwrap_or(3600),
                    ),
                })
                .collect();
            st.invocations.insert(
                (command_id.clone(), id.clone()),
                Invocation {
                    command_id: command_id.clone(),
                    instance_id: id.clone(),
                    document_name: doc.name.clone(),
                    comment: comment.clone(),
                    requested: now,
                    status: "Pending",
                    status_details: "Pending",
                    response_code: -1,
                    start: None,
                    end: None,
                    plugins: Vec::new(),
                    steps,
                    get_calls: 0,
                    queued: false,
                },
            );
            ready.push((id.clone(), host.spec.online));
        }
        st.commands.insert(
            command_id.clone(),
            CommandRec {
                id: command_id.clone(),
                document_name: doc.name.clone(),
                comment: comment.clone(),
                max_concurrency: input::opt_str(v, "MaxConcurrency")
                    .unwrap_or("50")
                    .to_owned(),
                max_errors: input::opt_str(v, "MaxErrors").unwrap_or("0").to_owned(),
                parameters: params.clone(),
                instance_ids: instance_ids.clone(),
                requested: now,
                timeout_seconds,
                status: "Pending",
                status_details: "Pending",
                started: false,
            },
        );
        st.order.push(command_id.clone());
        for (id, online) in ready {
            let key = (command_id.clone(), id);
            if online {
                let inv = st.invocations.get_mut(&key).expect("just inserted");
                shared.queue(shared, inv);
            } else {
                let me = shared.clone();
                shared.spawn(async move {
                    tokio::time::sleep(Duration::from_secs(timeout_seconds as u64)).await;
                    me.delivery_timeout(&key);
                });
            }
        }
        let out = json!({ "Command": command_json(&st.commands[&command_id], &*st) });
        drop(guard);
        Ok(out)
    }

    fn get_command_invocation(&self, v: &Value) -> Result<Value, ApiError> {
        let command_id = input::req_str(v, "CommandId")?;
        let instance_id = input::req_str(v, "InstanceId")?;
        check_command_id(command_id)?;
        check_instance_id_format(instance_id, "instanceId")?;
        let plugin = input::opt_str(v, "PluginName");
        let mut st = lock(&self.0.state);
        let not_found = || ApiError::new("InvocationDoesNotExist", "");
        let inv = st
            .invocations
            .get_mut(&(command_id.to_string(), instance_id.to_string()))
            .ok_or_else(not_found)?;
        inv.get_calls += 1;
        if inv.get_calls <= self.0.hidden_calls {
            return Err(not_found());
        }
        let (status, details, code, start, end, stdout, stderr, pname) = match plugin {
            Some(p) => {
                let r = inv.plugin(p).ok_or_else(|| {
                    ApiError::new(
                        "InvalidPluginName",
                        format!("plugin {p} is not in document {}", inv.document_name),
                    )
                })?;
                (
                    r.status,
                    r.status_details,
                    r.response_code,
                    r.start,
                    r.end,
                    r.stdout,
                    r.stderr,
                    r.name,
                )
            }
            None => (
                inv.status,
                inv.status_details,
                inv.response_code,
                inv.start,
                inv.end,
                inv.stdout(),
                inv.stderr(),
                inv.steps
                    .first()
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
            ),
        };
        let fmt = |t: Option<OffsetDateTime>| t.map(millis_time).unwrap_or_default();
        Ok(json!({
            "CommandId": inv.command_id,
            "InstanceId": inv.instance_id,
            "Comment": inv.comment,
            "DocumentName": inv.document_name,
            "DocumentVersion": "$DEFAULT",
            "PluginName": pname,
            "ResponseCode": code,
            "ExecutionStartDateTime": fmt(start),
            "ExecutionElapsedTime": elapsed(start, end),
            "ExecutionEndDateTime": fmt(end),
            "Status": status,
            "StatusDetails": details,
            "StandardOutputContent": cut(&stdout, STDOUT_LIMIT),
            "StandardOutputUrl": "",
            "StandardErrorContent": cut(&stderr, STDERR_LIMIT),
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
        }))
    }

    fn list_command_invocations(&self, v: &Value) -> Result<Value, ApiError> {
        let command_id = input::opt_str(v, "CommandId");
        let instance_id = input::opt_str(v, "InstanceId");
        if let Some(c) = command_id {
            check_command_id(c)?;
        }
        if let Some(i) = instance_id {
            check_instance_id_format(i, "instanceId")?;
        }
        let details = input::opt_bool(v, "Details").unwrap_or(false);
        let max = max_results(v)?;
        let mut filters: Vec<(String, String)> = Vec::new();
        if let Some(fs) = v.get("Filters").and_then(Value::as_array) {
            for f in fs {
                let k = input::req_str(f, "key")?;
                let val = input::req_str(f, "value")?;
                if !matches!(k, "Status" | "DocumentName") {
                    return Err(ApiError::new(
                        "InvalidFilterKey",
                        format!("the emulator filters on Status and DocumentName, not {k}"),
                    ));
                }
                filters.push((k.to_string(), val.to_string()));
            }
        }
        let st = lock(&self.0.state);
        if let Some(c) = command_id {
            if !st.commands.contains_key(c) {
                return Err(ApiError::new("InvalidCommandId", ""));
            }
        }
        // Newest first, as the service lists them.
        let mut all = Vec::new();
        for c in st.order.iter().rev() {
            if command_id.is_some_and(|x| x != c) {
                continue;
            }
            let rec = &st.commands[c];
            for i in &rec.instance_ids {
                if instance_id.is_some_and(|x| x != i) {
                    continue;
                }
                if let Some(inv) = st.invocations.get(&(c.clone(), i.clone())) {
                    let keep = filters.iter().all(|(k, val)| match k.as_str() {
                        "Status" => inv.status == val,
                        _ => inv.document_name == *val,
                    });
                    if keep {
                        all.push(inv);
                    }
                }
            }
        }
        page(v, "CommandInvocations", &all, max, |inv| {
            invocation_json(inv, details)
        })
    }

    /// Commands newest first, with their parameters; by `CommandId`, `InstanceId` (the
    /// commands sent to that node) and the `DocumentName` filter.
    fn list_commands(&self, v: &Value) -> Result<Value, ApiError> {
        let command_id = input::opt_str(v, "CommandId");
        let instance_id = input::opt_str(v, "InstanceId");
        if let Some(c) = command_id {
            check_command_id(c)?;
        }
        if let Some(i) = instance_id {
            check_instance_id_format(i, "instanceId")?;
        }
        let max = max_results(v)?;
        let mut document = None;
        if let Some(fs) = v.get("Filters").and_then(Value::as_array) {
            for f in fs {
                let k = input::req_str(f, "key")?;
                let val = input::req_str(f, "value")?;
                if k != "DocumentName" {
                    return Err(ApiError::new(
                        "InvalidFilterKey",
                        format!("the emulator filters ListCommands on DocumentName, not {k}"),
                    ));
                }
                document = Some(val.to_owned());
            }
        }
        let st = lock(&self.0.state);
        if let Some(c) = command_id {
            if !st.commands.contains_key(c) {
                return Err(ApiError::new("InvalidCommandId", ""));
            }
        }
        let all: Vec<&CommandRec> = st
            .order
            .iter()
            .rev()
            .map(|c| &st.commands[c])
            .filter(|c| command_id.is_none_or(|x| x == c.id))
            .filter(|c| instance_id.is_none_or(|x| c.instance_ids.iter().any(|i| i == x)))
            .filter(|c| document.as_ref().is_none_or(|d| *d == c.document_name))
            .collect();
        page(v, "Commands", &all, max, |c| command_json(c, &st))
    }

    fn describe_instance_information(&self, v: &Value) -> Result<Value, ApiError> {
        let max = input::opt_i64(v, "MaxResults").unwrap_or(50);
        if !(5..=50).contains(&max) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{max}' at 'maxResults' failed to satisfy constraint: Member must have value between 5 and 50"
            )));
        }
        let mut filters: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(fs) = v
            .get("InstanceInformationFilterList")
            .and_then(Value::as_array)
        {
            for f in fs {
                filters.push((
                    input::req_str(f, "key")?.to_string(),
                    input::str_list(f, "valueSet"),
                ));
            }
        }
        if let Some(fs) = v.get("Filters").and_then(Value::as_array) {
            for f in fs {
                filters.push((
                    input::req_str(f, "Key")?.to_string(),
                    input::str_list(f, "Values"),
                ));
            }
        }
        for (k, vals) in &filters {
            if !matches!(
                k.as_str(),
                "InstanceIds" | "PingStatus" | "PlatformTypes" | "ResourceType"
            ) {
                return Err(ApiError::new(
                    "InvalidFilterKey",
                    format!("the emulator filters on InstanceIds, PingStatus, PlatformTypes, ResourceType, not {k}"),
                ));
            }
            if vals.is_empty() {
                return Err(ApiError::new(
                    "InvalidInstanceInformationFilterValue",
                    format!("filter {k} has no values"),
                ));
            }
            if k == "InstanceIds" {
                for id in vals {
                    check_instance_id_format(id, "valueSet")
                        .map_err(|e| ApiError::new("InvalidInstanceId", e.message))?;
                }
            }
        }
        let after = match input::opt_str(v, "NextToken") {
            Some(t) => Some(
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(t)
                        .map_err(|_| ApiError::new("InvalidNextToken", "bad token"))?,
                )
                .map_err(|_| ApiError::new("InvalidNextToken", "bad token"))?,
            ),
            None => None,
        };
        let st = lock(&self.0.state);
        // With an InstanceIds filter, look those up instead of scanning the fleet.
        let candidates: Vec<(&String, &Host)> =
            match filters.iter().find(|(k, _)| k == "InstanceIds") {
                Some((_, ids)) => {
                    let ids: std::collections::BTreeSet<&String> = ids.iter().collect();
                    ids.into_iter()
                        .filter_map(|i| st.hosts.get_key_value(i))
                        .collect()
                }
                None => st.hosts.iter().collect(),
            };
        let matching: Vec<(&String, &Host)> = candidates
            .into_iter()
            .filter(|(id, _)| after.as_ref().is_none_or(|a| id.as_str() > a.as_str()))
            .filter(|(id, h)| {
                filters.iter().all(|(k, vals)| {
                    let have = match k.as_str() {
                        "InstanceIds" => id.to_string(),
                        "PingStatus" => ping(h).to_string(),
                        "PlatformTypes" => "Linux".to_string(),
                        _ => resource_type(id).to_string(),
                    };
                    vals.contains(&have)
                })
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .take(max as usize)
            .map(|(id, h)| instance_json(id, h))
            .collect();
        let mut out = json!({ "InstanceInformationList": page });
        if matching.len() > max as usize {
            let last = matching[max as usize - 1].0;
            out["NextToken"] = json!(base64::engine::general_purpose::STANDARD.encode(last));
        }
        Ok(out)
    }
}

/// `MaxResults` of the List operations: 1 to 50, 50 when absent.
fn max_results(v: &Value) -> Result<usize, ApiError> {
    let max = input::opt_i64(v, "MaxResults").unwrap_or(50);
    if !(1..=50).contains(&max) {
        return Err(ApiError::validation(
            "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 50",
        ));
    }
    Ok(max as usize)
}

/// The page of `all` that `NextToken` (an offset) starts, under `key`, with the next token
/// when more remain.
fn page<T>(
    v: &Value,
    key: &str,
    all: &[T],
    max: usize,
    to_json: impl Fn(&T) -> Value,
) -> Result<Value, ApiError> {
    let start = match input::opt_str(v, "NextToken") {
        Some(t) => decode_token(t)?,
        None => 0,
    };
    let items: Vec<Value> = all.iter().skip(start).take(max).map(to_json).collect();
    let mut out = json!({ key: items });
    if start + max < all.len() {
        out["NextToken"] = json!(encode_token(start + max));
    }
    Ok(out)
}
