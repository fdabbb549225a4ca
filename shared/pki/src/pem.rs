//! A small, strict PEM reader (RFC 7468 "strict" textual encoding) shared by the CSR, certificate
//! and CRL checks.
//!
//! Why our own: the inputs come from places we do not control (Run Command stdout, S3 objects,
//! API answers), so we want exact rules: markers must stand alone on their line (surrounding
//! whitespace and `\r` are tolerated), the body is base64 only (no RFC 1421 headers), every block
//! is closed, and the caller chooses the label. Blocks with other labels are skipped untouched.

use base64::Engine as _;

/// Why a PEM block could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// A `BEGIN` marker has no matching `END` marker (for example the output was truncated).
    #[error("-----BEGIN {label}----- has no matching END line (truncated output?)")]
    Unterminated {
        /// The PEM label, e.g. `CERTIFICATE REQUEST`.
        label: String,
    },
    /// A second `BEGIN` marker appears before the first block is closed.
    #[error("-----BEGIN {label}----- appears inside another {label} block")]
    NestedBegin {
        /// The PEM label.
        label: String,
    },
    /// A line inside the block is not base64 (headers are not accepted either).
    #[error("line {line} inside the {label} block is not base64")]
    NotBase64Line {
        /// The PEM label.
        label: String,
        /// 1-based line number in the input.
        line: usize,
    },
    /// The base64 body does not decode.
    #[error("the {label} block's base64 body does not decode")]
    Base64 {
        /// The PEM label.
        label: String,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// The block has no content at all.
    #[error("the {label} block is empty")]
    Empty {
        /// The PEM label.
        label: String,
    },
}

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PemBlock {
    /// The decoded bytes (normally DER).
    pub der: Vec<u8>,
}

impl PemBlock {
    /// The block re-encoded canonically: base64 wrapped at 64 columns, `\n` line ends, final `\n`.
    pub fn to_pem(&self, label: &str) -> String {
        encode(label, &self.der)
    }
}

/// Encodes DER bytes as a canonical PEM block.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // base64 output is ASCII, so splitting on byte boundaries is safe.
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Every block labelled `label` in `input`, in order. Text outside blocks is ignored; a malformed
/// block is an error (we never silently skip something that claims to be what we look for).
pub(crate) fn blocks(input: &str, label: &str) -> Result<Vec<PemBlock>, PemError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut found = Vec::new();
    // Some(body) while inside a block.
    let mut body: Option<String> = None;

    for (index, raw_line) in input.split('\n').enumerate() {
        let line = raw_line.trim();
        match body.as_mut() {
            None => {
                if line == begin {
                    body = Some(String::new());
                }
            }
            Some(text) => {
                if line == end {
                    let text = std::mem::take(text);
                    body = None;
                    if text.is_empty() {
                        return Err(PemError::Empty {
                            label: label.to_owned(),
                        });
                    }
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(text.as_bytes())
                        .map_err(|source| PemError::Base64 {
                            label: label.to_owned(),
                            source,
                        })?;
                    if der.is_empty() {
                        return Err(PemError::Empty {
                            label: label.to_owned(),
                        });
                    }
                    found.push(PemBlock { der });
                } else if line == begin {
                    return Err(PemError::NestedBegin {
                        label: label.to_owned(),
                    });
                } else if line
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
                {
                    text.push_str(line);
                } else {
                    return Err(PemError::NotBase64Line {
                        label: label.to_owned(),
                        line: index + 1,
                    });
                }
            }
        }
    }
    if body.is_some() {
        return Err(PemError::Unterminated {
            label: label.to_owned(),
        });
    }
    Ok(found)
}

/// The distinct blocks labelled `label`, in first-seen order (an identical block printed twice
/// counts once).
pub(crate) fn distinct_blocks(input: &str, label: &str) -> Result<Vec<PemBlock>, PemError> {
    let mut out: Vec<PemBlock> = Vec::new();
    for block in blocks(input, label)? {
        if !out.iter().any(|b| b.der == block.der) {
            out.push(block);
        }
    }
    Ok(out)
}

/// Whether `bytes` looks like PEM text (after leading whitespace it starts with `-----BEGIN `).
pub(crate) fn looks_like_pem(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes[start..].starts_with(b"-----BEGIN ")
}

/// A short, printable rendering of untrusted text for error messages: at most `max` characters,
/// control characters escaped by `{:?}` at the call site.
pub(crate) fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL: &str = "THING";

    #[test]
    fn round_trip_and_noise() {
        let pem = encode(LABEL, &[1, 2, 3, 250]);
        let noisy = format!("hello\r\n  {}\r\nbye", pem.replace('\n', "\r\n"));
        let got = blocks(&noisy, LABEL).unwrap();
        assert_eq!(
            got,
            vec![PemBlock {
                der: vec![1, 2, 3, 250]
            }]
        );
        assert_eq!(got[0].to_pem(LABEL), pem);
    }

    #[test]
    fn other_labels_are_skipped() {
        let pem = format!("{}{}", encode("OTHER", &[9]), encode(LABEL, &[7]));
        assert_eq!(
            blocks(&pem, LABEL).unwrap(),
            vec![PemBlock { der: vec![7] }]
        );
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            blocks("-----BEGIN THING-----\nAAAA\n", LABEL),
            Err(PemError::Unterminated { .. })
        ));
        assert!(matches!(
            blocks("-----BEGIN THING-----\n-----BEGIN THING-----\n", LABEL),
            Err(PemError::NestedBegin { .. })
        ));
        assert!(matches!(
            blocks(
                "-----BEGIN THING-----\nProc-Type: 4\n-----END THING-----\n",
                LABEL
            ),
            Err(PemError::NotBase64Line { line: 2, .. })
        ));
        assert!(matches!(
            blocks("-----BEGIN THING-----\nAAA\n-----END THING-----\n", LABEL),
            Err(PemError::Base64 { .. })
        ));
        assert!(matches!(
            blocks("-----BEGIN THING-----\n-----END THING-----\n", LABEL),
            Err(PemError::Empty { .. })
        ));
    }

    #[test]
    fn duplicates_count_once() {
        let one = encode(LABEL, &[1]);
        let two = encode(LABEL, &[2]);
        assert_eq!(
            distinct_blocks(&format!("{one}{one}"), LABEL)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            distinct_blocks(&format!("{one}{two}{one}"), LABEL)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn short_truncates() {
        assert_eq!(short("abc", 5), "abc");
        assert_eq!(short("abcdef", 3), "abc…");
    }

    #[test]
    fn pem_sniffing() {
        assert!(looks_like_pem(b"\n -----BEGIN X509 CRL-----"));
        assert!(!looks_like_pem(&[0x30, 0x82]));
    }
}
