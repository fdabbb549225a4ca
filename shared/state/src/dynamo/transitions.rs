//! A rule of [`crate::rules`] rendered as one conditional `UpdateItem`: the guard becomes the
//! condition expression, the effect the update expression, so DynamoDB checks and writes in one
//! atomic step. Enrolment is a `PutItem` conditional on the host not existing.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};

use super::error::{backend, is_condition_failure};
use super::mapping::{self, value};
use super::schema::TableSchema;
use super::DynamoStore;
use crate::host::HostId;
use crate::item::{attr, enrolment_item, Attr};
use crate::ports::{Enroller, PendingCertificates, StoreError, TransitionConflict, Transitions};
use crate::record::{HostOverrides, HostRecord, StateKind};
use crate::rules::{Change, Cond, Effect, Rule};

/// A rule's expressions with their placeholders.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Rendered {
    pub condition: String,
    pub update: String,
    pub names: Vec<(String, String)>,
    pub values: Vec<(String, AttributeValue)>,
}

impl Rendered {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        if !self.names.iter().any(|(k, _)| *k == placeholder) {
            self.names.push((placeholder.clone(), attribute.to_owned()));
        }
        placeholder
    }

    fn value(&mut self, v: &Attr) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.push((placeholder.clone(), value(v)));
        placeholder
    }
}

/// Renders `rule` as DynamoDB expressions (the item must exist, whatever the rule says).
pub(crate) fn render(rule: &Rule) -> Rendered {
    let mut r = Rendered::default();
    let hid = r.name(attr::HOST_ID);
    let mut conds = vec![format!("attribute_exists({hid})")];
    for c in &rule.guard {
        conds.push(match c {
            Cond::StateIn(kinds) => {
                let st = r.name(attr::STATE);
                let mut any: Vec<String> = kinds
                    .iter()
                    .map(|k| {
                        let v = r.value(&Attr::s(k.as_str()));
                        format!("{st} = {v}")
                    })
                    .collect();
                if kinds.contains(&StateKind::Idle) {
                    any.push(format!("attribute_not_exists({st})"));
                }
                format!("({})", any.join(" OR "))
            }
            Cond::Equals(a, v) => {
                let n = r.name(a);
                let v = r.value(v);
                format!("{n} = {v}")
            }
            Cond::Absent(a) => format!("attribute_not_exists({})", r.name(a)),
            Cond::AbsentOrNumber(a) => {
                let n = r.name(a);
                let t = r.value(&Attr::s("N"));
                format!("(attribute_not_exists({n}) OR attribute_type({n}, {t}))")
            }
        });
    }
    r.condition = conds.join(" AND ");
    let (mut set, mut remove) = (Vec::new(), Vec::new());
    for e in &rule.effect {
        match e {
            Effect::Set(a, v) => {
                let n = r.name(a);
                let v = r.value(v);
                set.push(format!("{n} = {v}"));
            }
            Effect::Remove(a) => remove.push(r.name(a)),
            Effect::BumpVersion => {
                let n = r.name(attr::VERSION);
                let zero = r.value(&Attr::n(0));
                let one = r.value(&Attr::n(1));
                set.push(format!("{n} = if_not_exists({n}, {zero}) + {one}"));
            }
        }
    }
    r.update = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        r.update.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    r
}

impl Transitions for DynamoStore {
    async fn transition(
        &self,
        host: &HostId,
        change: Change,
        now: time::OffsetDateTime,
    ) -> Result<HostRecord, StoreError> {
        let rule = Rule::for_change(&change, now);
        let conflict = || TransitionConflict {
            host: host.clone(),
            transition: rule.name,
        };
        if rule.never_holds() {
            return Err(conflict().into());
        }
        let r = render(&rule);
        let (k, v) = Self::key(host.as_str());
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(k, v)
            .update_expression(r.update)
            .condition_expression(r.condition)
            .set_expression_attribute_names(Some(r.names.into_iter().collect()))
            .set_expression_attribute_values(Some(r.values.into_iter().collect()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => mapping::record(&out.attributes().cloned().unwrap_or_default()),
            Err(e) if is_condition_failure(&e) => Err(conflict().into()),
            Err(e) => Err(backend("UpdateItem", e)),
        }
    }
}

impl PendingCertificates for DynamoStore {
    async fn host_waiting_for(&self, cert_arn: &str) -> Result<Option<HostId>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(TableSchema::CERT_ARN_INDEX)
            .key_condition_expression("#arn = :arn")
            .expression_attribute_names("#arn", attr::PENDING_CERT_ARN)
            .expression_attribute_values(":arn", AttributeValue::S(cert_arn.to_owned()))
            .select(Select::AllProjectedAttributes)
            .send()
            .await
            .map_err(|e| backend("Query", e))?;
        let mut hosts = out
            .items()
            .iter()
            .filter_map(|i| i.get(attr::HOST_ID).and_then(|v| v.as_s().ok()))
            .filter_map(|h| HostId::parse(h).ok());
        Ok(hosts.next())
    }
}

impl Enroller for DynamoStore {
    async fn enrol(&self, host: &HostId, overrides: &HostOverrides) -> Result<(), StoreError> {
        let item = mapping::sdk_item(&enrolment_item(host, overrides));
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#hid)")
            .expression_attribute_names("#hid", attr::HOST_ID)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(TransitionConflict {
                host: host.clone(),
                transition: "enrol (already enrolled)",
            }
            .into()),
            Err(e) => Err(backend("PutItem", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RotationId;
    use time::macros::datetime;

    #[test]
    fn a_guard_becomes_one_condition_with_the_item_required() {
        let rule = Rule::for_change(
            &Change::CsrSent {
                rotation: RotationId("r".into()),
                command_id: "c".into(),
            },
            datetime!(2026-12-01 0:00 UTC),
        );
        let r = render(&rule);
        assert_eq!(
            r.condition,
            "attribute_exists(#hostID) AND (#rotationState = :v0) AND #rotationId = :v1 \
             AND attribute_not_exists(#commandId)"
        );
        assert_eq!(r.update, "SET #commandId = :v2");
        assert_eq!(r.values.len(), 3);
    }

    #[test]
    fn idle_matches_an_item_without_a_state_and_the_version_starts_at_one() {
        let rule = Rule::for_change(
            &Change::Start {
                expected_version: None,
                rotation: RotationId("r".into()),
            },
            datetime!(2026-12-01 0:00 UTC),
        );
        let r = render(&rule);
        assert!(
            r.condition.contains("attribute_not_exists(#version)"),
            "{}",
            r.condition
        );
        assert!(
            r.condition.contains("attribute_not_exists(#rotationState)"),
            "{}",
            r.condition
        );
        assert!(
            r.update.contains("#version = if_not_exists(#version, "),
            "{}",
            r.update
        );
        assert!(r.update.contains(" REMOVE #commandId"), "{}", r.update);
    }
}
