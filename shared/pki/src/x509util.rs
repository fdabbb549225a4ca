//! Small helpers over x509-parser shared by the CSR, certificate and CRL modules.

use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::oid_registry::{
    OID_NIST_HASH_SHA256, OID_NIST_HASH_SHA384, OID_NIST_HASH_SHA512, OID_PKCS1_RSASSAPSS,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512,
    OID_X509_COMMON_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::x509::{AlgorithmIdentifier, X509Name};

/// Parses exactly one `T` from `der`: a parse failure becomes its flattened `X509Error`, and DER
/// followed by extra bytes (a length that does not cover the input) is refused as
/// `X509Error::Der(BerError::InvalidLength)`.
pub(crate) fn parse_exact<'a, T: FromDer<'a, X509Error>>(der: &'a [u8]) -> Result<T, X509Error> {
    let (rest, parsed) = T::from_der(der).map_err(X509Error::from)?;
    if !rest.is_empty() {
        return Err(X509Error::Der(
            x509_parser::der_parser::error::BerError::InvalidLength,
        ));
    }
    Ok(parsed)
}

/// Whether the certificate's basicConstraints says CA:true (false when the extension is absent);
/// an error if the extension is malformed or duplicated.
pub(crate) fn basic_ca(cert: &X509Certificate<'_>) -> Result<bool, X509Error> {
    Ok(cert.basic_constraints()?.is_some_and(|bc| bc.value.ca))
}

/// The big-endian magnitude of a hex number without leading zero bytes (empty for zero), or
/// `None` if `digits` is empty or not all hex digits (either case). An odd number of digits is
/// read as if it had a leading `0`.
pub(crate) fn hex_magnitude(digits: &str) -> Option<Vec<u8>> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes = if digits.len() % 2 == 1 {
        hex::decode(format!("0{digits}"))
    } else {
        hex::decode(digits)
    }
    .ok()?;
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    Some(bytes[first..].to_vec())
}

/// Whether a signature algorithm uses SHA-256 or stronger with RSA (PKCS#1 v1.5 or PSS) or ECDSA:
/// the Roles Anywhere rule for certificates, which we also apply to CSRs and CRLs.
pub(crate) fn is_strong_signature(alg: &AlgorithmIdentifier<'_>) -> bool {
    let oid = &alg.algorithm;
    if *oid == OID_PKCS1_SHA256WITHRSA
        || *oid == OID_PKCS1_SHA384WITHRSA
        || *oid == OID_PKCS1_SHA512WITHRSA
        || *oid == OID_SIG_ECDSA_WITH_SHA256
        || *oid == OID_SIG_ECDSA_WITH_SHA384
        || *oid == OID_SIG_ECDSA_WITH_SHA512
    {
        return true;
    }
    if *oid == OID_PKCS1_RSASSAPSS {
        return alg
            .parameters
            .as_ref()
            .and_then(|p| RsaSsaPssParams::try_from(p).ok())
            .is_some_and(|p| {
                let h = p.hash_algorithm_oid();
                *h == OID_NIST_HASH_SHA256
                    || *h == OID_NIST_HASH_SHA384
                    || *h == OID_NIST_HASH_SHA512
            });
    }
    false
}

/// How a name fails to be exactly one CN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameShape {
    /// Exactly one RDN holding exactly one attribute, a CN with a text value.
    SingleCn(String),
    /// Anything else, described briefly.
    Other(String),
}

/// Whether `name` is exactly one RDN holding exactly one CN attribute with a text value
/// (PrintableString, UTF8String, IA5String or NumericString).
pub(crate) fn name_shape(name: &X509Name<'_>) -> NameShape {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let attrs: Vec<_> = name.iter_attributes().collect();
    if rdns.is_empty() {
        return NameShape::Other("the subject is empty".into());
    }
    if rdns.len() != 1 || attrs.len() != 1 {
        let oids: Vec<String> = attrs
            .iter()
            .take(8)
            .map(|a| attr_label(a.attr_type()))
            .collect();
        return NameShape::Other(format!(
            "{} RDN(s) with {} attribute(s): {}",
            rdns.len(),
            attrs.len(),
            oids.join(", ")
        ));
    }
    let attr = attrs[0];
    if *attr.attr_type() != OID_X509_COMMON_NAME {
        return NameShape::Other(format!(
            "the only attribute is {}, not CN",
            attr_label(attr.attr_type())
        ));
    }
    match attr.as_str() {
        Ok(s) => NameShape::SingleCn(s.to_owned()),
        Err(_) => NameShape::Other("the CN is not a text string".into()),
    }
}

/// The CN if the name holds exactly one CN attribute (whatever else it holds).
pub(crate) fn only_cn(name: &X509Name<'_>) -> Option<String> {
    let mut cns = name.iter_common_name();
    let first = cns.next()?;
    if cns.next().is_some() {
        return None;
    }
    first.as_str().ok().map(str::to_owned)
}

/// A short label for an attribute type: `CN`, `O`, … or the dotted OID.
fn attr_label(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry())
        .map(str::to_owned)
        .unwrap_or_else(|_| oid.to_id_string())
}

/// The display form of a name, for messages and facts (`CN=…, O=…`), capped in length.
pub(crate) fn name_string(name: &X509Name<'_>) -> String {
    crate::pem::short(&name.to_string(), 256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_magnitudes() {
        assert_eq!(hex_magnitude("0"), Some(vec![]));
        assert_eq!(hex_magnitude("0000"), Some(vec![]));
        assert_eq!(hex_magnitude("A1B"), Some(vec![0x0a, 0x1b]));
        assert_eq!(hex_magnitude("00008a01"), Some(vec![0x8a, 0x01]));
        assert_eq!(hex_magnitude(""), None);
        assert_eq!(hex_magnitude("12g"), None);
        assert_eq!(hex_magnitude("0x1"), None);
        assert_eq!(hex_magnitude("é"), None);
    }
}
