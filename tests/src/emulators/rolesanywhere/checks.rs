//! The model's constraints on Roles Anywhere CRL members (`crlId`, `name`, `crlData`), with the
//! service's `ValidationException` messages, and the parsing of `crlData` into a CRL.
//!
//! Why apart: what the service refuses is part of what the CRL processor's tests rely on, and
//! it reads best in one place, apart from the routing.

use base64::Engine as _;
use serde_json::Value;
use x509_parser::prelude::FromDer as _;

use super::MAX_CRL_DATA;
use crate::emulators::wire::{self, ApiError};

/// An untrusted value for an error message: at most 64 characters.
pub(super) fn short(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(64).collect::<String>())
    }
}

pub(super) fn check_crl_id(id: &str) -> Result<(), ApiError> {
    let ok = id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'crlId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-f0-9]{{8}}-([a-z0-9]{{4}}-){{3}}[a-z0-9]{{12}}",
            short(id)
        )))
    }
}

pub(super) fn check_name(input: &Value) -> Result<String, ApiError> {
    let name = wire::input::req_str(input, "name")?;
    let len = name.chars().count();
    if !(1..=255).contains(&len) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'name' failed to satisfy constraint: Member must have length between 1 and 255 (was {len})"
        )));
    }
    if !name
        .chars()
        .all(|c| c == ' ' || c == '-' || c == '_' || c.is_ascii_alphanumeric())
    {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[ a-zA-Z0-9-_]*$",
            short(name)
        )));
    }
    Ok(name.to_string())
}

/// `crlData`: base64 → bytes (as sent) and the DER of the CRL they hold.
pub(super) fn crl_data(input: &Value) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    let b64 = wire::input::req_str(input, "crlData")?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| {
            ApiError::new(
                "SerializationException",
                format!("crlData is not base64: {e}"),
            )
        })?;
    if data.is_empty() || data.len() > MAX_CRL_DATA {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'crlData' failed to satisfy constraint: Member must have length between 1 and {MAX_CRL_DATA}"
        )));
    }
    let invalid =
        || ApiError::validation("Invalid certificate revocation list (CRL) data: not an X.509 CRL");
    let der = if data.starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(&data).map_err(|_| invalid())?;
        if pem.label != "X509 CRL" {
            return Err(invalid());
        }
        pem.contents
    } else {
        data.clone()
    };
    let (rest, _) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
        .map_err(|_| invalid())?;
    if !rest.is_empty() {
        return Err(invalid());
    }
    Ok((data, der))
}
