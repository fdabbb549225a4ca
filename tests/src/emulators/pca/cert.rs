//! What goes into an issued certificate besides the template's extensions: the CSR's subject
//! and subject alternative names (copied as they are, string types kept), and the validity
//! IssueCertificate asks for (`DAYS`, `MONTHS`, `YEARS`, `ABSOLUTE`, `END_DATE`).
//!
//! Why apart: these are pure conversions from the request to rcgen's terms, testable without a
//! running emulator.

use std::net::IpAddr;

use rcgen::{DistinguishedName, DnType, DnValue, SanType};
use serde_json::Value;
use time::OffsetDateTime;

use crate::emulators::wire::{input, ApiError};

/// Parses `Validity` / `ValidityNotBefore` into a point in time.
pub(super) fn validity_time(
    v: &Value,
    now: OffsetDateTime,
    member: &str,
) -> Result<OffsetDateTime, ApiError> {
    let value = v
        .get("Value")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::not_null(&format!("{member}.value")))?;
    let kind = input::req_str(v, "Type")?;
    let bad = |m: &str| ApiError::new("InvalidArgsException", m.to_string());
    let relative = |t: OffsetDateTime| -> Result<OffsetDateTime, ApiError> {
        if value <= 0 {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{value}' at '{member}.value' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )));
        }
        Ok(t)
    };
    match kind {
        "DAYS" => relative(now + time::Duration::days(value.min(100_000))),
        "MONTHS" => relative(add_months(now, value.min(1_200))),
        "YEARS" => relative(add_months(now, value.min(100).saturating_mul(12))),
        "ABSOLUTE" => OffsetDateTime::from_unix_timestamp(value)
            .map_err(|_| bad("The ABSOLUTE validity value is out of range")),
        "END_DATE" => parse_end_date(value).ok_or_else(|| {
            bad("The END_DATE validity value must be YYYYMMDDHHMMSS or YYMMDDHHMMSS")
        }),
        other => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{other}' at '{member}.type' failed to satisfy constraint: Member must satisfy enum value set: [END_DATE, ABSOLUTE, DAYS, MONTHS, YEARS]"
        ))),
    }
}

fn add_months(t: OffsetDateTime, months: i64) -> OffsetDateTime {
    let total = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1 + months;
    let year = (total.div_euclid(12)) as i32;
    let month =
        time::Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(time::Month::January);
    let last = month.length(year);
    let day = t.day().min(last);
    time::Date::from_calendar_date(year, month, day)
        .map(|d| t.replace_date(d))
        .unwrap_or(t)
}

fn parse_end_date(v: i64) -> Option<OffsetDateTime> {
    let s = v.to_string();
    let (year, rest) = match s.len() {
        14 => (s[0..4].parse::<i32>().ok()?, &s[4..]),
        12 => {
            let yy = s[0..2].parse::<i32>().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        // YYMMDDHHMMSS with YY < 10 loses its leading zero as a number.
        11 => (2000 + s[0..1].parse::<i32>().ok()?, &s[1..]),
        _ => return None,
    };
    let n = |i: usize| rest[i..i + 2].parse::<u8>().ok();
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(n(0)?).ok()?, n(2)?).ok()?;
    let t = time::Time::from_hms(n(4)?, n(6)?, n(8)?).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

/// The CSR's subject as an rcgen name, attribute by attribute, keeping string types.
pub(super) fn subject_of(
    name: &x509_parser::x509::X509Name<'_>,
) -> Result<DistinguishedName, String> {
    use x509_parser::asn1_rs::Tag;
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("subject attribute OID too large")?
            .collect();
        let data = attr.attr_value().data;
        let text = || {
            std::str::from_utf8(data)
                .map(str::to_string)
                .map_err(|e| e.to_string())
        };
        let value = match attr.attr_value().header.tag() {
            Tag::PrintableString => DnValue::PrintableString(
                rcgen::string::PrintableString::try_from(text()?).map_err(|e| e.to_string())?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                rcgen::string::Ia5String::try_from(text()?).map_err(|e| e.to_string())?,
            ),
            Tag::Utf8String => DnValue::Utf8String(text()?),
            Tag::T61String => DnValue::TeletexString(
                rcgen::string::TeletexString::try_from(text()?).map_err(|e| e.to_string())?,
            ),
            other => return Err(format!("unsupported subject string type {other:?}")),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

pub(super) fn sans_of(
    csr: &x509_parser::certification_request::X509CertificationRequest<'_>,
) -> Vec<SanType> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let mut out = Vec::new();
    let Some(exts) = csr.requested_extensions() else {
        return out;
    };
    for ext in exts {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for g in &san.general_names {
                let s = match g {
                    GeneralName::DNSName(d) => rcgen::string::Ia5String::try_from(*d)
                        .ok()
                        .map(SanType::DnsName),
                    GeneralName::RFC822Name(d) => rcgen::string::Ia5String::try_from(*d)
                        .ok()
                        .map(SanType::Rfc822Name),
                    GeneralName::URI(d) => rcgen::string::Ia5String::try_from(*d)
                        .ok()
                        .map(SanType::URI),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => Some(SanType::IpAddress(IpAddr::from(
                            <[u8; 4]>::try_from(*b).unwrap_or_default(),
                        ))),
                        16 => Some(SanType::IpAddress(IpAddr::from(
                            <[u8; 16]>::try_from(*b).unwrap_or_default(),
                        ))),
                        _ => None,
                    },
                    _ => None,
                };
                out.extend(s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_dates() {
        let t = parse_end_date(20261121101530).unwrap();
        assert_eq!(t.unix_timestamp(), 1_795_256_130);
        assert_eq!(parse_end_date(261121101530).unwrap(), t);
        assert!(parse_end_date(20261341101530).is_none());
    }

    #[test]
    fn months_clamp_days() {
        let t = time::macros::datetime!(2026-01-31 10:00 UTC);
        assert_eq!(
            add_months(t, 1),
            time::macros::datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            add_months(t, 12),
            time::macros::datetime!(2027-01-31 10:00 UTC)
        );
    }
}
