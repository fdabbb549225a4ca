//! CreateSession (`POST /sessions`): the request signed with a host's X.509 key as AWS documents
//! it (IAM Roles Anywhere user guide, "Signing process"), the checks the service makes, and the
//! credential set it answers.
//!
//! Why apart: this is what turns a host's certificate into AWS credentials, the step the whole
//! rotation exists for. A third-party client (PyPI `iam-rolesanywhere-session`, the emulated
//! hosts' `aws_signing_helper`) signs the requests this module checks, so a mistake in either
//! reading of the protocol shows as a refusal.
//!
//! The request:
//! - `X-Amz-X509`: the signing certificate, base64 DER; `X-Amz-X509-Chain` (optional): the
//!   intermediates, base64 DER separated by commas; `X-Amz-Date`: `yyyymmddThhmmssZ`.
//! - `Authorization: <alg> Credential=<serial in decimal>/<yyyymmdd>/<region>/rolesanywhere/aws4_request,
//!   SignedHeaders=<h1;h2;…>, Signature=<hex>`, `<alg>` `AWS4-X509-RSA-SHA256` (RSA PKCS#1 v1.5)
//!   or `AWS4-X509-ECDSA-SHA256` (ECDSA, DER signature), both over SHA-256.
//! - The canonical request and the string to sign are SigV4's: method, path, sorted query,
//!   `name:value` lines of the signed headers, the signed header list, the body's SHA-256 in
//!   hex; then `<alg>\n<X-Amz-Date>\n<scope>\n<hex SHA-256 of the canonical request>`. The
//!   signed headers must include `host`, `x-amz-date` and `x-amz-x509` (and `x-amz-x509-chain`
//!   when sent), or a certificate could be swapped under a signature.
//!
//! The checks, in order, and their answers (the codes CreateSession documents; the messages
//! follow the service's where known, "Untrusted signing certificate" and "Invalid signature"):
//! 1. the body's members (`profileArn`, `roleArn`, `trustAnchorArn` required, `durationSeconds`
//!    900–43200): `ValidationException` (400);
//! 2. the signature: header shapes, algorithm against the key type, the credential's serial
//!    against the certificate's, date within 5 minutes of now, region and service, the signature
//!    against the presented certificate's public key: `AccessDeniedException` (403);
//! 3. the trust anchor exists (`ResourceNotFoundException`, 404) and is enabled;
//! 4. the certificate chains (through the intermediates) to the anchor's source CA, and every
//!    certificate of the path is valid now: `AccessDeniedException` "Untrusted signing
//!    certificate";
//! 5. its serial is on none of the anchor's enabled CRLs issued by its issuer:
//!    `AccessDeniedException`;
//! 6. the profile exists (404) and is enabled, lists the role, and the role exists: 403.
//!
//! Success is 201 `{credentialSet: [{assumedRoleUser, credentials: {accessKeyId,
//! secretAccessKey, sessionToken, expiration}, packedPolicySize, roleArn, sourceIdentity}],
//! subjectArn}`; the session lasts `durationSeconds` (default 3600) capped by the profile's
//! `durationSeconds` and the role's `MaxSessionDuration` (the emulator caps silently; whether
//! the service refuses a longer request instead is not documented).
//!
//! Emulator limits: the canonical URI is the path as sent (no re-encoding; `/sessions` needs
//! none); no `roleSessionName`, session policies, instance properties, attribute mappings or
//! FIPS endpoints; a CRL's signature is not checked (its issuer name is).

use base64::Engine as _;
use hyper::http::request::Parts;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use super::{State, TrustAnchor};
use crate::emulators::wire::{self, ApiError};
use crate::emulators::{event_time, uuid_v4, ACCOUNT, REGION};

/// The RSA signing algorithm of the Roles Anywhere signing process.
pub const ALG_RSA: &str = "AWS4-X509-RSA-SHA256";
/// The ECDSA signing algorithm of the Roles Anywhere signing process.
pub const ALG_ECDSA: &str = "AWS4-X509-ECDSA-SHA256";
/// How far `X-Amz-Date` may be from the emulator's clock.
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);
/// Shortest and longest `durationSeconds` the API accepts.
pub const DURATION_RANGE: std::ops::RangeInclusive<i64> = 900..=43_200;
/// Session length when the request gives no `durationSeconds`.
pub const DEFAULT_DURATION_SECONDS: i64 = 3600;

/// A Roles Anywhere profile as the emulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileView {
    /// `arn:aws:rolesanywhere:<region>:<account>:profile/<uuid>`.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// Whether CreateSession may use it.
    pub enabled: bool,
    /// Longest session it grants.
    pub duration_seconds: i64,
    /// The roles a session may assume through it.
    pub role_arns: Vec<String>,
}

/// An IAM role a profile can name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleView {
    /// `arn:aws:iam::<account>:role/<name>`.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// `MaxSessionDuration`, seconds.
    pub max_session_duration: i64,
}

/// What a test gives to create a profile.
#[derive(Clone, Debug)]
pub struct ProfileSpec {
    /// Its name.
    pub name: String,
    /// Whether it starts enabled.
    pub enabled: bool,
    /// Longest session it grants (the template's `DurationSeconds`).
    pub duration_seconds: i64,
    /// The roles it lets a session assume.
    pub role_arns: Vec<String>,
}

/// One CreateSession call, for test assertions (no secrets kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionAttempt {
    /// The presented certificate's serial as colon-separated hex (empty if none could be read).
    pub serial: String,
    /// Its subject (RFC 4514-like, as x509-parser prints it).
    pub subject: String,
    /// `profileArn` as sent.
    pub profile_arn: String,
    /// `roleArn` as sent.
    pub role_arn: String,
    /// When it happened.
    pub at: OffsetDateTime,
    /// The session's expiration, or the error code and message the call got.
    pub outcome: Result<OffsetDateTime, (String, String)>,
}

fn denied(message: impl Into<String>) -> ApiError {
    ApiError::with_status(403, "AccessDeniedException", message)
}

fn untrusted(detail: impl std::fmt::Display) -> ApiError {
    denied(format!("Untrusted signing certificate: {detail}"))
}

fn invalid_signature(detail: impl std::fmt::Display) -> ApiError {
    denied(format!("Invalid signature: {detail}"))
}

/// The parts of the `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Authorization {
    pub(crate) algorithm: String,
    pub(crate) serial: String,
    pub(crate) scope: String,
    pub(crate) date: String,
    pub(crate) region: String,
    pub(crate) service: String,
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: Vec<u8>,
}

/// Parses `<alg> Credential=<serial>/<date>/<region>/<service>/aws4_request, SignedHeaders=…, Signature=…`.
pub(crate) fn parse_authorization(h: &str) -> Result<Authorization, String> {
    let (algorithm, rest) = h
        .trim()
        .split_once(' ')
        .ok_or("no algorithm before the credential")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or("a part without '='")?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return Err(format!("unknown part {k}")),
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let fields: Vec<&str> = credential.split('/').collect();
    let [serial, date, region, service, "aws4_request"] = fields.as_slice() else {
        return Err(format!(
            "Credential must be <serial>/<date>/<region>/<service>/aws4_request, got {credential}"
        ));
    };
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the credential's serial must be the certificate's serial in decimal, got {serial}"
        ));
    }
    let signed_headers: Vec<String> = signed
        .ok_or("no SignedHeaders")?
        .split(';')
        .map(str::to_string)
        .collect();
    let signature = hex::decode(signature.ok_or("no Signature")?)
        .map_err(|e| format!("Signature is not hex: {e}"))?;
    Ok(Authorization {
        algorithm: algorithm.to_string(),
        serial: (*serial).to_string(),
        scope: fields[1..].join("/"),
        date: (*date).to_string(),
        region: (*region).to_string(),
        service: (*service).to_string(),
        signed_headers,
        signature,
    })
}

/// A header's value for the canonical request: every value of the header joined with `,`,
/// trimmed, runs of spaces collapsed.
fn canonical_value(parts: &Parts, name: &str) -> Option<String> {
    let values: Vec<String> = parts
        .headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// SigV4's canonical request of `parts` and `body` over `signed_headers`.
pub(crate) fn canonical_request(
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
) -> String {
    let mut q: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    q.sort_unstable();
    let mut lines = String::new();
    for (k, v) in headers {
        lines.push_str(&format!("{k}:{v}\n"));
    }
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    format!(
        "{method}\n{path}\n{}\n{lines}\n{}\n{}",
        q.join("&"),
        names.join(";"),
        hex::encode(Sha256::digest(body))
    )
}

/// SigV4's string to sign.
pub(crate) fn string_to_sign(
    algorithm: &str,
    amz_date: &str,
    scope: &str,
    canonical: &str,
) -> String {
    format!(
        "{algorithm}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

fn decode_der(b64: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("not base64: {e}"))
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], c)) => Ok(c),
        Ok(_) => Err("trailing bytes after the certificate".into()),
        Err(e) => Err(format!("not an X.509 certificate: {e}")),
    }
}

/// The key type of a certificate's public key, as the signing process names it.
fn key_type(cert: &X509Certificate<'_>) -> Option<&'static str> {
    let oid = &cert.public_key().algorithm.algorithm;
    if *oid == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        Some(ALG_RSA)
    } else if *oid == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY {
        Some(ALG_ECDSA)
    } else {
        None
    }
}

/// Whether `signature` over `message` verifies with the certificate's public key.
fn signature_verifies(cert: &X509Certificate<'_>, message: &[u8], signature: &[u8]) -> bool {
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
    let key = cert.public_key().subject_public_key.data.as_ref();
    let alg: &'static dyn VerificationAlgorithm = match key_type(cert) {
        Some(ALG_RSA) => &signature::RSA_PKCS1_2048_8192_SHA256,
        // The uncompressed point's length tells the curve.
        Some(ALG_ECDSA) if key.len() == 65 => &signature::ECDSA_P256_SHA256_ASN1,
        Some(ALG_ECDSA) if key.len() == 97 => &signature::ECDSA_P384_SHA256_ASN1,
        _ => return false,
    };
    UnparsedPublicKey::new(alg, key)
        .verify(message, signature)
        .is_ok()
}

/// Checks the signature of the request; returns the signing certificate's DER and the
/// intermediates' DERs.
fn authenticate(
    parts: &Parts,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), ApiError> {
    let auth =
        header(parts, "authorization").ok_or_else(|| denied("Missing Authentication Token"))?;
    let auth = parse_authorization(auth).map_err(invalid_signature)?;
    if auth.algorithm != ALG_RSA && auth.algorithm != ALG_ECDSA {
        return Err(invalid_signature(format!(
            "unsupported algorithm {} (expected {ALG_RSA} or {ALG_ECDSA})",
            auth.algorithm
        )));
    }
    let x509 = header(parts, "x-amz-x509")
        .ok_or_else(|| invalid_signature("no X-Amz-X509 header (the signing certificate)"))?;
    let leaf_der = decode_der(x509).map_err(|e| invalid_signature(format!("X-Amz-X509 {e}")))?;
    let chain_der: Vec<Vec<u8>> = match header(parts, "x-amz-x509-chain") {
        None => Vec::new(),
        Some(c) => c
            .split(',')
            .map(decode_der)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid_signature(format!("X-Amz-X509-Chain {e}")))?,
    };
    let leaf = parse_cert(&leaf_der).map_err(|e| invalid_signature(format!("X-Amz-X509 {e}")))?;
    if key_type(&leaf) != Some(auth.algorithm.as_str()) {
        return Err(invalid_signature(format!(
            "{} does not match the certificate's key type",
            auth.algorithm
        )));
    }
    if leaf.tbs_certificate.serial.to_string() != auth.serial {
        return Err(invalid_signature(format!(
            "the credential names serial {} but the certificate's is {}",
            auth.serial, leaf.tbs_certificate.serial
        )));
    }
    if auth.region != REGION || auth.service != "rolesanywhere" {
        return Err(invalid_signature(format!(
            "credential scope {} is not {REGION}/rolesanywhere",
            auth.scope
        )));
    }
    for required in ["host", "x-amz-date", "x-amz-x509"]
        .into_iter()
        .chain((!chain_der.is_empty()).then_some("x-amz-x509-chain"))
    {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(invalid_signature(format!(
                "{required} is not among the signed headers"
            )));
        }
    }
    let amz_date = header(parts, "x-amz-date").ok_or_else(|| invalid_signature("no X-Amz-Date"))?;
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let signed_at = time::PrimitiveDateTime::parse(amz_date, fmt)
        .map_err(|_| invalid_signature(format!("X-Amz-Date {amz_date} is not yyyymmddThhmmssZ")))?
        .assume_utc();
    if !amz_date.starts_with(&auth.date) || auth.date.len() != 8 {
        return Err(invalid_signature(format!(
            "the credential's date {} is not X-Amz-Date's day",
            auth.date
        )));
    }
    if (now - signed_at).abs() > MAX_CLOCK_SKEW {
        return Err(invalid_signature(format!(
            "signature expired or not yet current: X-Amz-Date {amz_date} is more than 5 minutes from now"
        )));
    }
    let mut headers = Vec::new();
    let mut sorted = auth.signed_headers.clone();
    sorted.sort();
    if sorted != auth.signed_headers {
        return Err(invalid_signature("SignedHeaders are not sorted"));
    }
    for name in &auth.signed_headers {
        let v = canonical_value(parts, name)
            .ok_or_else(|| invalid_signature(format!("signed header {name} is missing")))?;
        headers.push((name.clone(), v));
    }
    let canonical = canonical_request(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query(),
        &headers,
        body,
    );
    let sts = string_to_sign(&auth.algorithm, amz_date, &auth.scope, &canonical);
    if !signature_verifies(&leaf, sts.as_bytes(), &auth.signature) {
        return Err(invalid_signature(
            "the signature does not verify with the presented certificate's public key",
        ));
    }
    Ok((leaf_der, chain_der))
}

/// The certificates from the signing certificate up to (not including) the anchor's CA, each
/// signed by the next; every one of them and the CA valid at `now`.
fn chain_to_anchor(
    leaf: &X509Certificate<'_>,
    intermediates: &[X509Certificate<'_>],
    ca: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let at = x509_parser::time::ASN1Time::from(now);
    let valid = |c: &X509Certificate<'_>, what: &str| {
        if c.validity().is_valid_at(at) {
            Ok(())
        } else {
            Err(untrusted(format!(
                "the {what} {} is not valid now (notBefore {}, notAfter {})",
                c.subject(),
                c.validity().not_before,
                c.validity().not_after
            )))
        }
    };
    valid(leaf, "certificate")?;
    valid(ca, "trust anchor's CA certificate")?;
    let mut current = leaf;
    for _ in 0..=intermediates.len() {
        if current.issuer() == ca.subject()
            && current.verify_signature(Some(ca.public_key())).is_ok()
        {
            return Ok(());
        }
        let next = intermediates.iter().find(|i| {
            i.subject() == current.issuer()
                && i.is_ca()
                && current.verify_signature(Some(i.public_key())).is_ok()
        });
        match next {
            Some(i) => {
                valid(i, "intermediate certificate")?;
                current = i;
            }
            None => break,
        }
    }
    Err(untrusted(format!(
        "no chain from {} (issued by {}) to the trust anchor's CA {}",
        leaf.subject(),
        leaf.issuer(),
        ca.subject()
    )))
}

/// Whether an enabled CRL of the anchor, issued by the certificate's issuer, lists its serial.
fn revoked_by(st: &State, anchor: &str, leaf: &X509Certificate<'_>) -> Option<String> {
    use x509_parser::revocation_list::CertificateRevocationList;
    st.crls
        .iter()
        .filter(|c| c.view.trust_anchor_arn == anchor && c.view.enabled)
        .find_map(|c| {
            let (_, crl) = CertificateRevocationList::from_der(&c.view.der).ok()?;
            (crl.issuer() == leaf.issuer()
                && crl
                    .iter_revoked_certificates()
                    .any(|r| r.user_certificate == leaf.tbs_certificate.serial))
            .then(|| c.view.name.clone())
        })
}

fn random_token(alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| alphabet[rand::random_range(0..alphabet.len())] as char)
        .collect()
}

/// Answers one CreateSession and records the attempt.
pub(super) fn create_session(
    st: &mut State,
    parts: &Parts,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(u16, Value), ApiError> {
    let input = wire::parse_json_body(body)?;
    let profile_arn = wire::input::opt_str(&input, "profileArn").unwrap_or_default();
    let role_arn = wire::input::opt_str(&input, "roleArn").unwrap_or_default();
    let mut attempt = SessionAttempt {
        serial: String::new(),
        subject: String::new(),
        profile_arn: profile_arn.to_string(),
        role_arn: role_arn.to_string(),
        at: now,
        outcome: Err((String::new(), String::new())),
    };
    if let Some(der) = header(parts, "x-amz-x509").and_then(|h| decode_der(h).ok()) {
        if let Ok(c) = parse_cert(&der) {
            attempt.serial = c.raw_serial_as_string();
            attempt.subject = c.subject().to_string();
        }
    }
    let result = session(st, parts, body, &input, now);
    attempt.outcome = match &result {
        Ok((exp, _)) => Ok(*exp),
        Err(e) => Err((e.code.clone(), e.message.clone())),
    };
    st.sessions.push(attempt);
    result.map(|(_, v)| (201, v))
}

fn session(
    st: &State,
    parts: &Parts,
    body: &[u8],
    input: &Value,
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, Value), ApiError> {
    let profile_arn = wire::input::req_str(input, "profileArn")?;
    let role_arn = wire::input::req_str(input, "roleArn")?;
    let anchor_arn = wire::input::req_str(input, "trustAnchorArn")?;
    let requested = match input.get("durationSeconds") {
        None | Some(Value::Null) => DEFAULT_DURATION_SECONDS,
        Some(v) => match v.as_i64() {
            Some(d) if DURATION_RANGE.contains(&d) => d,
            _ => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{v}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200"
                )))
            }
        },
    };
    let (leaf_der, chain_der) = authenticate(parts, body, now)?;
    let leaf = parse_cert(&leaf_der).map_err(invalid_signature)?;
    let anchor: &TrustAnchor = st.anchor(anchor_arn).ok_or_else(|| {
        ApiError::with_status(
            404,
            "ResourceNotFoundException",
            format!("Trust anchor {anchor_arn} not found"),
        )
    })?;
    if !anchor.enabled {
        return Err(denied(format!("Trust anchor {anchor_arn} is disabled")));
    }
    let ca_der = anchor
        .source_ca_der
        .as_deref()
        .ok_or_else(|| untrusted("the trust anchor has no source certificate"))?;
    let ca = parse_cert(ca_der).map_err(untrusted)?;
    let intermediates: Vec<X509Certificate<'_>> = chain_der
        .iter()
        .map(|d| parse_cert(d))
        .collect::<Result<_, _>>()
        .map_err(untrusted)?;
    chain_to_anchor(&leaf, &intermediates, &ca, now)?;
    if let Some(crl) = revoked_by(st, anchor_arn, &leaf) {
        return Err(denied(format!(
            "Certificate revoked: serial {} is on the trust anchor's CRL {crl}",
            leaf.raw_serial_as_string()
        )));
    }
    let profile = st
        .profiles
        .iter()
        .find(|p| p.arn == profile_arn)
        .ok_or_else(|| {
            ApiError::with_status(
                404,
                "ResourceNotFoundException",
                format!("Profile {profile_arn} not found"),
            )
        })?;
    if !profile.enabled {
        return Err(denied(format!("Profile {profile_arn} is disabled")));
    }
    if !profile.role_arns.iter().any(|r| r == role_arn) {
        return Err(denied(format!(
            "Role {role_arn} is not among the roles of profile {profile_arn}"
        )));
    }
    let role = st
        .roles
        .iter()
        .find(|r| r.arn == role_arn)
        .ok_or_else(|| denied(format!("Cannot assume role {role_arn}: no such role")))?;
    let seconds = requested
        .min(profile.duration_seconds)
        .min(role.max_session_duration);
    let expiration = now + time::Duration::seconds(seconds);
    let upper = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let b64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let serial_dec = leaf.tbs_certificate.serial.to_string();
    let role_id = format!("AROA{}", random_token(upper, 17));
    let cn = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let out = json!({
        "credentialSet": [{
            "assumedRoleUser": {
                "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{}/{serial_dec}", role.name),
                "assumedRoleId": format!("{role_id}:{serial_dec}"),
            },
            "credentials": {
                "accessKeyId": format!("ASIA{}", random_token(upper, 16)),
                "secretAccessKey": random_token(b64, 40),
                "sessionToken": random_token(b64, 300),
                "expiration": event_time(expiration),
            },
            "packedPolicySize": 0,
            "roleArn": role.arn,
            "sourceIdentity": format!("CN={cn}"),
        }],
        "subjectArn": format!("arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:subject/{}", uuid_v4()),
    });
    Ok((expiration, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_header_parts() {
        let a = parse_authorization(
            "AWS4-X509-ECDSA-SHA256 Credential=123456789/20261202/us-east-1/rolesanywhere/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-x509, Signature=0a0b",
        )
        .unwrap();
        assert_eq!(a.algorithm, ALG_ECDSA);
        assert_eq!(a.serial, "123456789");
        assert_eq!(a.date, "20261202");
        assert_eq!(a.scope, "20261202/us-east-1/rolesanywhere/aws4_request");
        assert_eq!(
            a.signed_headers,
            ["content-type", "host", "x-amz-date", "x-amz-x509"]
        );
        assert_eq!(a.signature, [0x0a, 0x0b]);
        for bad in [
            "AWS4-X509-RSA-SHA256",
            "AWS4-X509-RSA-SHA256 Credential=0a:1b/20261202/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-X509-RSA-SHA256 Credential=1/20261202/us-east-1/rolesanywhere, SignedHeaders=host, Signature=00",
            "AWS4-X509-RSA-SHA256 Credential=1/20261202/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host, Signature=zz",
            "AWS4-X509-RSA-SHA256 Credential=1/20261202/us-east-1/rolesanywhere/aws4_request, Signature=00",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn canonical_request_and_string_to_sign_follow_sigv4() {
        let headers = vec![
            ("host".to_string(), "127.0.0.1:9".to_string()),
            ("x-amz-date".to_string(), "20261202T010203Z".to_string()),
        ];
        let cr = canonical_request("POST", "/sessions", Some("b=2&a=1"), &headers, b"{}");
        assert_eq!(
            cr,
            "POST\n/sessions\na=1&b=2\nhost:127.0.0.1:9\nx-amz-date:20261202T010203Z\n\nhost;x-amz-date\n44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let sts = string_to_sign(
            ALG_RSA,
            "20261202T010203Z",
            "20261202/us-east-1/rolesanywhere/aws4_request",
            &cr,
        );
        let mut lines = sts.lines();
        assert_eq!(lines.next(), Some(ALG_RSA));
        assert_eq!(lines.next(), Some("20261202T010203Z"));
        assert_eq!(
            lines.next(),
            Some("20261202/us-east-1/rolesanywhere/aws4_request")
        );
        assert_eq!(
            lines.next(),
            Some(hex::encode(Sha256::digest(cr.as_bytes())).as_str())
        );
    }
}
