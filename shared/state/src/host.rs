//! Validation of host identifiers and host paths read from the table.
//!
//! Items are written by admins (console, CLI, scripts) and by the original sample. A value that
//! later becomes a Run Command parameter must be harmless in a shell even before SSM's own
//! `allowedPattern` check, so we accept an allow-list of characters rather than reject a
//! deny-list of metacharacters. A row that fails is reported with its reason and skipped; the
//! other hosts go on.

use std::fmt;

/// Longest path we accept: well under Linux's `PATH_MAX`, and far under any document parameter limit.
pub const MAX_PATH_LEN: usize = 255;

/// A Systems Manager managed-node ID: a hybrid node (`mi-` + 17 hex) or an EC2 instance
/// (`i-` + 8 or 17 hex). Lower-case hex only, as SSM prints them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(String);

impl HostId {
    /// Checks `raw` and wraps it.
    pub fn parse(raw: &str) -> Result<Self, InvalidRow> {
        let ok = match raw.split_once('-') {
            Some(("mi", hex)) => hex.len() == 17 && is_lower_hex(hex),
            Some(("i", hex)) => (hex.len() == 8 || hex.len() == 17) && is_lower_hex(hex),
            _ => false,
        };
        if ok {
            Ok(HostId(raw.to_owned()))
        } else {
            Err(InvalidRow::HostId { shown: shown(raw) })
        }
    }

    /// The ID as SSM and the table spell it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An absolute directory path on a host, safe to hand to a document parameter: `/` followed by
/// letters, digits, `.`, `_`, `/`, `+` and `-` only, no `..` component, at most
/// [`MAX_PATH_LEN`] bytes. Trailing slashes are dropped (except for `/` itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPath(String);

impl HostPath {
    /// Checks a path given for `attribute` (used in the error message).
    pub fn parse(attribute: &'static str, raw: &str) -> Result<Self, InvalidRow> {
        let refuse = |why: &'static str| InvalidRow::Path {
            attribute,
            shown: shown(raw),
            why,
        };
        if raw.len() > MAX_PATH_LEN {
            return Err(refuse("longer than 255 bytes"));
        }
        if !raw.starts_with('/') {
            return Err(refuse("not an absolute path"));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '+' | '-')))
        {
            return Err(match bad {
                c if c.is_whitespace() => refuse("contains whitespace"),
                '\'' | '"' => refuse("contains a quote"),
                '$' | '`' => refuse("contains a shell expansion character"),
                ';' | '&' | '|' => refuse("contains a shell command separator"),
                _ => refuse("contains a character outside [A-Za-z0-9._/+-]"),
            });
        }
        if raw.split('/').any(|part| part == "..") {
            return Err(refuse("contains a '..' component"));
        }
        let trimmed = raw.trim_end_matches('/');
        Ok(HostPath(if trimmed.is_empty() {
            "/".to_owned()
        } else {
            trimmed.to_owned()
        }))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a table row was refused. Messages never echo more than a short, escaped prefix of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRow {
    /// The `hostID` is not a managed-node ID.
    #[error("hostID {shown} is not a managed-node ID (mi- followed by 17 hex digits, or i- followed by 8 or 17)")]
    HostId {
        /// An escaped, truncated rendering of the value.
        shown: String,
    },
    /// A path attribute is unsafe or malformed.
    #[error("{attribute} {shown} is refused: {why}")]
    Path {
        /// The attribute name.
        attribute: &'static str,
        /// An escaped, truncated rendering of the value.
        shown: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// An attribute has the wrong DynamoDB type.
    #[error("{attribute} must be a {expected}")]
    WrongType {
        /// The attribute name.
        attribute: &'static str,
        /// The expected DynamoDB type.
        expected: &'static str,
    },
    /// An attribute's value cannot be understood.
    #[error("{attribute} {shown} is refused: {why}")]
    BadValue {
        /// The attribute name.
        attribute: &'static str,
        /// An escaped, truncated rendering of the value.
        shown: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A short, escaped rendering of an untrusted value for messages and logs.
pub fn shown(raw: &str) -> String {
    const MAX: usize = 48;
    let mut out: String = raw
        .chars()
        .take(MAX)
        .flat_map(char::escape_default)
        .collect();
    if raw.chars().count() > MAX {
        out.push_str(&format!("… ({} bytes)", raw.len()));
    }
    format!("\"{out}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids() {
        for ok in ["mi-0123456789abcdef0", "i-0123abcd", "i-0123456789abcdef0"] {
            assert!(HostId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "mi-0123456789ABCDEF0",
            "mi-0123456789abcdef",
            "i-0123abc",
            "x-0123456789abcdef0",
            "mi-0123456789abcdef0;",
            "mi-0123456789abcdef0\n",
        ] {
            assert!(HostId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            HostPath::parse("certPath", "/etc/pki/").unwrap().as_str(),
            "/etc/pki"
        );
        assert_eq!(HostPath::parse("certPath", "/").unwrap().as_str(), "/");
        for (bad, why) in [
            ("etc/pki", "absolute"),
            ("/etc/../root", ".."),
            ("/etc/pki dir", "whitespace"),
            ("/etc/$(reboot)", "expansion"),
            ("/etc/`id`", "expansion"),
            ("/etc/a;b", "separator"),
            ("/etc/'a'", "quote"),
            ("/etc/a\nb", "whitespace"),
        ] {
            let err = HostPath::parse("certPath", bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let long = format!("/{}", "a".repeat(10_000));
        let err = HostPath::parse("keyPath", &long).unwrap_err().to_string();
        assert!(err.len() < 200 && err.contains("255"), "{err}");
    }
}
