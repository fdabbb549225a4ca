//! `Transitions` and `Enroller`: the rules of `state::rules` carried out on items.
//!
//! Why this mirrors the DynamoDB store step for step: the property test plays the same changes
//! against both and compares outcomes, so any difference must be one of DynamoDB's rendering,
//! not of this store. Like DynamoDB's `UpdateItem` with `ALL_NEW`, an accepted change is
//! written first and the new item is then read as a record; an item the mapping refuses is
//! still written, and the answer is `StoreError::InvalidRow`. (A version bump on a `version`
//! that is not a number is refused by the rule's own guard, here as in DynamoDB.)

use state::item::enrolment_item;
use state::ports::{Enroller, Transitions};
use state::record::HostOverrides;
use state::rules::{Change, Rule};
use state::{HostId, HostRecord, StoreError, TransitionConflict};
use time::OffsetDateTime;

use super::{to_record, MemoryStore};

impl MemoryStore {
    /// [`Transitions::transition`] without the future, for callers that are not async.
    pub fn apply_change(
        &self,
        host: &HostId,
        change: &Change,
        now: OffsetDateTime,
    ) -> Result<HostRecord, StoreError> {
        let rule = Rule::for_change(change, now);
        let conflict = || -> StoreError {
            TransitionConflict {
                host: host.clone(),
                transition: rule.name,
            }
            .into()
        };
        let visible_at = self.clock.now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.calls.transitions += 1;
        // As the DynamoDB store: a guard that can never hold is refused without asking.
        let slot = match inner.items.get(host.as_str()) {
            Some(item) if !rule.never_holds() && rule.holds(Some(item)) => item,
            _ => {
                inner.calls.conflicts += 1;
                return Err(conflict());
            }
        };
        let next = rule.effect_on(slot);
        let record = to_record(&next);
        inner.write(host.as_str(), Some(next), visible_at);
        record
    }
}

impl Transitions for MemoryStore {
    async fn transition(
        &self,
        host: &HostId,
        change: Change,
        now: OffsetDateTime,
    ) -> Result<HostRecord, StoreError> {
        self.apply_change(host, &change, now)
    }
}

impl Enroller for MemoryStore {
    /// Puts the enrolment item only if no item has this key (as the conditional `PutItem`).
    async fn enrol(&self, host: &HostId, overrides: &HostOverrides) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.calls.enrolments += 1;
        if inner.items.contains_key(host.as_str()) {
            return Err(TransitionConflict {
                host: host.clone(),
                transition: "enrol (already enrolled)",
            }
            .into());
        }
        let now = self.clock.now();
        inner.write(host.as_str(), Some(enrolment_item(host, overrides)), now);
        Ok(())
    }
}
