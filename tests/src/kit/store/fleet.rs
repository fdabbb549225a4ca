//! `FleetReader`: the fleet as CertCheck and CRLProcessor read it.
//!
//! Why mirror the DynamoDB scan's filter instead of returning every host: the port allows more
//! (never fewer than the due hosts), but a simulator of a large fleet should read what
//! production reads, and rejected rows are only reported among the rows the filter keeps. So
//! [`DueFilter`] is the scan's filter expression written as Rust, with the same conservative
//! choices (a value of a wrong type keeps the row, so validation refuses it with a reason).
//! Service items (`crl#` keys) are skipped; every item counts as read, as in `ScannedCount`.
//! The reconcile pass's `in_flight` reads only the items of the sparse `unsettled` index.

use state::item::{
    attr, is_reconciled, is_service_item, legacy_time, record_from_item, Attr, Item,
};
use state::plan::DueWindow;
use state::ports::{FleetReader, FleetScan, RejectedRow};
use state::record::StateKind;
use state::{HostId, HostRecord, StoreError};

use super::MemoryStore;

/// The DynamoDB scan's filter for one [`DueWindow`], computed once per scan.
#[derive(Debug, Clone)]
pub struct DueFilter {
    now: f64,
    due_by: String,
}

impl DueFilter {
    /// The filter for `window`.
    pub fn new(window: &DueWindow) -> Self {
        DueFilter {
            now: window.now.unix_timestamp() as f64,
            due_by: legacy_time(window.unscheduled_due_by),
        }
    }

    /// Whether the scan keeps `item`: it is left out only when it provably needs nothing (a
    /// deployed row whose numeric renewal point lies ahead, or an original-sample row whose
    /// legacy `expiry` lies past the window).
    pub fn keeps(&self, item: &Item) -> bool {
        let exists = |a: &str| item.contains_key(a);
        let renew_at = match item.get(attr::RENEW_AT) {
            Some(Attr::N(v)) => Some(v.parse::<f64>().ok()),
            _ => None,
        };
        // (attribute_type(#ra, N) AND #ra <= :now); an unparseable number keeps the row.
        if renew_at.is_some_and(|ra| ra.is_none_or(|ra| ra <= self.now)) {
            return true;
        }
        // OR attribute_not_exists(#exp)
        if !exists(attr::EXPIRY) {
            return true;
        }
        // OR (attribute_exists(#st) AND #st <> :deployed)
        let deployed = StateKind::Deployed.as_str();
        if item
            .get(attr::STATE)
            .is_some_and(|st| !matches!(st, Attr::S(s) if s == deployed))
        {
            return true;
        }
        // OR (NOT attribute_type(#ra, N) AND (attribute_exists(#st) OR attribute_exists(#nb)
        //     OR NOT attribute_type(#exp, S) OR (#exp is S AND (#exp <= :dueBy
        //     OR contains(#exp, "T") OR NOT begins_with(#exp, "2")))))
        if renew_at.is_none() {
            if exists(attr::STATE) || exists(attr::NOT_BEFORE) {
                return true;
            }
            return match item.get(attr::EXPIRY) {
                Some(Attr::S(exp)) => {
                    exp.as_str() <= self.due_by.as_str()
                        || exp.contains('T')
                        || !exp.starts_with('2')
                }
                _ => true,
            };
        }
        false
    }
}

impl MemoryStore {
    /// The sparse `unsettled` index: only items carrying the key are read (and counted), as a
    /// Query on the DynamoDB index reads them. No lag: the reconcile pass acts only on rotations
    /// older than the in-flight timeout, far behind any index lag.
    fn unsettled(&self) -> FleetScan {
        let mut inner = self.lock();
        inner.calls.index_queries += 1;
        let mut out = FleetScan {
            pages: 1,
            ..FleetScan::default()
        };
        let indexed = inner
            .unsettled
            .iter()
            .filter_map(|key| inner.items.get(key));
        for item in indexed {
            out.items_read += 1;
            if is_service_item(item) {
                continue;
            }
            match record_from_item(item) {
                Ok(r) if is_reconciled(r.state.kind()) => out.records.push(r),
                Ok(_) => {}
                Err((key, reason)) => out.rejected.push(RejectedRow { key, reason }),
            }
        }
        out
    }

    fn scan(&self, window: Option<&DueWindow>) -> FleetScan {
        let filter = window.map(DueFilter::new);
        let mut inner = self.lock();
        inner.calls.scans += 1;
        let mut out = FleetScan {
            items_read: inner.items.len() as u64,
            pages: 1,
            ..FleetScan::default()
        };
        for item in inner.items.values() {
            if is_service_item(item) || filter.as_ref().is_some_and(|f| !f.keeps(item)) {
                continue;
            }
            match record_from_item(item) {
                Ok(r) => out.records.push(r),
                Err((key, reason)) => out.rejected.push(RejectedRow { key, reason }),
            }
        }
        out
    }
}

impl FleetReader for MemoryStore {
    /// Rows the scan's filter keeps ([`DueFilter`]), in host order.
    async fn candidates(&self, window: DueWindow) -> Result<FleetScan, StoreError> {
        Ok(self.scan(Some(&window)))
    }

    /// Every host row, valid or refused, in key order.
    async fn all_hosts(&self) -> Result<FleetScan, StoreError> {
        Ok(self.scan(None))
    }

    /// The hosts in flight or failed, from the sparse index ([`MemoryStore::unsettled`]).
    async fn in_flight(&self) -> Result<FleetScan, StoreError> {
        Ok(self.unsettled())
    }

    /// One host, as a strongly consistent `GetItem` reads it.
    async fn host(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.lock().calls.host_reads += 1;
        self.record(host)
    }
}
