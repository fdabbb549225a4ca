//! The in-memory state store: every store port over one map of table items.
//!
//! Why items and not records: the DynamoDB store checks a [`state::rules::Rule`]'s guard on the
//! item as DynamoDB holds it, and so must this one, or a hostile row (a wrong type, an unknown
//! state, a path with a `;`) would behave differently here than in production. So the store
//! holds raw [`Item`]s keyed by `hostID`, carries out transitions with
//! [`Rule::holds`](state::rules::Rule::holds) and [`Rule::effect_on`](state::rules::Rule::effect_on)
//! under one mutex (atomic as one conditional `UpdateItem` is), and maps rows to records with
//! the same [`state::item::record_from_item`] the DynamoDB store uses.
//!
//! - `Transitions` and `Enroller` in [`transitions`];
//! - `FleetReader` in [`fleet`], with the DynamoDB scan's filter mirrored;
//! - `PendingCertificates` in [`index`], an index that may lag behind the table;
//! - `CrlLedger` in [`ledger`].
//!
//! Tests seed items (including hostile ones) with [`MemoryStore::put_item`] and read them back
//! with [`MemoryStore::item`] or [`MemoryStore::inspect`].

pub mod fleet;
pub mod index;
pub mod ledger;
pub mod transitions;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use state::item::{attr, item_from_record, record_from_item, Attr, Item, UNSETTLED_VALUE};
use state::{HostId, HostRecord, StoreError};
use time::Duration;

use crate::kit::clock::ManualClock;
use index::PendingIndex;

pub use fleet::DueFilter;

/// How often each store operation was called (for assertions and the simulator's figures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCalls {
    /// `Transitions::transition` calls (including refused ones).
    pub transitions: u64,
    /// Transitions refused by their guard.
    pub conflicts: u64,
    /// `FleetReader::host` calls.
    pub host_reads: u64,
    /// `FleetReader::candidates` and `FleetReader::all_hosts` calls.
    pub scans: u64,
    /// `PendingCertificates::host_waiting_for` and `FleetReader::in_flight` calls (index queries).
    pub index_queries: u64,
    /// `Enroller::enrol` calls.
    pub enrolments: u64,
    /// `CrlLedger` calls (reads and writes).
    pub ledger: u64,
}

/// The in-memory store. Clones share the same table.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    clock: ManualClock,
}

#[derive(Debug)]
struct Inner {
    /// The table, by `hostID` (hosts and the service's `crl#` items alike).
    items: BTreeMap<String, Item>,
    /// The pending-certificate index.
    index: PendingIndex,
    /// Keys of the items the sparse `unsettled` index holds, kept on every write (a reconcile
    /// pass every ten minutes must not read the whole table, here as in DynamoDB).
    unsettled: BTreeSet<String>,
    calls: StoreCalls,
}

impl Inner {
    /// Writes `item` under `key` (none: deletes it), keeping both indexes in step; returns the
    /// item it replaced.
    fn write(&mut self, key: &str, item: Option<Item>, now: time::OffsetDateTime) -> Option<Item> {
        let old = self.items.get(key).and_then(pending_arn);
        self.index
            .on_write(key, old, item.as_ref().and_then(pending_arn), now);
        self.track_unsettled(key, item.as_ref());
        match (item, self.items.get_mut(key)) {
            (Some(item), Some(slot)) => Some(std::mem::replace(slot, item)),
            (Some(item), None) => self.items.insert(key.to_owned(), item),
            (None, _) => self.items.remove(key),
        }
    }

    /// Adds `key` to, or removes it from, the `unsettled` keys as `item` carries the key.
    fn track_unsettled(&mut self, key: &str, item: Option<&Item>) {
        if item.is_some_and(is_unsettled) {
            if !self.unsettled.contains(key) {
                self.unsettled.insert(key.to_owned());
            }
        } else {
            self.unsettled.remove(key);
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store with its own [`ManualClock`] and an index that is never behind.
    pub fn new() -> Self {
        MemoryStore::with_clock(ManualClock::default())
    }

    /// An empty store whose index lag is measured on `clock`.
    pub fn with_clock(clock: ManualClock) -> Self {
        MemoryStore {
            inner: Arc::new(Mutex::new(Inner {
                items: BTreeMap::new(),
                index: PendingIndex::new(Duration::ZERO),
                unsettled: BTreeSet::new(),
                calls: StoreCalls::default(),
            })),
            clock,
        }
    }

    /// The same store with the pending index lagging `lag` behind the table (see [`index`]).
    pub fn with_index_lag(self, lag: Duration) -> Self {
        self.lock().index.set_lag(lag);
        self
    }

    /// The clock the index lag is measured on.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Puts a raw item as an admin's `put-item` would (no guard, no validation), replacing any
    /// item with the same key; returns the replaced one. The index sees it like any write.
    ///
    /// # Panics
    /// If the item has no string `hostID` (DynamoDB refuses such an item too).
    pub fn put_item(&self, item: Item) -> Option<Item> {
        let key = match item.get(attr::HOST_ID) {
            Some(Attr::S(k)) => k.clone(),
            other => panic!("an item needs a string hostID, got {other:?}"),
        };
        let now = self.clock.now();
        self.lock().write(&key, Some(item), now)
    }

    /// Puts the item that reads back as `record` (see [`item_from_record`]).
    pub fn put_record(&self, record: &HostRecord) -> Option<Item> {
        self.put_item(item_from_record(record))
    }

    /// Removes the item with key `key`, returning it.
    pub fn remove_item(&self, key: &str) -> Option<Item> {
        let now = self.clock.now();
        self.lock().write(key, None, now)
    }

    /// The raw item with key `key` (a host ID or a `crl#` key), as stored.
    pub fn item(&self, key: &str) -> Option<Item> {
        self.lock().items.get(key).cloned()
    }

    /// `host`'s record, or the refusal a `GetItem` through the DynamoDB store would give.
    pub fn record(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.lock()
            .items
            .get(host.as_str())
            .map(to_record)
            .transpose()
    }

    /// Runs `f` over the whole table, in key order, without copying it.
    pub fn inspect<R>(&self, f: impl FnOnce(&BTreeMap<String, Item>) -> R) -> R {
        f(&self.lock().items)
    }

    /// Number of items (hosts and service items).
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// How often each operation was called so far.
    pub fn calls(&self) -> StoreCalls {
        self.lock().calls
    }

    /// Makes every index change visible now, whatever the lag.
    pub fn flush_index(&self) {
        self.lock().index.flush();
    }

    /// Index changes written but not visible yet at the clock's time.
    pub fn index_backlog(&self) -> usize {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.index.settle(now);
        inner.index.backlog()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock left the map consistent: every write is
        // one `insert`, so the poison carries no meaning here.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The indexed attribute of an item, if it carries one the index takes (a string).
fn pending_arn(item: &Item) -> Option<&str> {
    match item.get(attr::PENDING_CERT_ARN) {
        Some(Attr::S(a)) => Some(a),
        _ => None,
    }
}

/// Whether the sparse `unsettled` index holds `item`.
fn is_unsettled(item: &Item) -> bool {
    matches!(item.get(attr::UNSETTLED), Some(Attr::S(v)) if v == UNSETTLED_VALUE)
}

/// An item as a record, refused as the DynamoDB store refuses it.
fn to_record(item: &Item) -> Result<HostRecord, StoreError> {
    record_from_item(item).map_err(|(key, reason)| StoreError::InvalidRow { key, reason })
}
