//! `CrlLedger`: one `crl#<CA id>` item per CA, written under the same conditions as DynamoDB.
//!
//! Why the same item and the same conditions: CRLProcessor runs concurrently for several CRL
//! objects; the ledger's claim is what keeps an older CRL from overwriting a newer one, so a
//! lost race must look the same here as against DynamoDB. The write's condition and effect are
//! [`state::crl_ledger::LedgerWrite`]'s, evaluated under the store's one mutex.

use state::crl_ledger::{entry_from_item, ledger_key, LedgerEntry, LedgerWrite};
use state::ports::CrlLedger;
use state::StoreError;

use super::MemoryStore;

impl CrlLedger for MemoryStore {
    async fn crl_ledger(&self, ca_id: &str) -> Result<LedgerEntry, StoreError> {
        let mut inner = self.lock();
        inner.calls.ledger += 1;
        Ok(entry_from_item(inner.items.get(&ledger_key(ca_id))))
    }

    async fn write_crl_ledger(&self, ca_id: &str, write: &LedgerWrite) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.calls.ledger += 1;
        let key = ledger_key(ca_id);
        let current = inner.items.get(&key);
        if !write.holds(current) {
            return Ok(false);
        }
        let next = write.effect_on(&key, current);
        inner.write(&key, Some(next), now);
        Ok(true)
    }
}
