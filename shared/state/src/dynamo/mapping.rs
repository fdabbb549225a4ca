//! SDK attribute values to and from the domain's item model. Only strings and numbers carry
//! meaning for us; every other type is kept by name so validation can refuse it with a reason.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::item::{record_from_item, Attr, Item};
use crate::ports::StoreError;
use crate::record::HostRecord;

/// An SDK item.
pub type SdkItem = HashMap<String, AttributeValue>;

/// One SDK value in the domain's terms.
pub fn attr(v: &AttributeValue) -> Attr {
    match v {
        AttributeValue::S(s) => Attr::S(s.clone()),
        AttributeValue::N(n) => Attr::N(n.clone()),
        AttributeValue::Null(_) => Attr::Null,
        AttributeValue::Bool(_) => Attr::Other("BOOL"),
        AttributeValue::B(_) => Attr::Other("B"),
        AttributeValue::Bs(_) => Attr::Other("BS"),
        AttributeValue::L(_) => Attr::Other("L"),
        AttributeValue::M(_) => Attr::Other("M"),
        AttributeValue::Ns(_) => Attr::Other("NS"),
        AttributeValue::Ss(_) => Attr::Other("SS"),
        _ => Attr::Other("unknown"),
    }
}

/// A domain value as an SDK value (the rules only write strings and numbers).
pub fn value(a: &Attr) -> AttributeValue {
    match a {
        Attr::S(s) => AttributeValue::S(s.clone()),
        Attr::N(n) => AttributeValue::N(n.clone()),
        Attr::Null | Attr::Other(_) => AttributeValue::Null(true),
    }
}

/// An SDK item in the domain's terms.
pub fn item(sdk: &SdkItem) -> Item {
    sdk.iter().map(|(k, v)| (k.clone(), attr(v))).collect()
}

/// A domain item as an SDK item.
pub fn sdk_item(item: &Item) -> SdkItem {
    item.iter().map(|(k, v)| (k.clone(), value(v))).collect()
}

/// An SDK item read as a validated host record.
pub fn record(sdk: &SdkItem) -> Result<HostRecord, StoreError> {
    record_from_item(&item(sdk)).map_err(|(key, reason)| StoreError::InvalidRow { key, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_round_trip_and_other_types_are_named() {
        let mut sdk = SdkItem::new();
        sdk.insert("a".into(), AttributeValue::S("x".into()));
        sdk.insert("b".into(), AttributeValue::N("12".into()));
        sdk.insert("c".into(), AttributeValue::Bool(true));
        sdk.insert("d".into(), AttributeValue::L(vec![]));
        let item = item(&sdk);
        assert_eq!(item["a"], Attr::s("x"));
        assert_eq!(item["b"], Attr::n(12));
        assert_eq!(item["c"], Attr::Other("BOOL"));
        assert_eq!(item["d"], Attr::Other("L"));
        let back = sdk_item(&item);
        assert_eq!(back["a"], sdk["a"]);
        assert_eq!(back["b"], sdk["b"]);
    }

    #[test]
    fn a_wrong_typed_row_is_refused_with_its_key() {
        let mut sdk = SdkItem::new();
        sdk.insert(
            "hostID".into(),
            AttributeValue::S("mi-0123456789abcdef0".into()),
        );
        sdk.insert("certPath".into(), AttributeValue::Bool(true));
        let err = record(&sdk).unwrap_err();
        assert!(err.to_string().contains("mi-0123456789abcdef0"), "{err}");
    }
}
