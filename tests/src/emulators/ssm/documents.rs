//! SSM Command documents, read from the CloudFormation template that deploys them.
//!
//! Why from the template: the tests must run the exact scripts production hosts will run, so the
//! emulator takes `Resources.<LogicalId>.Properties.Content` of the `AWS::SSM::Document`
//! resources, byte for byte, instead of a copy that could drift. The rest of the template is full
//! of CloudFormation tags (`!Ref`, `!Sub`, `!GetAtt` …); `serde_yaml` reads them as tagged values
//! and nothing here looks at them.
//!
//! Parameter checks follow SSM: an unknown parameter, a missing one without a default, or a value
//! that breaks `allowedPattern` / `allowedValues` / `minChars` / `maxChars` is `InvalidParameters`.
//! `allowedPattern` must match the whole value (SSM uses Java's `matches()`, which is anchored at
//! both ends), so the emulator wraps it in `^(?:…)$`.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde_yaml::Value as Yaml;

/// Why a template or document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The template file could not be read.
    #[error("cannot read template {path}: {source}")]
    Read {
        /// The template path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The template is not YAML.
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// A logical ID is missing or has no `Properties.Content`.
    #[error("template has no resource {0} with Properties.Content")]
    MissingResource(String),
    /// The document content breaks the schema 2.2 shape the emulator understands.
    #[error("document {document}: {reason}")]
    Invalid {
        /// The document name.
        document: String,
        /// What is wrong.
        reason: String,
    },
}

/// One document parameter (`parameters.<name>` in the document).
#[derive(Clone, Debug)]
pub struct ParameterSpec {
    /// `String`, `Integer`, `Boolean` or `StringList`.
    pub kind: String,
    /// `description`.
    pub description: Option<String>,
    /// `allowedPattern`, as written in the document.
    pub allowed_pattern: Option<String>,
    /// `allowedValues`.
    pub allowed_values: Option<Vec<String>>,
    /// `minChars`.
    pub min_chars: Option<usize>,
    /// `maxChars`.
    pub max_chars: Option<usize>,
    /// `default`; a parameter without one is required.
    pub default: Option<String>,
    pattern: Option<Regex>,
}

/// One `mainSteps` entry.
#[derive(Clone, Debug)]
pub struct Step {
    /// `action` (only `aws:runShellScript` runs).
    pub action: String,
    /// `name` (the plugin name in `GetCommandInvocation`).
    pub name: String,
    /// `inputs.runCommand`, each entry exactly as in the document.
    pub run_command: Vec<String>,
    /// `inputs.timeoutSeconds` (may hold a `{{ parameter }}`).
    pub timeout_seconds: Option<String>,
}

impl Step {
    /// The script the agent writes for this step: the `runCommand` entries, one per line.
    pub fn script(&self) -> String {
        self.run_command.join("\n")
    }
}

/// An SSM Command document (schema 2.2) as the emulator runs it.
#[derive(Clone, Debug)]
pub struct Document {
    /// The document name SendCommand refers to.
    pub name: String,
    /// `schemaVersion`.
    pub schema_version: String,
    /// `parameters`, by name.
    pub parameters: BTreeMap<String, ParameterSpec>,
    /// `mainSteps`, in order.
    pub steps: Vec<Step>,
}

fn scalar_string(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get<'a>(v: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    v.as_mapping().and_then(|m| m.get(key))
}

fn string_list(v: &Yaml) -> Option<Vec<String>> {
    match v {
        Yaml::Sequence(s) => s.iter().map(scalar_string).collect(),
        other => scalar_string(other).map(|s| vec![s]),
    }
}

impl Document {
    /// Reads a document from its content (the YAML mapping under `Properties.Content`, or a
    /// string holding YAML/JSON document text).
    pub fn from_content(name: &str, content: &Yaml) -> Result<Self, DocumentError> {
        let invalid = |reason: String| DocumentError::Invalid {
            document: name.to_string(),
            reason,
        };
        let parsed;
        let content = if let Yaml::String(text) = content {
            parsed = serde_yaml::from_str::<Yaml>(text)?;
            &parsed
        } else {
            content
        };
        let schema_version = get(content, "schemaVersion")
            .and_then(scalar_string)
            .ok_or_else(|| invalid("no schemaVersion".into()))?;
        if schema_version != "2.2" {
            return Err(invalid(format!(
                "schemaVersion {schema_version} (the emulator runs 2.2)"
            )));
        }
        let mut parameters = BTreeMap::new();
        if let Some(params) = get(content, "parameters") {
            let map = params
                .as_mapping()
                .ok_or_else(|| invalid("parameters is not a mapping".into()))?;
            for (k, v) in map {
                let pname = k
                    .as_str()
                    .ok_or_else(|| invalid("parameter name is not a string".into()))?
                    .to_string();
                let field = |f: &str| get(v, f);
                let kind = field("type")
                    .and_then(scalar_string)
                    .ok_or_else(|| invalid(format!("parameter {pname} has no type")))?;
                if !matches!(
                    kind.as_str(),
                    "String" | "Integer" | "Boolean" | "StringList"
                ) {
                    return Err(invalid(format!(
                        "parameter {pname} has type {kind} (emulator knows String, Integer, Boolean, StringList)"
                    )));
                }
                let default = match field("default") {
                    None | Some(Yaml::Null) => None,
                    Some(d) => Some(
                        match d {
                            Yaml::Sequence(_) => string_list(d).map(|l| l.join(",")),
                            other => scalar_string(other),
                        }
                        .ok_or_else(|| {
                            invalid(format!(
                                "parameter {pname} has a default that is not a plain value \
                                 (a CloudFormation intrinsic cannot be resolved here)"
                            ))
                        })?,
                    ),
                };
                let allowed_pattern = field("allowedPattern").and_then(scalar_string);
                let pattern = match &allowed_pattern {
                    Some(p) => Some(
                        regex::RegexBuilder::new(&format!("^(?:{p})$"))
                            .size_limit(256 << 20)
                            .build()
                            .map_err(|e| {
                                invalid(format!(
                                    "parameter {pname}: allowedPattern does not compile: {e}"
                                ))
                            })?,
                    ),
                    None => None,
                };
                let num = |f: &str| {
                    field(f)
                        .and_then(scalar_string)
                        .and_then(|s| s.parse::<usize>().ok())
                };
                parameters.insert(
                    pname,
                    ParameterSpec {
                        kind,
                        description: field("description").and_then(scalar_string),
                        allowed_pattern,
                        allowed_values: field("allowedValues").and_then(string_list),
                        min_chars: num("minChars"),
                        max_chars: num("maxChars"),
                        default,
                        pattern,
                    },
                );
            }
        }
        let steps_y = get(content, "mainSteps")
            .and_then(Yaml::as_sequence)
            .ok_or_else(|| invalid("no mainSteps".into()))?;
        let mut steps = Vec::new();
        for s in steps_y {
            let action = get(s, "action")
                .and_then(scalar_string)
                .ok_or_else(|| invalid("a step has no action".into()))?;
            let sname = get(s, "name")
                .and_then(scalar_string)
                .ok_or_else(|| invalid("a step has no name".into()))?;
            if action != "aws:runShellScript" {
                return Err(invalid(format!(
                    "step {sname}: action {action} (the emulator runs aws:runShellScript)"
                )));
            }
            let inputs = get(s, "inputs");
            let run_command = inputs
                .and_then(|i| get(i, "runCommand"))
                .and_then(string_list)
                .ok_or_else(|| invalid(format!("step {sname} has no inputs.runCommand")))?;
            steps.push(Step {
                action,
                name: sname,
                run_command,
                timeout_seconds: inputs
                    .and_then(|i| get(i, "timeoutSeconds"))
                    .and_then(scalar_string),
            });
        }
        if steps.is_empty() {
            return Err(invalid("mainSteps is empty".into()));
        }
        Ok(Self {
            name: name.to_string(),
            schema_version,
            parameters,
            steps,
        })
    }

    /// The whole script as the template holds it: every step's `runCommand` entries, one per line.
    pub fn script(&self) -> String {
        self.steps
            .iter()
            .map(Step::script)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Checks SendCommand's `Parameters` as SSM does and returns the value of every document
    /// parameter (defaults filled in). The error text is the `InvalidParameters` message.
    pub fn resolve_parameters(
        &self,
        given: &BTreeMap<String, Vec<String>>,
    ) -> Result<BTreeMap<String, String>, String> {
        for k in given.keys() {
            if !self.parameters.contains_key(k) {
                return Err(format!(
                    "document {} does not support parameter {k}",
                    self.name
                ));
            }
        }
        let mut out = BTreeMap::new();
        for (k, spec) in &self.parameters {
            let value = match given.get(k) {
                Some(vals) if spec.kind == "StringList" => {
                    for v in vals {
                        spec.check(k, v)?;
                    }
                    vals.join(",")
                }
                Some(vals) if vals.len() > 1 => {
                    return Err(format!(
                        "parameter {k} is of type {} and takes one value, got {}",
                        spec.kind,
                        vals.len()
                    ))
                }
                Some(vals) if vals.len() == 1 => {
                    spec.check(k, &vals[0])?;
                    vals[0].clone()
                }
                _ => match &spec.default {
                    Some(d) => d.clone(),
                    None => return Err(format!("document {} requires parameter {k}", self.name)),
                },
            };
            out.insert(k.clone(), value);
        }
        Ok(out)
    }
}

impl ParameterSpec {
    fn check(&self, name: &str, v: &str) -> Result<(), String> {
        if let Some(re) = &self.pattern {
            if !re.is_match(v) {
                return Err(format!(
                    "Parameter \"{name}\" value does not match allowedPattern {}",
                    self.allowed_pattern.as_deref().unwrap_or_default()
                ));
            }
        }
        if let Some(av) = &self.allowed_values {
            if !av.iter().any(|a| a == v) {
                return Err(format!(
                    "Parameter \"{name}\" value is not one of the allowed values"
                ));
            }
        }
        let n = v.chars().count();
        if self.min_chars.is_some_and(|m| n < m) || self.max_chars.is_some_and(|m| n > m) {
            return Err(format!("Parameter \"{name}\" value has a wrong length"));
        }
        match self.kind.as_str() {
            "Integer" if v.parse::<i64>().is_err() => {
                Err(format!("Parameter \"{name}\" is not an Integer"))
            }
            "Boolean" if v != "true" && v != "false" => {
                Err(format!("Parameter \"{name}\" is not a Boolean"))
            }
            _ => Ok(()),
        }
    }
}

/// The `Content` of resource `logical_id` in a parsed CloudFormation template.
pub fn template_content<'a>(template: &'a Yaml, logical_id: &str) -> Option<&'a Yaml> {
    get(template, "Resources")
        .and_then(|r| get(r, logical_id))
        .and_then(|r| get(r, "Properties"))
        .and_then(|p| get(p, "Content"))
}

/// Reads the `AWS::SSM::Document` resources `(logical_id, document_name)` from a CloudFormation
/// template, e.g. `[("GenerateCsrDocument", "certrotation-GenerateCsr")]`.
pub fn load_documents(
    template_path: impl AsRef<Path>,
    docs: &[(&str, &str)],
) -> Result<Vec<Document>, DocumentError> {
    let path = template_path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| DocumentError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let template: Yaml = serde_yaml::from_str(&text)?;
    docs.iter()
        .map(|(logical, name)| {
            let content = template_content(&template, logical)
                .ok_or_else(|| DocumentError::MissingResource(logical.to_string()))?;
            Document::from_content(name, content)
        })
        .collect()
}

/// Replaces `{{ name }}` / `{{name}}` with the parameter's value, as raw text (as SSM does).
/// References to names that are not parameters (e.g. `{{ssm:…}}`) stay as they are.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\{\{\s*([A-Za-z0-9_.:/-]+)\s*\}\}").expect("regex"));
    re.replace_all(text, |c: &regex::Captures<'_>| match values.get(&c[1]) {
        Some(v) => v.clone(),
        None => c[0].to_string(),
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
Resources:
  Topic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !Sub "${AWS::StackName}-alerts"
  Doc:
    Type: AWS::SSM::Document
    Properties:
      DocumentType: Command
      Name: !Sub "${AWS::StackName}-Doc"
      Content:
        schemaVersion: '2.2'
        description: test
        parameters:
          hostId:
            type: String
            description: host
            allowedPattern: '[a-z0-9-]{1,20}'
          executionTimeout:
            type: String
            default: 600
            allowedPattern: '^[0-9]{1,4}$'
        mainSteps:
          - action: aws:runShellScript
            name: run
            inputs:
              timeoutSeconds: '{{ executionTimeout }}'
              runCommand:
                - |
                  #!/bin/bash
                  echo "{{ hostId }} {{hostId}} {{ssm:x}}"
"#;

    fn doc() -> Document {
        let t: Yaml = serde_yaml::from_str(DOC).unwrap();
        Document::from_content("d", template_content(&t, "Doc").unwrap()).unwrap()
    }

    #[test]
    fn parses_and_keeps_script_bytes() {
        let d = doc();
        assert_eq!(
            d.script(),
            "#!/bin/bash\necho \"{{ hostId }} {{hostId}} {{ssm:x}}\"\n"
        );
        assert_eq!(
            d.parameters["executionTimeout"].default.as_deref(),
            Some("600")
        );
    }

    #[test]
    fn validates_like_ssm() {
        let d = doc();
        let p = |k: &str, v: &str| BTreeMap::from([(k.to_string(), vec![v.to_string()])]);
        assert!(
            d.resolve_parameters(&BTreeMap::new()).is_err(),
            "hostId required"
        );
        assert!(d.resolve_parameters(&p("hostId", "ab;rm")).is_err());
        // The pattern is not anchored in the document but must match the whole value.
        assert!(d.resolve_parameters(&p("hostId", "ok ok")).is_err());
        assert!(d.resolve_parameters(&p("other", "x")).is_err());
        let v = d.resolve_parameters(&p("hostId", "mi-1")).unwrap();
        assert_eq!(v["executionTimeout"], "600");
        assert_eq!(
            substitute(&d.script(), &v),
            "#!/bin/bash\necho \"mi-1 mi-1 {{ssm:x}}\"\n"
        );
    }
}
