//! Run Command as the [`HostAgent`]: our two documents, every value a document parameter that
//! the document constrains with `allowedPattern`; nothing is spliced into a shell command here.

use std::collections::HashMap;

use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::{
    CommandFilter, CommandFilterKey, CommandInvocationStatus, InstanceInformationStringFilter,
    PingStatus,
};
use rotation::error::AwsError;
use rotation::hosts::{
    base64_of, csr_comment, deploy_comment, parameters_name, CsrBatch, DeployBatch, Document,
    HostAgent, Invocation, Reachability, CERTIFICATES_PARAMETER, DEPLOY_PARAMETER_BUDGET,
    MAX_HOSTS_PER_COMMAND, ROTATIONS_PARAMETER,
};
use state::{HostId, RotationId};

use crate::error::aws_error;

/// The SSM-backed [`HostAgent`].
#[derive(Debug, Clone)]
pub struct SsmHosts {
    client: aws_sdk_ssm::Client,
    generate_csr_document: String,
    deploy_cert_document: String,
}

impl SsmHosts {
    /// An agent sending our two documents.
    pub fn new(
        client: aws_sdk_ssm::Client,
        generate_csr_document: impl Into<String>,
        deploy_cert_document: impl Into<String>,
    ) -> Self {
        SsmHosts {
            client,
            generate_csr_document: generate_csr_document.into(),
            deploy_cert_document: deploy_cert_document.into(),
        }
    }

    /// One command to `hosts`. Every host gets it whatever the others do: `MaxErrors` at 100%
    /// (its default, 0, would stop the command at the first host that fails) and
    /// `MaxConcurrency` at 100%.
    async fn send(
        &self,
        document: &str,
        hosts: impl Iterator<Item = &HostId>,
        comment: String,
        params: Vec<(&'static str, String)>,
    ) -> Result<String, AwsError> {
        let mut req = self
            .client
            .send_command()
            .document_name(document)
            .set_instance_ids(Some(hosts.map(|h| h.as_str().to_owned()).collect()))
            .max_concurrency("100%")
            .max_errors("100%")
            .timeout_seconds(600)
            .comment(comment);
        for (k, v) in params {
            req = req.parameters(k, vec![v]);
        }
        let out = req
            .send()
            .await
            .map_err(|e| aws_error("SSM", "SendCommand", e))?;
        out.command()
            .and_then(|c| c.command_id())
            .map(str::to_owned)
            .ok_or_else(|| AwsError::malformed("SSM", "SendCommand", "no command ID in the answer"))
    }
}

impl HostAgent for SsmHosts {
    async fn reachability(
        &self,
        hosts: &[HostId],
    ) -> Result<HashMap<HostId, Reachability>, AwsError> {
        let mut out: HashMap<HostId, Reachability> = hosts
            .iter()
            .map(|h| (h.clone(), Reachability::Unknown))
            .collect();
        for chunk in hosts.chunks(50) {
            let filter = InstanceInformationStringFilter::builder()
                .key("InstanceIds")
                .set_values(Some(chunk.iter().map(|h| h.as_str().to_owned()).collect()))
                .build()
                .map_err(|e| {
                    AwsError::malformed("SSM", "DescribeInstanceInformation", e.to_string())
                })?;
            let mut token = None;
            loop {
                let page = self
                    .client
                    .describe_instance_information()
                    .filters(filter.clone())
                    .max_results(50)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| aws_error("SSM", "DescribeInstanceInformation", e))?;
                for info in page.instance_information_list() {
                    let Some(id) = info.instance_id().and_then(|i| HostId::parse(i).ok()) else {
                        continue;
                    };
                    let r = match info.ping_status() {
                        Some(PingStatus::Online) => Reachability::Online,
                        Some(other) => Reachability::Offline(other.as_str().to_owned()),
                        None => Reachability::Offline("no ping status".into()),
                    };
                    out.insert(id, r);
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    async fn request_csrs(&self, batch: &CsrBatch<'_>) -> Result<String, AwsError> {
        if batch.rotations.is_empty() || batch.rotations.len() > MAX_HOSTS_PER_COMMAND {
            return Err(AwsError::malformed(
                "SSM",
                "SendCommand",
                format!(
                    "a GenerateCsr batch takes 1 to {MAX_HOSTS_PER_COMMAND} hosts, not {}",
                    batch.rotations.len()
                ),
            ));
        }
        self.send(
            &self.generate_csr_document,
            batch.hosts(),
            csr_comment(batch.rotations.len()),
            vec![
                (ROTATIONS_PARAMETER, batch.rotations_parameter()),
                ("keyPath", batch.key_path.to_string()),
                ("csrPath", batch.csr_path.to_string()),
                ("keyAlgorithm", batch.key_algorithm.to_string()),
            ],
        )
        .await
    }

    async fn deploy(&self, batch: &DeployBatch<'_>) -> Result<String, AwsError> {
        let chain = base64_of(batch.chain_pem);
        let certificates = batch.certificates_parameter();
        if batch.entries.is_empty()
            || batch.entries.len() > MAX_HOSTS_PER_COMMAND
            || certificates.len() + chain.len() > DEPLOY_PARAMETER_BUDGET
        {
            return Err(AwsError::malformed(
                "SSM",
                "SendCommand",
                format!(
                    "a DeployCert batch takes 1 to {MAX_HOSTS_PER_COMMAND} hosts within \
                     {DEPLOY_PARAMETER_BUDGET} characters of certificates and chain, not {} \
                     hosts in {}",
                    batch.entries.len(),
                    certificates.len() + chain.len()
                ),
            ));
        }
        let ra = batch.roles_anywhere;
        self.send(
            &self.deploy_cert_document,
            batch.hosts(),
            deploy_comment(batch.entries.len()),
            vec![
                ("certPath", batch.cert_path.to_string()),
                ("keyPath", batch.key_path.to_string()),
                ("cacertPath", batch.cacert_path.to_string()),
                ("signingHelperPath", batch.signing_helper_path.to_string()),
                (CERTIFICATES_PARAMETER, certificates),
                ("chain", chain),
                (
                    "requireSigningHelper",
                    ra.require_signing_helper.to_string(),
                ),
                ("trustAnchorArn", ra.trust_anchor_arn.clone()),
                ("profileArn", ra.profile_arn.clone()),
                ("roleArn", ra.role_arn.clone()),
                (
                    "reloadHook",
                    batch
                        .reload_hook
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                ),
            ],
        )
        .await
    }

    async fn invocation(&self, command_id: &str, host: &HostId) -> Result<Invocation, AwsError> {
        let out = match self
            .client
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(host.as_str())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error().and_then(|s| s.code())
                    == Some("InvocationDoesNotExist") =>
            {
                return Ok(Invocation::Pending)
            }
            Err(e) => return Err(aws_error("SSM", "GetCommandInvocation", e)),
        };
        let status = out
            .status()
            .cloned()
            .unwrap_or(CommandInvocationStatus::Pending);
        let finished = rotation::events::is_final_status(status.as_str());
        Ok(if finished {
            Invocation::Finished {
                success: status == CommandInvocationStatus::Success,
                status: status.as_str().to_owned(),
                stdout: out.standard_output_content().unwrap_or_default().to_owned(),
                stderr: out.standard_error_content().unwrap_or_default().to_owned(),
            }
        } else {
            Invocation::Pending
        })
    }

    async fn command_for(
        &self,
        host: &HostId,
        document: Document,
        rotation: &RotationId,
    ) -> Result<Option<String>, AwsError> {
        let name = match document {
            Document::GenerateCsr => &self.generate_csr_document,
            Document::DeployCert => &self.deploy_cert_document,
        };
        let filter = CommandFilter::builder()
            .key(CommandFilterKey::DocumentName)
            .value(name)
            .build()
            .map_err(|e| AwsError::malformed("SSM", "ListCommands", e.to_string()))?;
        // Newest first: the rotation's command is among the host's latest of this document.
        // ListCommands, not ListCommandInvocations: only a command carries its parameters,
        // and a GenerateCsr names its hosts' rotations nowhere else.
        let out = self
            .client
            .list_commands()
            .instance_id(host.as_str())
            .filters(filter)
            .max_results(50)
            .send()
            .await
            .map_err(|e| aws_error("SSM", "ListCommands", e))?;
        Ok(out
            .commands()
            .iter()
            .find(|c| {
                c.parameters()
                    .is_some_and(|p| parameters_name(p, host, rotation))
            })
            .and_then(|c| c.command_id())
            .map(str::to_owned))
    }
}
