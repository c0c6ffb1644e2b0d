//! The compiled rule set, evaluated per event.
//!
//! Rules are first indexed by what they can match (platform × process / DNS query / DNS
//! response), so an event only meets the rules that apply to it. Within each of these six
//! buckets, every rule is reduced at load time to its *gate*: literals one of which any event
//! it matches must contain, derived from the condition tree (a selection needs one of its
//! alternatives, an alternative one of its field tests, `and` the cheapest of its terms, `or`
//! all of its terms, `not` nothing). "Cheapest" weighs how often a literal should open the
//! gate: its field (an exact process name is rare, a command line is full of flags), its
//! letters and digits, and how many rules of the bucket share it.
//!
//! One Aho-Corasick DFA per field holds the gate literals of all the bucket's rules,
//! lower-cased. Per event, each field the bucket gates on is searched once, lower-cased (in
//! place when it already is, else on the stack): at every position where a literal starts, the
//! longest literal starting there is reported, and the rules of the literals that are its
//! prefixes ride along with it (precomputed), so every literal present is seen. Long fields
//! (command lines, paths) use the automaton's SIMD prefilter. Only the rules whose literals
//! were found, plus the few without a usable literal (pure regular expressions, `exists`,
//! negations, numbers), have their condition evaluated, in rule order. The cost per event
//! grows with the event's size and the matches, barely with the number of rules. A bucket of
//! a handful of rules skips the prefilter: evaluating them costs less than searching.
//!
//! Evaluation borrows everything from the event and the rules and allocates nothing once the
//! thread's buffers have grown: values are lower-cased on the stack, or (non-ASCII, or long)
//! once per event into buffers the thread reuses; conditions compare ASCII values ignoring
//! case in place.

use std::collections::HashMap;

use aho_corasick::{Input, MatchKind, automaton::Automaton, dfa::DFA};

use crate::{
    condition::Cond,
    detection::{Detection, FieldTest, Selection, Test, Values},
    event::{DnsMessageType, Event, Platform},
    field::{Category, Field, StackStr, Value},
    pattern::lowercase_into,
    rule::{DnsPhase, Rule},
};

/// Rule indices by event shape, each bucket with its literal prefilter.
#[derive(Clone, Debug, Default)]
pub(crate) struct Matcher {
    /// `[platform * 3 + shape]`, shape 0 = process, 1 = DNS query, 2 = DNS response.
    buckets: [Bucket; 6],
}

/// The rules that apply to one shape of event.
#[derive(Clone, Debug, Default)]
struct Bucket {
    /// Every rule of the bucket, in rule order.
    rules: Vec<u32>,
    /// The rules without a gate, evaluated on every event (ascending).
    always: Vec<u32>,
    /// One automaton per field over the gate literals.
    scanners: Vec<Scanner>,
    /// For each rule (by index), how many groups its gate has.
    groups: Vec<u8>,
}

/// Buckets of at most this many rules evaluate them all, without a prefilter.
const DIRECT_MAX: usize = 4;

/// The gate literals of one field.
#[derive(Clone, Debug)]
struct Scanner {
    field: Field,
    /// Over the lower-cased literals, searched in lower-cased values (so that the automaton's
    /// SIMD prefilter, which only works case-sensitively, can skip ahead).
    automaton: DFA,
    /// Literal (pattern id) `p` satisfies the gate groups `targets[offsets[p]..offsets[p +
    /// 1]]`, each `rule << 2 | group`.
    offsets: Vec<u32>,
    targets: Vec<u32>,
}

/// A literal a field's value must contain (lower-cased).
type Atom = (Field, Box<[u8]>);

/// Literals one of which a matching event contains; empty when no event can match.
type Group = Vec<Atom>;

/// Groups of literals that must all be found for a rule to be a candidate.
type Gate = Vec<Group>;

/// At most this many groups per rule (a candidate entry holds the group in two bits).
const MAX_GROUPS: usize = 3;

/// A group beyond a rule's cheapest is kept when it costs at most this much (see
/// [`Costs::of`]): rarer literals narrow the candidates, common ones only add work.
const EXTRA_GROUP_COST: f64 = 4.0;

/// The literals of one field and the rules each gates, in first-seen order.
type Literals = Vec<(Box<[u8]>, Vec<u32>)>;

/// The bucket of events of `platform` and `shape`.
fn bucket_of(platform: Platform, shape: usize) -> usize {
    let p = match platform {
        Platform::Linux => 0,
        Platform::Windows => 1,
    };
    p * 3 + shape
}

/// Whether the prefilter may gate on `field`: a text field with many distinct values (not
/// `message_type`, `transport`, ... whose few values would open the gate for most events).
fn gates_on(field: Field) -> bool {
    field.is_text()
        && !matches!(
            field,
            Field::Initiated
                | Field::MessageType
                | Field::Transport
                | Field::QueryType
                | Field::ReplyCode
        )
}

/// How often a literal of `field` is expected to open the gate, relatively: an exact process
/// or file name is rare and its field is short; a command line is long and full of flags.
fn field_weight(field: Field) -> f64 {
    match field {
        Field::ProcessName
        | Field::OriginalFileName
        | Field::ParentName
        | Field::ParentUser
        | Field::User
        | Field::UserId
        | Field::Host => 0.05,
        Field::ProcessPath | Field::ParentPath | Field::Query | Field::Answer => 0.5,
        _ => 1.0,
    }
}

/// What the gate choice knows: how many rules of the bucket use each literal anywhere.
struct Costs {
    popularity: HashMap<Atom, u32>,
}

impl Costs {
    /// Counts the literals of `rules`: a literal many rules share opens the gate of all of
    /// them at once, so a rule should rather gate on one of its own.
    fn new<'r>(rules: impl Iterator<Item = &'r Detection>) -> Costs {
        let mut popularity: HashMap<Atom, u32> = HashMap::new();
        for d in rules {
            let mut mine: Vec<Atom> = Vec::new();
            for test in d
                .selections
                .iter()
                .flat_map(|s| s.alternatives.iter().flatten())
            {
                let tests: Vec<&Test> = match &test.values {
                    Values::Any(t) => t.iter().collect(),
                    Values::All(g) => g.iter().flatten().collect(),
                };
                for t in tests {
                    if let Test::Pattern(p) = t
                        && let Some(lit) = p.prefilter_literal()
                    {
                        let atom = (test.field, lit);
                        if !mine.contains(&atom) {
                            mine.push(atom);
                        }
                    }
                }
            }
            for atom in mine {
                *popularity.entry(atom).or_default() += 1;
            }
        }
        Costs { popularity }
    }

    /// What a set of atoms costs the prefilter: how often each is expected to open the gate
    /// (letters and digits make a literal selective; spaces, dashes and dots hardly do), times
    /// how many rules it opens.
    fn of(&self, atoms: &[Atom]) -> f64 {
        atoms
            .iter()
            .map(|atom| {
                let (field, lit) = atom;
                let selective = lit
                    .iter()
                    .filter(|b| b.is_ascii_alphanumeric() || !b.is_ascii())
                    .count() as f64;
                let shared = f64::from(self.popularity.get(atom).copied().unwrap_or(1).max(1));
                field_weight(*field) * (1.0 + 16.0 / (selective * selective).max(0.01)) * shared
            })
            .sum()
    }

    /// The cheapest of several groups (`None` ones give no gate).
    fn cheapest(&self, needs: impl Iterator<Item = Option<Group>>) -> Option<Group> {
        needs
            .flatten()
            .min_by(|a, b| self.of(a).total_cmp(&self.of(b)))
    }

    /// Gates that must all hold: their groups together, the cheapest first. Beyond the first,
    /// only groups selective enough to be worth searching for are kept.
    fn conjoin(&self, gates: impl Iterator<Item = Option<Gate>>) -> Option<Gate> {
        let mut groups: Gate = Vec::new();
        for g in gates.flatten().flatten() {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        if groups.is_empty() {
            return None;
        }
        groups.sort_by(|a, b| self.of(a).total_cmp(&self.of(b)));
        let mut kept = 1;
        while kept < groups.len().min(MAX_GROUPS) && self.of(&groups[kept]) <= EXTRA_GROUP_COST {
            kept += 1;
        }
        groups.truncate(kept);
        Some(groups)
    }

    /// Gates one of which holds: each reduced to its cheapest group, all of those together
    /// in one group; no gate if one of them has none.
    fn disjoin(&self, gates: impl Iterator<Item = Option<Gate>>) -> Option<Gate> {
        let mut gates: Vec<Gate> = gates.collect::<Option<_>>()?;
        if gates.len() == 1 {
            return gates.pop();
        }
        union(
            gates
                .into_iter()
                .map(|g| self.cheapest(g.into_iter().map(Some))),
        )
        .map(|group| vec![group])
    }

    /// The literals one of which every event matching `test` contains. An empty group means
    /// no event matches it (a field no sensor reports, tested for a value).
    fn need_test(&self, test: &FieldTest) -> Option<Group> {
        if test.field.is_unreported() {
            return (!test.matches_absent).then(Vec::new);
        }
        if !gates_on(test.field) || test.matches_absent {
            return None;
        }
        let lit = |t: &Test| match t {
            Test::Pattern(p) => p.prefilter_literal().map(|l| vec![(test.field, l)]),
            Test::Absent | Test::Present | Test::Regex(_) => None,
        };
        match &test.values {
            Values::Any(tests) => union(tests.iter().map(lit)),
            Values::All(groups) => self.cheapest(groups.iter().map(|g| union(g.iter().map(lit)))),
        }
    }

    fn need_selection(&self, sel: &Selection) -> Option<Gate> {
        self.disjoin(
            sel.alternatives.iter().map(|tests| {
                self.conjoin(tests.iter().map(|t| self.need_test(t).map(|g| vec![g])))
            }),
        )
    }

    fn need_cond(&self, c: &Cond, sels: &[Selection]) -> Option<Gate> {
        match c {
            Cond::Sel(i) => self.need_selection(&sels[*i]),
            Cond::Not(_) => None,
            Cond::And(terms) => self.conjoin(terms.iter().map(|t| self.need_cond(t, sels))),
            Cond::Or(terms) => self.disjoin(terms.iter().map(|t| self.need_cond(t, sels))),
        }
    }

    /// The gate of a detection: groups of literals, one literal of each group being in every
    /// event the detection matches.
    fn gate(&self, d: &Detection) -> Option<Gate> {
        self.need_cond(&d.condition, &d.selections)
    }
}

/// All of several alternatives one of which holds: no gate if one of them has none, nothing
/// (no event can match) if none has a literal. A literal that contains another of the same
/// field adds nothing (wherever it occurs, the shorter one does) and is dropped.
fn union(needs: impl Iterator<Item = Option<Group>>) -> Option<Group> {
    let mut all: Vec<Atom> = Vec::new();
    for n in needs {
        all.extend(n?);
    }
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let mut out: Vec<Atom> = Vec::new();
    for (i, (f, lit)) in all.iter().enumerate() {
        let redundant = all.iter().enumerate().any(|(j, (g, other))| {
            g == f
                && contains(lit, other)
                && (other.len() < lit.len() || (other.len() == lit.len() && j < i))
        });
        if !redundant {
            out.push((*f, lit.clone()));
        }
    }
    Some(out)
}

impl Bucket {
    fn build(rules: &[Rule], members: Vec<u32>) -> Bucket {
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
    fn scan(&self, value: &str, idx: usize, cx: &mut EventCtx<'_>) {
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
                let pos = cx.lower_pos(self.field, idx, value);
                let scratch = cx.scratch.as_mut().expect("lower_pos took the scratch");
                let hay = std::mem::take(&mut scratch.lowered[pos].2);
                self.search(hay.as_bytes(), cx);
                cx.scratch.as_mut().expect("still there").lowered[pos].2 = hay;
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

/// Whether `b` has an upper-case ASCII letter or a non-ASCII byte (checked 16 bytes at a
/// time, without branches inside a block, so that the compiler vectorizes it).
fn needs_lowering(b: &[u8]) -> bool {
    b.chunks(16).any(|block| {
        block.iter().fold(0u8, |acc, &x| {
            acc | u8::from(x.wrapping_sub(b'A') < 26) | (x & 0x80)
        }) != 0
    })
}

/// ASCII values at most this long are compared with patterns ignoring case in place; longer
/// ones (and non-ASCII ones) are lower-cased once per event instead.
const FOLD_IN_PLACE: usize = 32;

/// Values at most this long are lower-cased on the stack for the prefilter.
const STACK_LOWER: usize = 512;

/// Candidate lists longer than this are deduplicated as they grow (a literal found many
/// times in a long value).
const HITS_COMPACT: usize = 1024;

impl Matcher {
    /// Indexes `rules` (their order is kept within each bucket) and compiles each bucket's
    /// prefilter.
    pub(crate) fn new(rules: &[Rule]) -> Matcher {
        let mut members: [Vec<u32>; 6] = Default::default();
        for (i, rule) in rules.iter().enumerate() {
            for &platform in &rule.platforms {
                let shapes: &[usize] = match (rule.category, rule.dns_phase) {
                    (Category::ProcessCreation, _) => &[0],
                    (Category::Dns, DnsPhase::Query) => &[1],
                    (Category::Dns, DnsPhase::Response) => &[2],
                    (Category::Dns, DnsPhase::Both) => &[1, 2],
                };
                for &s in shapes {
                    members[bucket_of(platform, s)].push(i as u32);
                }
            }
        }
        Matcher {
            buckets: members.map(|m| Bucket::build(rules, m)),
        }
    }

    fn bucket(&self, event: &Event) -> &Bucket {
        let shape = match event {
            Event::Process(_) => 0,
            Event::Dns(d) if d.message_type == DnsMessageType::Query => 1,
            Event::Dns(_) => 2,
        };
        &self.buckets[bucket_of(event.platform(), shape)]
    }

    /// The indices of the rules that apply to `event`.
    #[cfg(test)]
    pub(crate) fn candidates(&self, event: &Event) -> &[u32] {
        &self.bucket(event).rules
    }

    /// How many rules of each bucket have no gate and are evaluated on every event:
    /// `(bucket rules, ungated rules)` summed over the buckets.
    pub(crate) fn gate_stats(&self) -> (usize, usize) {
        self.buckets
            .iter()
            .fold((0, 0), |(r, a), b| (r + b.rules.len(), a + b.always.len()))
    }

    /// Calls `hit` with the index of each rule of `rules` (the slice this matcher was built
    /// from) whose detection matches `event`, in rule order.
    pub(crate) fn for_each_match(
        &self,
        rules: &[Rule],
        event: &Event,
        mut hit: impl FnMut(usize, &mut EventCtx<'_>),
    ) {
        let b = self.bucket(event);
        if b.rules.is_empty() {
            return;
        }
        let mut cx = EventCtx::new(event);
        if b.scanners.is_empty() {
            // No prefilter (a handful of rules, or none with a literal).
            for &i in &b.always {
                let i = i as usize;
                if rules[i].detection.matches(&mut cx) {
                    hit(i, &mut cx);
                }
            }
            return;
        }
        for s in &b.scanners {
            match s.field.value(event) {
                Value::Str(v) => s.scan(v, 0, &mut cx),
                Value::Strs(list) => {
                    for (i, v) in list.iter().enumerate() {
                        if !v.is_empty() {
                            s.scan(v, i, &mut cx);
                        }
                    }
                }
                _ => {}
            }
        }
        if cx.hits_len == 0 && b.always.is_empty() {
            return;
        }
        let mut hits = cx.take_hits();
        hits.sort_unstable();
        hits.dedup();
        // The next rule all of whose gate groups were found.
        let mut h = 0;
        let mut next_gated = || {
            while h < hits.len() {
                let rule = hits.get(h) >> 2;
                let mut found = 0u8;
                while h < hits.len() && hits.get(h) >> 2 == rule {
                    found |= 1 << (hits.get(h) & 3);
                    h += 1;
                }
                if found == (1u8 << b.groups[rule as usize]) - 1 {
                    return Some(rule);
                }
            }
            None
        };
        // Gated candidates and ungated rules, merged in rule order.
        let mut gated = next_gated();
        let mut a = 0;
        loop {
            let next = match (b.always.get(a), gated) {
                (Some(&x), Some(y)) if x <= y => {
                    a += 1;
                    if x == y {
                        gated = next_gated();
                    }
                    x
                }
                (_, Some(y)) => {
                    gated = next_gated();
                    y
                }
                (Some(&x), None) => {
                    a += 1;
                    x
                }
                (None, None) => break,
            } as usize;
            if rules[next].detection.matches(&mut cx) {
                hit(next, &mut cx);
            }
        }
        cx.give_hits(hits);
    }

    /// The reference evaluation, without the prefilter: every rule that applies to `event`
    /// is evaluated in turn. Same results as [`Matcher::for_each_match`], slower.
    pub(crate) fn for_each_match_rule_by_rule(
        &self,
        rules: &[Rule],
        event: &Event,
        mut hit: impl FnMut(usize, &mut EventCtx<'_>),
    ) {
        let b = self.bucket(event);
        if b.rules.is_empty() {
            return;
        }
        let mut cx = EventCtx::new(event);
        for &i in &b.rules {
            let i = i as usize;
            if rules[i].detection.matches(&mut cx) {
                hit(i, &mut cx);
            }
        }
    }
}

/// Lower-cased values: (field, index in a multi-valued field, text).
type Lowered = Vec<(Field, usize, String)>;

/// Buffers reused from event to event on one thread.
#[derive(Default)]
struct Scratch {
    lowered: Lowered,
    hits: Vec<u32>,
}

thread_local! {
    /// This thread's buffers, so that steady-state evaluation does not allocate.
    static SCRATCH: std::cell::Cell<Scratch> = const {
        std::cell::Cell::new(Scratch { lowered: Vec::new(), hits: Vec::new() })
    };
}

/// At most this many lower-casing buffers are kept for the next event.
const SCRATCH_KEEP: usize = 16;

/// Candidates kept inline before they spill into the thread's buffer.
const INLINE_HITS: usize = 16;

/// What evaluation of one event keeps between rules. The thread's buffers are only fetched
/// when needed (a non-ASCII or long value, many candidates), so that most events touch no
/// thread-local state.
pub(crate) struct EventCtx<'e> {
    event: &'e Event,
    /// The thread's buffers, once fetched; `lowered[..used]` hold this event's lower-cased
    /// values, `hits` the candidates beyond the inline ones.
    scratch: Option<Scratch>,
    used: usize,
    /// The first candidates found by the prefilter.
    inline_hits: [u32; INLINE_HITS],
    /// How many candidates there are (inline, then in the scratch).
    hits_len: usize,
}

impl<'e> EventCtx<'e> {
    pub(crate) fn new(event: &'e Event) -> Self {
        EventCtx {
            event,
            scratch: None,
            used: 0,
            inline_hits: [0; INLINE_HITS],
            hits_len: 0,
        }
    }

    /// The event.
    pub(crate) fn event(&self) -> &'e Event {
        self.event
    }

    fn scratch(&mut self) -> &mut Scratch {
        self.scratch
            .get_or_insert_with(|| SCRATCH.try_with(|s| s.take()).unwrap_or_default())
    }

    /// Adds prefilter candidates.
    fn add_hits(&mut self, rules: &[u32]) {
        for &r in rules {
            if self.hits_len < INLINE_HITS {
                self.inline_hits[self.hits_len] = r;
            } else {
                let inline = self.inline_hits;
                let spill = &mut self.scratch().hits;
                if spill.is_empty() {
                    spill.extend_from_slice(&inline);
                }
                spill.push(r);
                if spill.len() > HITS_COMPACT {
                    spill.sort_unstable();
                    spill.dedup();
                }
                self.hits_len = INLINE_HITS + spill.len();
                continue;
            }
            self.hits_len += 1;
        }
    }

    /// The candidates, as a buffer to give back with [`EventCtx::give_hits`].
    fn take_hits(&mut self) -> HitBuf {
        if self.hits_len <= INLINE_HITS {
            HitBuf::Inline(self.inline_hits, self.hits_len)
        } else {
            HitBuf::Spilled(std::mem::take(&mut self.scratch().hits))
        }
    }

    fn give_hits(&mut self, hits: HitBuf) {
        if let HitBuf::Spilled(mut v) = hits {
            v.clear();
            self.scratch().hits = v;
        }
        self.hits_len = 0;
    }

    /// Where `s` (value `idx` of `field`) lower-cased is in the scratch, computed once per
    /// event.
    fn lower_pos(&mut self, field: Field, idx: usize, s: &str) -> usize {
        let used = self.used;
        let scratch = self.scratch();
        match scratch.lowered[..used]
            .iter()
            .position(|(f, i, _)| *f == field && *i == idx)
        {
            Some(pos) => pos,
            None => {
                if used == scratch.lowered.len() {
                    scratch.lowered.push((field, idx, String::new()));
                }
                let slot = &mut scratch.lowered[used];
                slot.0 = field;
                slot.1 = idx;
                slot.2.clear();
                lowercase_into(s, &mut slot.2);
                self.used += 1;
                used
            }
        }
    }

    /// `s` (value `idx` of `field`) lower-cased, computed once per event.
    fn lower(&mut self, field: Field, idx: usize, s: &str) -> &str {
        let pos = self.lower_pos(field, idx, s);
        &self
            .scratch
            .as_ref()
            .expect("lower_pos took the scratch")
            .lowered[pos]
            .2
    }
}

/// Prefilter candidates, inline or in the thread's buffer.
enum HitBuf {
    Inline([u32; INLINE_HITS], usize),
    Spilled(Vec<u32>),
}

impl HitBuf {
    fn sort_unstable(&mut self) {
        match self {
            HitBuf::Inline(a, n) => a[..*n].sort_unstable(),
            HitBuf::Spilled(v) => v.sort_unstable(),
        }
    }

    fn dedup(&mut self) {
        match self {
            HitBuf::Inline(a, n) => {
                let mut w = 0;
                for r in 0..*n {
                    if w == 0 || a[w - 1] != a[r] {
                        a[w] = a[r];
                        w += 1;
                    }
                }
                *n = w;
            }
            HitBuf::Spilled(v) => v.dedup(),
        }
    }

    fn len(&self) -> usize {
        match self {
            HitBuf::Inline(_, n) => *n,
            HitBuf::Spilled(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> u32 {
        match self {
            HitBuf::Inline(a, _) => a[i],
            HitBuf::Spilled(v) => v[i],
        }
    }
}

impl Drop for EventCtx<'_> {
    fn drop(&mut self) {
        if let Some(mut scratch) = self.scratch.take() {
            scratch.lowered.truncate(SCRATCH_KEEP);
            scratch.hits.clear();
            let _ = SCRATCH.try_with(|s| s.set(scratch));
        }
    }
}

impl Detection {
    /// Whether the detection matches the context's event.
    pub(crate) fn matches(&self, cx: &mut EventCtx<'_>) -> bool {
        eval_cond(&self.condition, &self.selections, cx)
    }
}

fn eval_cond(c: &Cond, sels: &[Selection], cx: &mut EventCtx<'_>) -> bool {
    match c {
        Cond::Sel(i) => eval_selection(&sels[*i], cx),
        Cond::Not(inner) => !eval_cond(inner, sels, cx),
        Cond::And(terms) => terms.iter().all(|t| eval_cond(t, sels, cx)),
        Cond::Or(terms) => terms.iter().any(|t| eval_cond(t, sels, cx)),
    }
}

fn eval_selection(sel: &Selection, cx: &mut EventCtx<'_>) -> bool {
    sel.alternatives
        .iter()
        .any(|tests| tests.iter().all(|t| eval_field(t, cx)))
}

fn eval_field(t: &FieldTest, cx: &mut EventCtx<'_>) -> bool {
    let value = t.field.value(cx.event);
    match value {
        Value::Absent => t.matches_absent,
        Value::Str(s) => eval_one(t, s, 0, cx),
        Value::Int(n) => eval_one(t, StackStr::render(n).as_str(), 0, cx),
        Value::Ip(ip) => eval_one(t, StackStr::render(ip).as_str(), 0, cx),
        Value::Strs(list) => {
            let mut items = list.iter().enumerate().filter(|(_, s)| !s.is_empty());
            match &t.values {
                Values::Any(tests) => {
                    items.any(|(i, s)| tests.iter().any(|x| test_str(x, s, t.field, i, cx)))
                }
                Values::All(groups) => groups.iter().all(|g| {
                    list.iter()
                        .enumerate()
                        .filter(|(_, s)| !s.is_empty())
                        .any(|(i, s)| g.iter().any(|x| test_str(x, s, t.field, i, cx)))
                }),
            }
        }
    }
}

/// A single-valued field with value `s`.
fn eval_one(t: &FieldTest, s: &str, idx: usize, cx: &mut EventCtx<'_>) -> bool {
    match &t.values {
        Values::Any(tests) => tests.iter().any(|x| test_str(x, s, t.field, idx, cx)),
        Values::All(groups) => groups
            .iter()
            .all(|g| g.iter().any(|x| test_str(x, s, t.field, idx, cx))),
    }
}

/// One test against a present, non-empty value.
fn test_str(t: &Test, s: &str, field: Field, idx: usize, cx: &mut EventCtx<'_>) -> bool {
    match t {
        Test::Absent => false,
        Test::Present => true,
        Test::Regex(re) => re.is_match(s),
        Test::Pattern(p) => {
            if p.cased() || !needs_lowering(s.as_bytes()) {
                // Case-sensitive, or already lower case: compared as it is (substrings with
                // the standard library's SIMD-assisted search).
                p.matches_prepared(s, false)
            } else if s.len() <= FOLD_IN_PLACE && s.is_ascii() {
                p.matches_prepared(s, true)
            } else {
                // Lower-cased once per event, for every pattern that reads it.
                p.matches_prepared(cx.lower(field, idx, s), false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{DnsEvent, ProcessEvent},
        ruleset::RuleSet,
    };
    use std::{sync::Arc, time::SystemTime};

    const RULES: &str = r#"
title: proc-any
logsource: {category: process_creation}
detection: {s: {CommandLine: x}, condition: s}
---
title: proc-win
logsource: {category: process_creation, product: windows}
detection: {s: {CommandLine: x}, condition: s}
---
title: dns-query
logsource: {category: dns_query, product: linux}
detection: {s: {query: x}, condition: s}
---
title: dns-response
logsource: {category: dns}
detection: {s: {answer: x}, condition: s}
---
title: dns-both
logsource: {category: dns}
detection: {s: {message_type: x}, condition: s}
"#;

    fn events() -> Vec<Event> {
        let mut out = Vec::new();
        for platform in [Platform::Linux, Platform::Windows] {
            out.push(Event::Process(ProcessEvent {
                time: SystemTime::UNIX_EPOCH,
                host: Arc::from("h"),
                platform,
                process: Default::default(),
                parent: Default::default(),
                args_truncated: false,
            }));
            for message_type in [DnsMessageType::Query, DnsMessageType::Response] {
                out.push(Event::Dns(DnsEvent {
                    time: SystemTime::UNIX_EPOCH,
                    host: Arc::from("h"),
                    platform,
                    message_type,
                    query: String::new(),
                    query_type: String::new(),
                    transaction_id: 0,
                    reply_code: String::new(),
                    reply_code_id: None,
                    answers: vec![],
                    src: None,
                    dest: None,
                    transport: "",
                    process: None,
                    parent: None,
                }));
            }
        }
        out
    }

    #[test]
    fn the_index_agrees_with_applies_to() {
        let set = RuleSet::from_str("m.yml", RULES).unwrap();
        let m = Matcher::new(set.rules());
        for e in events() {
            let candidates: Vec<&str> = m
                .candidates(&e)
                .iter()
                .map(|&i| set.rules()[i as usize].title.as_str())
                .collect();
            let expected: Vec<&str> = set
                .rules()
                .iter()
                .filter(|r| r.applies_to(&e))
                .map(|r| r.title.as_str())
                .collect();
            assert_eq!(candidates, expected, "{e:?}");
        }
        let linux_query = &events()[1];
        let names: Vec<&str> = m
            .candidates(linux_query)
            .iter()
            .map(|&i| set.rules()[i as usize].title.as_str())
            .collect();
        assert_eq!(names, ["dns-query", "dns-both"]);
    }

    #[test]
    fn non_ascii_values_are_lowered_once_per_event() {
        let e = events().remove(0);
        let mut cx = EventCtx::new(&e);
        assert_eq!(cx.lower(Field::CommandLine, 0, "ÄB"), "äb");
        assert_eq!(cx.lower(Field::CommandLine, 0, "ignored: cached"), "äb");
        assert_eq!(cx.lower(Field::CommandLine, 1, "Ö"), "ö");
        assert_eq!(cx.used, 2);
        drop(cx);
        // The buffers are kept for the next event, which starts empty and fetches them only
        // when it needs them.
        let mut cx = EventCtx::new(&e);
        assert!(cx.scratch.is_none());
        assert_eq!(cx.lower(Field::CommandLine, 0, "É"), "é");
        assert_eq!(
            (cx.used, cx.scratch.as_ref().unwrap().lowered.len()),
            (1, 2)
        );
    }

    /// Each rule's gate, a group per string (`Field:literal|Field:literal`).
    fn gates_of(yaml: &str) -> Vec<Vec<String>> {
        let set = RuleSet::from_str("g.yml", yaml).unwrap();
        let costs = Costs::new(set.rules().iter().map(|r| &r.detection));
        set.rules()
            .iter()
            .map(|r| {
                costs
                    .gate(&r.detection)
                    .unwrap_or_default()
                    .iter()
                    .map(|group| {
                        group
                            .iter()
                            .map(|(f, l)| format!("{f:?}:{}", String::from_utf8_lossy(l)))
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn gates_follow_the_condition_tree() {
        let g = gates_of(
            r#"
title: and picks the rarer term, not negations
logsource: {category: process_creation}
detection:
  a: {process_name: ngrok}
  b: {CommandLine|contains: [http, tcp]}
  f: {CommandLine|contains: version}
  condition: a and b and not f
---
title: or needs every branch
logsource: {category: process_creation}
detection:
  a: {process_name: [Frpc, frps]}
  b: {CommandLine|contains: 'frpc.toml'}
  condition: a or b
---
title: a branch without literal leaves the rule ungated
logsource: {category: process_creation}
detection:
  a: {process_name: x}
  b: {CommandLine|re: 'y+'}
  condition: a or b
---
title: all picks the best value, longer literals contain shorter ones
logsource: {category: dns_query}
detection:
  s:
    - QueryName|endswith: ['.devtunnels.ms']
    - QueryName: devtunnels.ms
  t:
    QueryName|contains|all: [a, tunnels]
  condition: s and t
---
title: null and exists open no gate, wildcards give their longest run
logsource: {category: process_creation}
detection:
  a: {OriginalFileName: null}
  b: {User|exists: true}
  c: {CommandLine: '*ab?cdefg*h'}
  condition: (a or b) and c
"#,
        );
        // The `and` of the name and the arguments; the arguments' literals are too common to
        // be worth a second group. Not the negation.
        assert_eq!(g[0], ["ProcessName:ngrok"]);
        assert_eq!(
            g[1],
            ["ProcessName:frpc|ProcessName:frps|CommandLine:frpc.toml"]
        );
        assert!(g[2].is_empty());
        // Both terms of the `and`, the rarer first.
        assert_eq!(g[3], ["Query:devtunnels.ms", "Query:tunnels"]);
        assert_eq!(g[4], ["CommandLine:cdefg"]);
    }

    #[test]
    fn fields_no_sensor_reports_gate_nothing_or_everything() {
        let yaml = r#"
title: an image or a hash
logsource: {category: process_creation}
detection:
  s:
    - Image|endswith: \tool.exe
    - Hashes|contains: 'IMPHASH=4A07'
  condition: s
---
title: a hash only
logsource: {category: process_creation}
detection:
  s: {Hashes|contains: 'IMPHASH=4A07'}
  condition: s
---
title: no product
logsource: {category: process_creation}
detection:
  s: {Product: null}
  condition: s
"#;
        let g = gates_of(yaml);
        assert_eq!(g[0], [r"ProcessPath:\tool.exe"]);
        let set = RuleSet::from_str("g.yml", yaml).unwrap();
        let costs = Costs::new(set.rules().iter().map(|r| &r.detection));
        // Nothing can match: an empty group, never a candidate.
        assert_eq!(
            costs.gate(&set.rules()[1].detection),
            Some(vec![Vec::new()])
        );
        // Always true: no gate, evaluated on every event.
        assert_eq!(costs.gate(&set.rules()[2].detection), None);
    }

    #[test]
    fn gates_avoid_literals_many_rules_share() {
        let mut yaml = String::new();
        for i in 0..20 {
            yaml.push_str(&format!(
                "title: r{i}\nlogsource: {{category: process_creation}}\ndetection:\n  s:\n    \
                 process_name: ssh\n    CommandLine|contains: 'svc{i}.tunnel.example'\n  \
                 condition: s\n---\n"
            ));
        }
        yaml.push_str(
            "title: alone\nlogsource: {category: process_creation}\ndetection:\n  s:\n    \
             process_name: ssh\n    CommandLine|contains: ' -R'\n  condition: s\n",
        );
        let g = gates_of(&yaml);
        // Its own literal first; the shared name as a second group (both must be found).
        assert_eq!(g[0], ["CommandLine:svc0.tunnel.example", "ProcessName:ssh"]);
        assert_eq!(
            g[19],
            ["CommandLine:svc19.tunnel.example", "ProcessName:ssh"]
        );
        // Its only other literal is a flag, too common to search for: the shared name alone.
        assert_eq!(g[20], ["ProcessName:ssh"]);
    }

    #[test]
    fn every_shipped_rule_is_gated_on_its_own_literals() {
        let set = crate::builtin::rules().unwrap();
        let costs = Costs::new(set.rules().iter().map(|r| &r.detection));
        for r in set.rules() {
            let gate = costs.gate(&r.detection);
            assert!(gate.is_some(), "{}: no gate", r.title);
            // No shipped rule opens its gate on a bare flag or word of a command line.
            for (f, lit) in gate.unwrap().into_iter().flatten() {
                let selective = lit.iter().filter(|b| b.is_ascii_alphanumeric()).count();
                assert!(
                    selective >= 4 || f != Field::CommandLine,
                    "{}: gate {f:?}:{}",
                    r.title,
                    String::from_utf8_lossy(&lit)
                );
            }
        }
    }
}
