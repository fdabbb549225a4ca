//! Records which AWS operations each function's clients call, with an SDK interceptor.
//!
//! The same record serves two checks: the benchmark's "AWS calls per rotation by operation", and
//! the least-privilege test, which compares what each function really called during the
//! end-to-end scenarios with the actions its IAM role in the template allows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Counts of `Service.Operation` per function (e.g. `"CertCheck"` → `"dynamodb.UpdateItem"` → 3).
#[derive(Debug, Clone, Default)]
pub struct CallRecorder {
    calls: Arc<Mutex<BTreeMap<String, BTreeMap<String, u64>>>>,
}

/// The interceptor for one function's clients.
#[derive(Debug, Clone)]
pub struct FunctionRecorder {
    function: &'static str,
    calls: Arc<Mutex<BTreeMap<String, BTreeMap<String, u64>>>>,
}

impl CallRecorder {
    /// A recorder with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// The interceptor to install on `function`'s clients.
    pub fn for_function(&self, function: &'static str) -> FunctionRecorder {
        FunctionRecorder {
            function,
            calls: self.calls.clone(),
        }
    }

    /// Everything recorded: function → `service.Operation` → count.
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.calls.lock().expect("recorder lock").clone()
    }

    /// The IAM actions `function` exercised (`dynamodb:UpdateItem`, `acm-pca:IssueCertificate`, …).
    pub fn iam_actions(&self, function: &str) -> std::collections::BTreeSet<String> {
        self.snapshot()
            .get(function)
            .into_iter()
            .flat_map(|ops| ops.keys())
            .map(|op| {
                let (service, action) = op.split_once('.').unwrap_or((op, ""));
                let prefix = match service {
                    "ACM PCA" => "acm-pca".to_owned(),
                    other => other.to_ascii_lowercase(),
                };
                format!("{prefix}:{action}")
            })
            .flat_map(|action| {
                // Calls that IAM authorises with a second action as well: GetObject with a
                // `versionId` (CRLProcessor reads the version its event names) needs
                // s3:GetObjectVersion, and ImportCrl with tags needs rolesanywhere:TagResource.
                let also = match action.as_str() {
                    "s3:GetObject" => Some("s3:GetObjectVersion"),
                    "rolesanywhere:ImportCrl" => Some("rolesanywhere:TagResource"),
                    _ => None,
                };
                std::iter::once(action).chain(also.map(str::to_owned))
            })
            .collect()
    }

    /// Total calls per `service.Operation` across functions.
    pub fn totals(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ops in self.snapshot().values() {
            for (op, n) in ops {
                *out.entry(op.clone()).or_default() += n;
            }
        }
        out
    }
}

impl Intercept for FunctionRecorder {
    fn name(&self) -> &'static str {
        "CallRecorder"
    }

    // Not `read_before_execution`: client interceptors run that before the operation's metadata
    // is in the config bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            let op = format!("{}.{}", m.service(), m.name());
            let mut calls = self.calls.lock().expect("recorder lock");
            *calls
                .entry(self.function.to_owned())
                .or_default()
                .entry(op)
                .or_default() += 1;
        }
        Ok(())
    }
}
