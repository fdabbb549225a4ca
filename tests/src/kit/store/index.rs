//! `PendingCertificates`: the sparse index from a pending certificate ARN to its host.
//!
//! Why a lag: in DynamoDB this is a global secondary index, and GSIs are eventually consistent.
//! CertDeploy looks a host up by the certificate ARN of an issuance event that can arrive right
//! after CertIssue wrote it, so it must cope with an index that does not show the write yet.
//! With a lag, every change of an item's `pendingCertArn` becomes visible only `lag` after it
//! was written (on the store's [`ManualClock`](crate::kit::clock::ManualClock)); changes of one
//! host become visible in the order they were written. With no lag the index is exact.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use state::ports::PendingCertificates;
use state::{HostId, StoreError};
use time::{Duration, OffsetDateTime};

use super::MemoryStore;

/// The index as queries see it, and the changes not visible yet.
#[derive(Debug)]
pub(super) struct PendingIndex {
    lag: Duration,
    /// ARN → hosts whose visible entry holds it (several only if the table is odd).
    by_arn: BTreeMap<String, BTreeSet<String>>,
    /// Host → its visible ARN.
    by_host: BTreeMap<String, String>,
    /// Changes in write order: when they become visible, the host, its new ARN (or none).
    queue: VecDeque<(OffsetDateTime, String, Option<String>)>,
}

impl PendingIndex {
    pub(super) fn new(lag: Duration) -> Self {
        PendingIndex {
            lag,
            by_arn: BTreeMap::new(),
            by_host: BTreeMap::new(),
            queue: VecDeque::new(),
        }
    }

    /// Changes the lag of later writes (queued changes keep their time).
    pub(super) fn set_lag(&mut self, lag: Duration) {
        self.lag = lag.max(Duration::ZERO);
    }

    /// Records that `host`'s indexed value went from `old` to `new` at `now`.
    pub(super) fn on_write(
        &mut self,
        host: &str,
        old: Option<&str>,
        new: Option<&str>,
        now: OffsetDateTime,
    ) {
        if old == new {
            return;
        }
        if self.lag.is_zero() && self.queue.is_empty() {
            self.show(host.to_owned(), new.map(str::to_owned));
        } else {
            self.queue
                .push_back((now + self.lag, host.to_owned(), new.map(str::to_owned)));
        }
    }

    /// Makes visible every change due by `now`.
    pub(super) fn settle(&mut self, now: OffsetDateTime) {
        while self.queue.front().is_some_and(|(at, _, _)| *at <= now) {
            if let Some((_, host, arn)) = self.queue.pop_front() {
                self.show(host, arn);
            }
        }
    }

    /// Makes every change visible.
    pub(super) fn flush(&mut self) {
        while let Some((_, host, arn)) = self.queue.pop_front() {
            self.show(host, arn);
        }
    }

    /// Changes not visible yet.
    pub(super) fn backlog(&self) -> usize {
        self.queue.len()
    }

    /// The first host (in key order) whose visible entry is `arn` and whose key is a host ID.
    pub(super) fn lookup(&self, arn: &str) -> Option<HostId> {
        self.by_arn
            .get(arn)?
            .iter()
            .find_map(|h| HostId::parse(h).ok())
    }

    fn show(&mut self, host: String, arn: Option<String>) {
        if let Some(old) = self.by_host.remove(&host) {
            if let Some(hosts) = self.by_arn.get_mut(&old) {
                hosts.remove(&host);
                if hosts.is_empty() {
                    self.by_arn.remove(&old);
                }
            }
        }
        if let Some(arn) = arn {
            self.by_arn
                .entry(arn.clone())
                .or_default()
                .insert(host.clone());
            self.by_host.insert(host, arn);
        }
    }
}

impl PendingCertificates for MemoryStore {
    async fn host_waiting_for(&self, cert_arn: &str) -> Result<Option<HostId>, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.calls.index_queries += 1;
        inner.index.settle(now);
        Ok(inner.index.lookup(cert_arn))
    }
}
