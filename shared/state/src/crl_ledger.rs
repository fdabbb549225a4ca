//! The CRL ledger: one item per CA (`crl#<CA id>`) that serialises what reaches the trust anchor.
//!
//! Why a claim and not just a number: S3 events for two CRLs can be delivered concurrently and
//! in any order. Comparing with the last imported number and writing it afterwards lets both
//! pass the comparison, and the slower `UpdateCrl` then leaves the older CRL on the anchor (or
//! two first `ImportCrl`s leave two CRLs). So an import first **claims** the CRL number with a
//! conditional write on the ledger's version (the claim holds only if nothing moved since the
//! read, and only one claim is live at a time), then touches the anchor, then **settles** the
//! ledger (number applied, claim cleared). A competing event that finds a live claim fails as
//! retryable and is delivered again later; one that finds a newer number applied is stale.
//!
//! A claim lives for [`CLAIM_LEASE`], longer than CRLProcessor's timeout, so a holder that
//! crashed is taken over only once it can no longer write. The same decisions
//! ([`decide_claim`]) and the same item effects ([`claim_effect`], [`settle_effect`],
//! [`release_effect`], guarded by the version) are carried out by the DynamoDB store and by
//! the in-memory one.
//!
//! CRL numbers are kept as lower-case hex without leading zeros (as `pki::CrlNumber` writes
//! them) and compared numerically.

use std::cmp::Ordering;

use time::{Duration, OffsetDateTime};

use crate::item::{Attr, Item, SERVICE_KEY_PREFIX};

/// How long a claim holds the ledger: CRLProcessor's timeout (120 s) plus its calls' margins.
pub const CLAIM_LEASE: Duration = Duration::minutes(5);

/// The ledger item's attributes.
pub mod attr {
    /// The last CRL number applied to the trust anchor (hex).
    pub const CRL_NUMBER: &str = "crlNumber";
    /// When it was applied (epoch seconds).
    pub const IMPORTED_AT: &str = "importedAt";
    /// The trust anchor CRL it was applied to.
    pub const ANCHOR_CRL_ID: &str = "anchorCrlId";
    /// Bumped by every write: what a claim's condition compares.
    pub const LEDGER_VERSION: &str = "ledgerVersion";
    /// The claimed CRL number (hex), while an import is under way.
    pub const CLAIM_NUMBER: &str = "claimNumber";
    /// Who claimed (one invocation's token).
    pub const CLAIM_TOKEN: &str = "claimToken";
    /// Until when the claim holds (epoch seconds).
    pub const CLAIM_UNTIL: &str = "claimUntil";
}

/// The ledger item's key for CA `ca_id`.
pub fn ledger_key(ca_id: &str) -> String {
    format!("{SERVICE_KEY_PREFIX}{ca_id}")
}

/// A live or expired claim on the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlClaim {
    /// The CRL number being imported (hex).
    pub number: String,
    /// The claiming invocation's token.
    pub token: String,
    /// Until when it holds.
    pub until: OffsetDateTime,
}

/// The ledger as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The version read (0: no item, or one written before versions).
    pub version: u64,
    /// The last CRL number applied (hex).
    pub applied: Option<String>,
    /// The trust anchor CRL it went to.
    pub anchor_crl_id: Option<String>,
    /// The claim, if one was written and not cleared.
    pub claim: Option<CrlClaim>,
}

/// What an import of CRL `number` may do, given the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Claim it (nothing newer applied, no live claim of someone else).
    Claim,
    /// This number is already applied (a duplicate, or a retry after a half-done attempt).
    AlreadyApplied,
    /// A newer number is applied: this CRL is stale.
    Older {
        /// The applied number.
        applied: String,
    },
    /// Another import holds a live claim: retry later.
    Busy {
        /// The number it claimed.
        claimed: String,
    },
}

/// Compares two hex CRL numbers numerically (non-hex text sorts as zero).
pub fn compare_numbers(a: &str, b: &str) -> Ordering {
    fn digits(s: &str) -> &str {
        let s = s.strip_prefix("0x").unwrap_or(s).trim_start_matches('0');
        if s.chars().all(|c| c.is_ascii_hexdigit()) {
            s
        } else {
            ""
        }
    }
    let (a, b) = (digits(a), digits(b));
    a.len()
        .cmp(&b.len())
        .then_with(|| a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()))
}

/// Decides on an import of `number` at `now`.
pub fn decide_claim(entry: &LedgerEntry, number: &str, now: OffsetDateTime) -> ClaimDecision {
    if let Some(applied) = &entry.applied {
        match compare_numbers(number, applied) {
            Ordering::Equal => return ClaimDecision::AlreadyApplied,
            Ordering::Less => {
                return ClaimDecision::Older {
                    applied: applied.clone(),
                }
            }
            Ordering::Greater => {}
        }
    }
    match &entry.claim {
        Some(c) if c.until > now => ClaimDecision::Busy {
            claimed: c.number.clone(),
        },
        _ => ClaimDecision::Claim,
    }
}

/// The ledger read from its item (`None`: no item).
pub fn entry_from_item(item: Option<&Item>) -> LedgerEntry {
    let Some(item) = item else {
        return LedgerEntry::default();
    };
    let s = |a: &str| match item.get(a) {
        Some(Attr::S(v)) => Some(v.clone()),
        _ => None,
    };
    let n = |a: &str| match item.get(a) {
        Some(Attr::N(v)) => v.parse::<i64>().ok(),
        _ => None,
    };
    let claim = match (
        s(attr::CLAIM_NUMBER),
        s(attr::CLAIM_TOKEN),
        n(attr::CLAIM_UNTIL),
    ) {
        (Some(number), Some(token), Some(until)) => Some(CrlClaim {
            number,
            token,
            until: OffsetDateTime::from_unix_timestamp(until).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }),
        _ => None,
    };
    LedgerEntry {
        version: n(attr::LEDGER_VERSION)
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0),
        applied: s(attr::CRL_NUMBER),
        anchor_crl_id: s(attr::ANCHOR_CRL_ID),
        claim,
    }
}

/// One write to the ledger item: attributes set and removed, the version set to `next_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWrite {
    /// The version the item must hold (0: no version attribute).
    pub expected_version: u64,
    /// The token the live claim must carry, if the write is the claim holder's.
    pub holder: Option<String>,
    /// Attributes written (the version among them).
    pub set: Vec<(&'static str, Attr)>,
    /// Attributes removed.
    pub remove: Vec<&'static str>,
}

impl LedgerWrite {
    /// Whether the write's condition holds on `item`.
    pub fn holds(&self, item: Option<&Item>) -> bool {
        let entry = entry_from_item(item);
        let version_ok = match &self.holder {
            Some(_) => true,
            None => entry.version == self.expected_version,
        };
        let holder_ok = match &self.holder {
            None => true,
            Some(t) => item
                .and_then(|i| i.get(attr::CLAIM_TOKEN))
                .is_some_and(|v| v.same_as(&Attr::s(t))),
        };
        version_ok && holder_ok
    }

    /// `item` after the write (`key` names a new item).
    pub fn effect_on(&self, key: &str, item: Option<&Item>) -> Item {
        let mut out = item.cloned().unwrap_or_else(|| {
            let mut i = Item::new();
            i.insert(crate::item::attr::HOST_ID.to_owned(), Attr::s(key));
            i
        });
        for (a, v) in &self.set {
            out.insert((*a).to_owned(), v.clone());
        }
        for a in &self.remove {
            out.remove(*a);
        }
        out
    }
}

/// Claims the ledger for `claim`, if it still holds `entry.version`.
pub fn claim_effect(entry: &LedgerEntry, claim: &CrlClaim) -> LedgerWrite {
    LedgerWrite {
        expected_version: entry.version,
        holder: None,
        set: vec![
            (attr::LEDGER_VERSION, Attr::n(entry.version as i64 + 1)),
            (attr::CLAIM_NUMBER, Attr::s(&claim.number)),
            (attr::CLAIM_TOKEN, Attr::s(&claim.token)),
            (attr::CLAIM_UNTIL, Attr::n(claim.until.unix_timestamp())),
        ],
        remove: vec![],
    }
}

/// Records `number` applied to anchor CRL `crl_id` and clears the claim, if `token` still holds
/// it. The version is bumped by the store (`version + 1`, as read under the same condition).
pub fn settle_effect(
    entry_version: u64,
    token: &str,
    number: &str,
    crl_id: &str,
    now: OffsetDateTime,
) -> LedgerWrite {
    LedgerWrite {
        expected_version: entry_version,
        holder: Some(token.to_owned()),
        set: vec![
            (attr::LEDGER_VERSION, Attr::n(entry_version as i64 + 1)),
            (attr::CRL_NUMBER, Attr::s(number)),
            (attr::ANCHOR_CRL_ID, Attr::s(crl_id)),
            (attr::IMPORTED_AT, Attr::n(now.unix_timestamp())),
        ],
        remove: vec![attr::CLAIM_NUMBER, attr::CLAIM_TOKEN, attr::CLAIM_UNTIL],
    }
}

/// Clears the claim of `token` (a failed import gives way at once rather than at the lease's end).
pub fn release_effect(entry_version: u64, token: &str) -> LedgerWrite {
    LedgerWrite {
        expected_version: entry_version,
        holder: Some(token.to_owned()),
        set: vec![(attr::LEDGER_VERSION, Attr::n(entry_version as i64 + 1))],
        remove: vec![attr::CLAIM_NUMBER, attr::CLAIM_TOKEN, attr::CLAIM_UNTIL],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-01 0:00 UTC);

    fn entry(applied: Option<&str>, claim: Option<(&str, i64)>) -> LedgerEntry {
        LedgerEntry {
            version: 3,
            applied: applied.map(str::to_owned),
            anchor_crl_id: None,
            claim: claim.map(|(n, secs)| CrlClaim {
                number: n.into(),
                token: "t".into(),
                until: NOW + Duration::seconds(secs),
            }),
        }
    }

    #[test]
    fn numbers_compare_numerically() {
        assert_eq!(compare_numbers("a", "9"), Ordering::Greater);
        assert_eq!(compare_numbers("10", "f"), Ordering::Greater);
        assert_eq!(compare_numbers("01", "1"), Ordering::Equal);
        assert_eq!(compare_numbers("FF", "ff"), Ordering::Equal);
    }

    #[test]
    fn a_claim_needs_a_newer_number_and_no_live_claim() {
        assert_eq!(
            decide_claim(&entry(None, None), "1", NOW),
            ClaimDecision::Claim
        );
        assert_eq!(
            decide_claim(&entry(Some("2"), None), "3", NOW),
            ClaimDecision::Claim
        );
        assert_eq!(
            decide_claim(&entry(Some("2"), None), "2", NOW),
            ClaimDecision::AlreadyApplied
        );
        assert_eq!(
            decide_claim(&entry(Some("a"), None), "9", NOW),
            ClaimDecision::Older {
                applied: "a".into()
            }
        );
        assert_eq!(
            decide_claim(&entry(Some("2"), Some(("4", 10))), "3", NOW),
            ClaimDecision::Busy {
                claimed: "4".into()
            }
        );
        assert_eq!(
            decide_claim(&entry(Some("2"), Some(("4", -1))), "3", NOW),
            ClaimDecision::Claim,
            "an expired claim is taken over"
        );
    }

    #[test]
    fn writes_hold_on_the_version_or_the_claim_token() {
        let key = ledger_key("ca");
        let claim = CrlClaim {
            number: "5".into(),
            token: "me".into(),
            until: NOW + CLAIM_LEASE,
        };
        let w = claim_effect(&LedgerEntry::default(), &claim);
        assert!(w.holds(None));
        let item = w.effect_on(&key, None);
        let read = entry_from_item(Some(&item));
        assert_eq!((read.version, read.claim.as_ref()), (1, Some(&claim)));
        assert!(!w.holds(Some(&item)), "the version moved");
        assert!(!settle_effect(1, "other", "5", "id", NOW).holds(Some(&item)));
        let s = settle_effect(1, "me", "5", "id", NOW);
        assert!(s.holds(Some(&item)));
        let settled = entry_from_item(Some(&s.effect_on(&key, Some(&item))));
        assert_eq!(settled.applied.as_deref(), Some("5"));
        assert_eq!(settled.anchor_crl_id.as_deref(), Some("id"));
        assert_eq!(settled.claim, None);
        assert_eq!(settled.version, 2);
        assert!(release_effect(1, "me").holds(Some(&item)));
    }
}
