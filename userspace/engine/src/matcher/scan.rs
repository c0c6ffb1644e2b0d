//! Building and scanning the automata: one Aho-Corasick DFA per field holds the gate
//! literals (`gate.rs`) of all a bucket's rules, lower-cased. Per event, each field the bucket
//! gates on is searched once, lower-cased (in place when it already is, else on the stack):
//! at every position where a literal starts, the longest literal starting there is reported,
//! and the rules of the literals that are its prefixes ride along with it (precomputed), so
//! every literal present is seen. Long fields (command lines, paths) use the automaton's SIMD
//! prefilter. A bucket of a handful of rules skips the prefilter: evaluating them costs less
//! than searching.
//!
//! Floor 5 (the compiled matcher): may use `gate`, `eval`, `rule` and `field`.

use std::collections::HashMap;

use aho_corasick::{Input, MatchKind, automaton::Automaton, dfa::DFA};

use super::{
    eval::{EventCtx, needs_lowering},
    gate::{Atom, Costs},
};
use crate::{field::Field, rule::Rule};

/// The rules that apply to one shape of event.
#[derive(Clone, Debug, Default)]
pub(super) struct Bucket {
    /// Every rule of the bucket, in rule order.
    pub(super) rules: Vec<u32>,
    /// The rules without a gate, evaluated on every event (ascending).
    pub(super) always: Vec<u32>,
    /// One automaton per field over the gate literals.
    pub(super) scanners: Vec<Scanner>,
    /// For each rule (by index), how many groups its gate has.
    pub(super) groups: Vec<u8>,
}

/// Buckets of at most this many rules evaluate them all, without a prefilter.
const DIRECT_MAX: usize = 4;

/// The gate literals of one field.
#[derive(Clone, Debug)]
pub(super) struct Scanner {
    pub(super) field: Field,
    /// Over the lower-cased literals, searched in lower-cased values (so that the automaton's
    /// SIMD prefilter, which only works case-sensitively, can skip ahead).
    automaton: DFA,
    /// Literal (pattern id) `p` satisfies the gate groups `targets[offsets[p]..offsets[p +
    /// 1]]`, each `rule << 2 | group`.
    offsets: Vec<u32>,
    targets: Vec<u32>,
}

/// The literals of one field and the rules each gates, in first-seen order.
type Literals = Vec<(Box<[u8]>, Vec<u32>)>;

/// Values at most this long are lower-cased on the stack for the prefilter.
const STACK_LOWER: usize = 512;

impl Bucket {
    pub(super) fn build(rules: &[Rule], members: Vec<u32>) -> Bucket {
        if members.len() <= DIRECT_MAX {
            // A handful of conditions cost less than searching the event's fields.
            return Bucket {
                always: members.clone(),
                rules: members,
                scanners: Vec::new(),
                groups: Vec::new(),
            };
        }
        let costs = Costs::new(members.iter().map(|&i| &rules[i as usize].detection));
        let mut always = Vec::new();
        // Per field: literal -> rules, in first-seen order.
        let mut by_field: Vec<(Field, Literals)> = Vec::new();
        let mut index: HashMap<Atom, usize> = HashMap::new();
        let mut groups = vec![0u8; rules.len()];
        for &i in &members {
            // No gate: evaluated on every event. A gate with an empty group: no event can
            // match (the rule tests fields no sensor reports), never evaluated.
            let Some(gate) = costs.gate(&rules[i as usize].detection) else {
                always.push(i);
                continue;
            };
            if gate.iter().any(Vec::is_empty) {
                continue;
            }
            groups[i as usize] = gate.len() as u8;
            for (g, group) in gate.into_iter().enumerate() {
                let entry = i << 2 | g as u32;
                for (field, lit) in group {
                    let pos = match by_field.iter().position(|(f, _)| *f == field) {
                        Some(p) => p,
                        None => {
                            by_field.push((field, Vec::new()));
                            by_field.len() - 1
                        }
                    };
                    let lits = &mut by_field[pos].1;
                    let at = *index.entry((field, lit.clone())).or_insert_with(|| {
                        lits.push((lit, Vec::new()));
                        lits.len() - 1
                    });
                    let targets = &mut lits[at].1;
                    if targets.last() != Some(&entry) {
                        targets.push(entry);
                    }
                }
            }
        }
        let mut scanners = Vec::with_capacity(by_field.len());
        for (field, mut lits) in by_field {
            // The search reports, at each position where literals start, only the longest
            // one: the shorter ones starting there are its prefixes, so their rules ride
            // along with it.
            for i in 0..lits.len() {
                let mut extra: Vec<u32> = Vec::new();
                for j in 0..lits.len() {
                    if i != j && lits[i].0.starts_with(&lits[j].0) {
                        extra.extend_from_slice(&lits[j].1);
                    }
                }
                let targets = &mut lits[i].1;
                targets.extend(extra);
                targets.sort_unstable();
                targets.dedup();
            }
            // The SIMD prefilter pays off in long values only.
            let long = matches!(
                field,
                Field::CommandLine
                    | Field::ParentCommandLine
                    | Field::ProcessPath
                    | Field::ParentPath
            );
            let built = DFA::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .prefilter(long)
                .build(lits.iter().map(|(l, _)| l));
            let Ok(automaton) = built else {
                // Too many literals for one DFA: their rules are evaluated on every event.
                always.extend(lits.iter().flat_map(|(_, t)| t.iter().map(|e| e >> 2)));
                continue;
            };
            let mut offsets = Vec::with_capacity(lits.len() + 1);
            let mut targets = Vec::new();
            offsets.push(0);
            for (_, t) in &lits {
                targets.extend_from_slice(t);
                offsets.push(targets.len() as u32);
            }
            scanners.push(Scanner {
                field,
                automaton,
                offsets,
                targets,
            });
        }
        always.sort_unstable();
        always.dedup();
        Bucket {
            rules: members,
            always,
            scanners,
            groups,
        }
    }
}

impl Scanner {
    /// Adds to the context's candidates the rules whose literal occurs in `value` (value `idx`
    /// of the field).
    pub(super) fn scan(&self, value: &str, idx: usize, cx: &mut EventCtx<'_>) {
        fn lowered<const N: usize>(value: &str, scanner: &Scanner, cx: &mut EventCtx<'_>) {
            let mut stack = [0u8; N];
            let hay = &mut stack[..value.len()];
            hay.copy_from_slice(value.as_bytes());
            hay.make_ascii_lowercase();
            scanner.search(hay, cx);
        }
        let bytes = value.as_bytes();
        if !needs_lowering(bytes) {
            // Already lower case (most values on Linux).
            return self.search(bytes, cx);
        }
        match value.len() {
            n if n <= 64 && value.is_ascii() => lowered::<64>(value, self, cx),
            n if n <= STACK_LOWER && value.is_ascii() => lowered::<STACK_LOWER>(value, self, cx),
            _ => {
                let (pos, hay) = cx.take_lowered(self.field, idx, value);
                self.search(hay.as_bytes(), cx);
                cx.put_lowered(pos, hay);
            }
        }
    }

    /// Finds every position where a literal starts in the lower-cased `hay`, with the longest
    /// literal starting there.
    fn search(&self, hay: &[u8], cx: &mut EventCtx<'_>) {
        let mut at = 0;
        while let Ok(Some(m)) = self
            .automaton
            .try_find(&Input::new(hay).span(at..hay.len()))
        {
            let p = m.pattern().as_usize();
            cx.add_hits(&self.targets[self.offsets[p] as usize..self.offsets[p + 1] as usize]);
            at = m.start() + 1;
        }
    }
}
