//! The builder the rules are written with: a guard and an effect, grown one condition and one
//! attribute at a time, so each rule in `Rule::for_change` reads as what it checks and writes.

use time::OffsetDateTime;

use super::{Cond, Effect, Rule};
use crate::item::{attr, is_unsettled, Attr, UNSETTLED_VALUE};
use crate::record::StateKind;

pub(super) struct Builder {
    pub(super) rule: Rule,
}

impl Builder {
    pub(super) fn new(name: &'static str) -> Self {
        Builder {
            rule: Rule {
                name,
                guard: Vec::new(),
                effect: Vec::new(),
            },
        }
    }
    pub(super) fn state(mut self, kinds: &[StateKind]) -> Self {
        self.rule.guard.push(Cond::StateIn(kinds.to_vec()));
        self
    }
    pub(super) fn equals(mut self, a: &'static str, v: Attr) -> Self {
        self.rule.guard.push(Cond::Equals(a, v));
        self
    }
    pub(super) fn absent(mut self, a: &'static str) -> Self {
        self.rule.guard.push(Cond::Absent(a));
        self
    }
    /// Enters `kind` at `now`: version bumped, state and its start time written, and the
    /// unsettled-index key set while a rotation is in flight or failed, removed otherwise (so
    /// the index holds exactly the hosts the reconcile pass must look at, on every store).
    pub(super) fn enter(mut self, kind: StateKind, now: OffsetDateTime) -> Self {
        self.rule.guard.push(Cond::AbsentOrNumber(attr::VERSION));
        self.rule.effect.push(Effect::BumpVersion);
        let b = self
            .set(attr::STATE, Attr::s(kind.as_str()))
            .set(attr::STATE_SINCE, Attr::n(now.unix_timestamp()));
        if is_unsettled(kind) {
            b.set(attr::UNSETTLED, Attr::s(UNSETTLED_VALUE))
        } else {
            b.remove(&[attr::UNSETTLED])
        }
    }
    /// The version bumped, with no change of state.
    pub(super) fn bump(mut self) -> Self {
        self.rule.guard.push(Cond::AbsentOrNumber(attr::VERSION));
        self.rule.effect.push(Effect::BumpVersion);
        self
    }
    pub(super) fn set(mut self, a: &'static str, v: Attr) -> Self {
        self.rule.effect.push(Effect::Set(a, v));
        self
    }
    pub(super) fn set_opt(self, a: &'static str, v: Option<Attr>) -> Self {
        match v {
            Some(v) => self.set(a, v),
            None => self.remove(&[a]),
        }
    }
    pub(super) fn remove(mut self, attrs: &[&'static str]) -> Self {
        self.rule
            .effect
            .extend(attrs.iter().map(|a| Effect::Remove(a)));
        self
    }
}
