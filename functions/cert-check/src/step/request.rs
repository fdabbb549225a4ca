//! The payload, parsed and validated into what the run will do.
//!
//! The scheduler sends `{}` (and the reconcile schedule `{"reconcile": true}`); operators send
//! `{"hosts": [...], "force": true, "dryRun": true}` or
//! `{"revoke": {"host": "mi-…", "reason": "KEY_COMPROMISE", "rotate": true}}` or
//! `{"release": {"host": "mi-…"}}`. Every check that
//! needs no record is made here, before anything is read: combinations that make no sense, host
//! IDs that are no managed-node IDs, revocation reasons Private CA does not know.

use rotation::ca::REVOCATION_REASONS;
use serde::Deserialize;
use state::HostId;

use super::error::CheckError;

/// The manual payload (the scheduler sends `{}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckRequest {
    /// Only these hosts (all hosts when empty).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Rotate the named hosts now, whatever their renewal point.
    #[serde(default)]
    pub force: bool,
    /// Return the plan, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Revoke a host's current certificate.
    #[serde(default)]
    pub revoke: Option<RevokeRequest>,
    /// Release a host held by its revocation reason.
    #[serde(default)]
    pub release: Option<ReleaseRequest>,
    /// The reconcile pass (its own schedule): only hosts in flight or failed, read from their
    /// index; stuck rotations moved on from the truth, failed ones retried after their backoff.
    #[serde(default)]
    pub reconcile: bool,
}

/// `{"revoke": {"host": "mi-…", "reason": "KEY_COMPROMISE", "rotate": true}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeRequest {
    /// The host.
    pub host: String,
    /// A Private CA revocation reason.
    pub reason: String,
    /// Start the replacement at once.
    #[serde(default)]
    pub rotate: bool,
}

/// `{"release": {"host": "mi-…"}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The host.
    pub host: String,
}

/// A valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Which hosts, and what to do with them.
    pub scope: Scope,
    /// Return the plan, change nothing.
    pub dry_run: bool,
}

/// Which hosts a run plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every host that may need work (the schedule).
    Fleet,
    /// The named hosts, in the order given.
    Hosts {
        /// The hosts.
        hosts: Vec<HostId>,
        /// Rotate them now unless a rotation is in flight.
        force: bool,
    },
    /// Revoke one host's current certificate.
    Revoke(Revocation),
    /// Release one host held by its revocation reason.
    Release(HostId),
    /// Every host in flight or failed (the reconcile schedule).
    Reconcile,
}

/// A revocation with a valid host ID and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The host.
    pub host: HostId,
    /// One of [`REVOCATION_REASONS`].
    pub reason: String,
    /// Start the replacement at once.
    pub rotate: bool,
}

/// Parses and validates the payload (`null` is the schedule's `{}`).
pub fn parse_request(payload: serde_json::Value) -> Result<Request, CheckError> {
    let raw = match payload {
        serde_json::Value::Null => CheckRequest::default(),
        v => serde_json::from_value(v).map_err(|e| CheckError::BadRequest(e.to_string()))?,
    };
    validate(raw)
}

/// Validates a parsed payload. A bad combination or host list is a [`CheckError::BadRequest`];
/// a revocation naming an invalid host or reason is a [`CheckError::Refused`].
pub fn validate(raw: CheckRequest) -> Result<Request, CheckError> {
    if raw.reconcile {
        if raw.revoke.is_some() || raw.release.is_some() || !raw.hosts.is_empty() || raw.force {
            return Err(CheckError::BadRequest(
                "reconcile cannot be combined with hosts, force, revoke or release".into(),
            ));
        }
        return Ok(Request {
            scope: Scope::Reconcile,
            dry_run: raw.dry_run,
        });
    }
    if let Some(release) = raw.release {
        if raw.revoke.is_some() || !raw.hosts.is_empty() || raw.force {
            return Err(CheckError::BadRequest(
                "release cannot be combined with hosts, force or revoke".into(),
            ));
        }
        let host = HostId::parse(&release.host).map_err(|e| CheckError::Refused(e.to_string()))?;
        return Ok(Request {
            scope: Scope::Release(host),
            dry_run: raw.dry_run,
        });
    }
    let scope = match raw.revoke {
        Some(_) if !raw.hosts.is_empty() || raw.force => {
            return Err(CheckError::BadRequest(
                "revoke cannot be combined with hosts or force".into(),
            ))
        }
        Some(revoke) => Scope::Revoke(revocation(revoke)?),
        None if raw.hosts.is_empty() && raw.force => {
            return Err(CheckError::BadRequest("force needs a list of hosts".into()))
        }
        None if raw.hosts.is_empty() => Scope::Fleet,
        None => Scope::Hosts {
            hosts: raw
                .hosts
                .iter()
                .map(|h| HostId::parse(h).map_err(|e| CheckError::BadRequest(e.to_string())))
                .collect::<Result<_, _>>()?,
            force: raw.force,
        },
    };
    Ok(Request {
        scope,
        dry_run: raw.dry_run,
    })
}

fn revocation(revoke: RevokeRequest) -> Result<Revocation, CheckError> {
    let host = HostId::parse(&revoke.host).map_err(|e| CheckError::Refused(e.to_string()))?;
    if !REVOCATION_REASONS.contains(&revoke.reason.as_str()) {
        return Err(CheckError::Refused(format!(
            "invalid revocation reason {:?}: expected one of {}",
            revoke.reason,
            REVOCATION_REASONS.join(", ")
        )));
    }
    Ok(Revocation {
        host,
        reason: revoke.reason,
        rotate: revoke.rotate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::fixtures::host;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Request, CheckError> {
        parse_request(v)
    }

    fn bad_request(v: serde_json::Value) -> String {
        match parse(v) {
            Err(CheckError::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    fn refused(v: serde_json::Value) -> String {
        match parse(v) {
            Err(CheckError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_schedules_payload_and_null_plan_the_fleet() {
        for payload in [json!({}), serde_json::Value::Null] {
            assert_eq!(
                parse(payload).unwrap(),
                Request {
                    scope: Scope::Fleet,
                    dry_run: false
                }
            );
        }
        assert!(parse(json!({"dryRun": true})).unwrap().dry_run);
    }

    #[test]
    fn named_hosts_keep_their_order_and_force() {
        let r = parse(
            json!({"hosts": [host(2).as_str(), host(1).as_str()], "force": true, "dryRun": true}),
        )
        .unwrap();
        assert_eq!(
            r,
            Request {
                scope: Scope::Hosts {
                    hosts: vec![host(2), host(1)],
                    force: true
                },
                dry_run: true
            }
        );
        let r = parse(json!({"hosts": [host(1).as_str()]})).unwrap();
        assert_eq!(
            r.scope,
            Scope::Hosts {
                hosts: vec![host(1)],
                force: false
            }
        );
    }

    #[test]
    fn a_revocation_with_a_valid_host_and_reason() {
        let r = parse(json!({"revoke": {"host": host(1).as_str(), "reason": "KEY_COMPROMISE", "rotate": true}}))
            .unwrap();
        assert_eq!(
            r.scope,
            Scope::Revoke(Revocation {
                host: host(1),
                reason: "KEY_COMPROMISE".into(),
                rotate: true
            })
        );
        let r =
            parse(json!({"revoke": {"host": host(1).as_str(), "reason": "SUPERSEDED"}})).unwrap();
        assert!(matches!(
            r.scope,
            Scope::Revoke(Revocation { rotate: false, .. })
        ));
    }

    #[test]
    fn a_release_names_one_valid_host_alone() {
        let r = parse(json!({"release": {"host": host(1).as_str()}, "dryRun": true})).unwrap();
        assert_eq!(
            r,
            Request {
                scope: Scope::Release(host(1)),
                dry_run: true
            }
        );
        let m = refused(json!({"release": {"host": "mi-nope"}}));
        assert!(m.contains("not a managed-node ID"), "{m}");
        for payload in [
            json!({"release": {"host": host(1).as_str()}, "force": true, "hosts": [host(1).as_str()]}),
            json!({"release": {"host": host(1).as_str()}, "revoke": {"host": host(1).as_str(), "reason": "SUPERSEDED"}}),
        ] {
            assert_eq!(
                bad_request(payload),
                "release cannot be combined with hosts, force or revoke"
            );
        }
        assert!(
            bad_request(json!({"release": {"host": host(1).as_str(), "reason": "x"}}))
                .contains("unknown field")
        );
    }

    #[test]
    fn payloads_that_are_not_requests_are_bad_requests() {
        assert!(bad_request(json!({"hostz": []})).contains("unknown field"));
        assert!(bad_request(json!([1, 2])).contains("invalid type"));
        assert!(bad_request(json!({"revoke": {"host": host(1).as_str()}})).contains("reason"));
    }

    #[test]
    fn revoke_cannot_be_combined_with_hosts_or_force() {
        let revoke = json!({"host": host(1).as_str(), "reason": "KEY_COMPROMISE"});
        for payload in [
            json!({"revoke": revoke, "hosts": [host(1).as_str()]}),
            json!({"revoke": revoke, "force": true}),
        ] {
            assert_eq!(
                bad_request(payload),
                "revoke cannot be combined with hosts or force"
            );
        }
    }

    #[test]
    fn the_reconcile_schedules_payload_plans_the_hosts_in_flight_alone() {
        let r = parse(json!({"reconcile": true})).unwrap();
        assert_eq!(
            r,
            Request {
                scope: Scope::Reconcile,
                dry_run: false
            }
        );
        assert!(
            parse(json!({"reconcile": true, "dryRun": true}))
                .unwrap()
                .dry_run
        );
        assert_eq!(
            parse(json!({"reconcile": false})).unwrap().scope,
            Scope::Fleet
        );
        for payload in [
            json!({"reconcile": true, "hosts": [host(1).as_str()]}),
            json!({"reconcile": true, "force": true}),
            json!({"reconcile": true, "revoke": {"host": host(1).as_str(), "reason": "SUPERSEDED"}}),
        ] {
            assert_eq!(
                bad_request(payload),
                "reconcile cannot be combined with hosts, force, revoke or release"
            );
        }
    }

    #[test]
    fn force_needs_hosts() {
        assert_eq!(
            bad_request(json!({"force": true})),
            "force needs a list of hosts"
        );
    }

    #[test]
    fn an_invalid_host_in_the_list_is_a_bad_request() {
        let m = bad_request(json!({"hosts": [host(1).as_str(), "mi-1; reboot"]}));
        assert!(m.contains("managed-node ID"), "{m}");
    }

    #[test]
    fn a_revocation_of_an_invalid_host_or_reason_is_refused() {
        let m = refused(json!({"revoke": {"host": "mi-1; reboot", "reason": "KEY_COMPROMISE"}}));
        assert!(m.contains("managed-node ID"), "{m}");
        let m = refused(json!({"revoke": {"host": host(1).as_str(), "reason": "BECAUSE"}}));
        assert!(
            m.starts_with("invalid revocation reason \"BECAUSE\""),
            "{m}"
        );
        assert!(m.contains("KEY_COMPROMISE"), "{m}");
    }
}
