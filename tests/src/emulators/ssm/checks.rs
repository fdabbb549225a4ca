//! Checks SendCommand, GetCommandInvocation, ListCommandInvocations and
//! DescribeInstanceInformation make on their input as the service's model does (member
//! patterns and lengths, the shape of `Parameters`), with its `ValidationException` messages.
//! The documents' own parameter rules are in `documents`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::valid_instance_id;
use crate::emulators::wire::ApiError;

pub(super) fn parse_parameters(v: &Value) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let mut out = BTreeMap::new();
    let Some(obj) = v.get("Parameters") else {
        return Ok(out);
    };
    let obj = obj
        .as_object()
        .ok_or_else(|| ApiError::new("SerializationException", "Parameters is not a map"))?;
    for (k, vals) in obj {
        let list = vals
            .as_array()
            .ok_or_else(|| ApiError::new("SerializationException", "parameter value not a list"))?
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::new("SerializationException", "value not a string"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(k.clone(), list);
    }
    Ok(out)
}

pub(super) fn check_command_id(id: &str) -> Result<(), ApiError> {
    if id.len() != 36 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{id}' at 'commandId' failed to satisfy constraint: Member must have length equal to 36"
        )));
    }
    Ok(())
}

pub(super) fn check_instance_id_format(id: &str, member: &str) -> Result<(), ApiError> {
    if !valid_instance_id(id) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{id}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: (^i-(\\w{{8}}|\\w{{17}})$)|(^mi-\\w{{17}}$)"
        )));
    }
    Ok(())
}
