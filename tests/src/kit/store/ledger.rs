//! `CrlLedger`: the last CRL number imported per CA, one `crl#<CA id>` item each.
//!
//! Why the same item and the same conflict as the DynamoDB ledger: CRLProcessor runs
//! concurrently for several CRL objects; the ledger's optimistic concurrency is what keeps an
//! older CRL from overwriting a newer one, and a lost race must look the same here (a retryable
//! backend error with `ConditionalCheckFailedException`) as against DynamoDB.

use state::item::{attr, Attr, Item, SERVICE_KEY_PREFIX};
use state::ports::CrlLedger;
use state::StoreError;
use time::OffsetDateTime;

use super::MemoryStore;

/// The ledger item's attribute holding the last imported CRL number.
pub const CRL_NUMBER: &str = "crlNumber";
/// The ledger item's attribute holding when it was imported (epoch seconds).
pub const IMPORTED_AT: &str = "importedAt";

impl CrlLedger for MemoryStore {
    async fn last_crl_number(&self, ca_id: &str) -> Result<Option<String>, StoreError> {
        let mut inner = self.lock();
        inner.calls.ledger += 1;
        let key = format!("{SERVICE_KEY_PREFIX}{ca_id}");
        Ok(
            match inner.items.get(&key).and_then(|i| i.get(CRL_NUMBER)) {
                Some(Attr::S(n)) => Some(n.clone()),
                _ => None,
            },
        )
    }

    /// Sets the number if the ledger holds `previous` (`None`: no number yet); creates the item
    /// when needed, as `UpdateItem` does.
    async fn record_crl_number(
        &self,
        ca_id: &str,
        previous: Option<&str>,
        number: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.calls.ledger += 1;
        let key = format!("{SERVICE_KEY_PREFIX}{ca_id}");
        let held = inner.items.get(&key).and_then(|i| i.get(CRL_NUMBER));
        let holds = match previous {
            Some(p) => held.is_some_and(|h| h.same_as(&Attr::s(p))),
            None => held.is_none(),
        };
        if !holds {
            let message = format!("the CRL ledger of {ca_id} moved concurrently");
            return Err(StoreError::Backend {
                operation: "UpdateItem",
                code: Some("ConditionalCheckFailedException".into()),
                message: message.clone(),
                retryable: true,
                source: message.into(),
            });
        }
        let item = inner.items.entry(key.clone()).or_insert_with(|| {
            let mut i = Item::new();
            i.insert(attr::HOST_ID.to_owned(), Attr::S(key));
            i
        });
        item.insert(CRL_NUMBER.to_owned(), Attr::s(number));
        item.insert(IMPORTED_AT.to_owned(), Attr::n(now.unix_timestamp()));
        Ok(())
    }
}
