//! Status changes of invocations and commands, and the EventBridge events that announce them
//! ("EC2 Command Invocation Status-change Notification", "EC2 Command Status-change
//! Notification"), including the delivery timeout of invocations waiting for an offline host.
//!
//! Why apart: the runner and the API both move invocations between states, and every move must
//! update the command and emit the events the same way.

use serde_json::json;
use time::OffsetDateTime;

use super::{CommandRec, Invocation, Shared, State};
use crate::emulators::{eventbridge_event, lock, millis_time, ACCOUNT, REGION};

fn instance_arn(id: &str) -> String {
    format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{id}")
}

impl Shared {
    pub(super) fn invocation_event(&self, inv: &Invocation) {
        self.bus.push(eventbridge_event(
            "EC2 Command Invocation Status-change Notification",
            "aws.ssm",
            vec![instance_arn(&inv.instance_id)],
            json!({
                "command-id": inv.command_id,
                "document-name": inv.document_name,
                "instance-id": inv.instance_id,
                "requested-date-time": millis_time(inv.requested),
                "status": inv.status,
            }),
        ));
    }

    fn command_event(&self, c: &CommandRec) {
        if !self.command_events {
            return;
        }
        let expire = c.requested + time::Duration::seconds(c.timeout_seconds);
        self.bus.push(eventbridge_event(
            "EC2 Command Status-change Notification",
            "aws.ssm",
            c.instance_ids.iter().map(|i| instance_arn(i)).collect(),
            json!({
                "command-id": c.id,
                "document-name": c.document_name,
                "expire-after": millis_time(expire),
                "parameters": c.parameters,
                "requested-date-time": millis_time(c.requested),
                "status": c.status,
            }),
        ));
    }

    /// After an invocation changed: updates the command's status and emits its event.
    pub(super) fn update_command(&self, st: &mut State, command_id: &str) {
        let Some(c) = st.commands.get(command_id) else {
            return;
        };
        let invs: Vec<&Invocation> = c
            .instance_ids
            .iter()
            .filter_map(|i| st.invocations.get(&(command_id.to_string(), i.clone())))
            .collect();
        let any_started = invs.iter().any(|i| i.status != "Pending");
        let all_done = invs.iter().all(|i| i.terminal());
        let (status, details) = if all_done {
            if invs.iter().all(|i| i.status == "Success") {
                ("Success", "Success")
            } else if invs.iter().any(|i| i.status == "Failed") {
                ("Failed", "Failed")
            } else if invs.iter().any(|i| i.status == "TimedOut") {
                ("TimedOut", "TimedOut")
            } else {
                ("Cancelled", "Cancelled")
            }
        } else if any_started {
            ("InProgress", "InProgress")
        } else {
            ("Pending", "Pending")
        };
        let c = st.commands.get_mut(command_id).expect("command");
        if c.status == status {
            return;
        }
        c.status = status;
        c.status_details = details;
        if status == "InProgress" {
            if c.started {
                return;
            }
            c.started = true;
            if !self.in_progress_events {
                return;
            }
        }
        self.command_event(c);
    }

    /// Marks a pending invocation delivery-timed-out. Returns whether it changed.
    pub(super) fn delivery_timeout(&self, key: &(String, String)) -> bool {
        let mut st = lock(&self.state);
        let Some(inv) = st.invocations.get_mut(key) else {
            return false;
        };
        if inv.status != "Pending" || inv.queued {
            return false;
        }
        inv.status = "TimedOut";
        inv.status_details = "DeliveryTimedOut";
        inv.end = Some(OffsetDateTime::now_utc());
        self.invocation_event(inv);
        self.update_command(&mut st, &key.0);
        true
    }
}
