//! Evaluating an event: the per-event context ([`EventCtx`]) and the walk of a rule's (or a
//! filter's) condition over it. Evaluation borrows everything from the event and the rules and
//! allocates nothing once the thread's buffers have grown: values are lower-cased on the
//! stack, or (non-ASCII, or long) once per event into buffers the thread reuses; conditions
//! compare ASCII values ignoring case in place. The context also holds the prefilter's
//! candidates (`scan.rs`) for the event.
//!
//! Floor 5 (the compiled matcher): may use `detection`, `condition`, `pattern`, `field` and
//! `event`.

use crate::{
    condition::Cond,
    detection::{Detection, FieldTest, Selection, Test, Values},
    event::Event,
    field::{Field, StackStr, Value},
    pattern::lowercase_into,
};

/// Whether `b` has an upper-case ASCII letter or a non-ASCII byte (checked 16 bytes at a
/// time, without branches inside a block, so that the compiler vectorizes it).
pub(super) fn needs_lowering(b: &[u8]) -> bool {
    b.chunks(16).any(|block| {
        block.iter().fold(0u8, |acc, &x| {
            acc | u8::from(x.wrapping_sub(b'A') < 26) | (x & 0x80)
        }) != 0
    })
}

/// ASCII values at most this long are compared with patterns ignoring case in place; longer
/// ones (and non-ASCII ones) are lower-cased once per event instead.
const FOLD_IN_PLACE: usize = 32;

/// Candidate lists longer than this are deduplicated as they grow (a literal found many
/// times in a long value).
const HITS_COMPACT: usize = 1024;

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
    pub(super) fn add_hits(&mut self, rules: &[u32]) {
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
    pub(super) fn take_hits(&mut self) -> HitBuf {
        if self.hits_len <= INLINE_HITS {
            HitBuf::Inline(self.inline_hits, self.hits_len)
        } else {
            HitBuf::Spilled(std::mem::take(&mut self.scratch().hits))
        }
    }

    pub(super) fn give_hits(&mut self, hits: HitBuf) {
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

    /// Whether the prefilter found candidates.
    pub(super) fn has_hits(&self) -> bool {
        self.hits_len > 0
    }

    /// `s` (value `idx` of `field`) lower-cased, computed once per event, lent out with its
    /// place (so that the context can take candidates while it is searched); give it back
    /// with [`EventCtx::put_lowered`].
    pub(super) fn take_lowered(&mut self, field: Field, idx: usize, s: &str) -> (usize, String) {
        let pos = self.lower_pos(field, idx, s);
        let scratch = self.scratch.as_mut().expect("lower_pos took the scratch");
        (pos, std::mem::take(&mut scratch.lowered[pos].2))
    }

    /// Gives back what [`EventCtx::take_lowered`] lent.
    pub(super) fn put_lowered(&mut self, pos: usize, lowered: String) {
        self.scratch.as_mut().expect("lent from it").lowered[pos].2 = lowered;
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
pub(super) enum HitBuf {
    Inline([u32; INLINE_HITS], usize),
    Spilled(Vec<u32>),
}

impl HitBuf {
    pub(super) fn sort_unstable(&mut self) {
        match self {
            HitBuf::Inline(a, n) => a[..*n].sort_unstable(),
            HitBuf::Spilled(v) => v.sort_unstable(),
        }
    }

    pub(super) fn dedup(&mut self) {
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

    pub(super) fn len(&self) -> usize {
        match self {
            HitBuf::Inline(_, n) => *n,
            HitBuf::Spilled(v) => v.len(),
        }
    }

    pub(super) fn get(&self, i: usize) -> u32 {
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
        Value::Int(n) if t.numeric => eval_number(t, n as f64),
        Value::Float(x) if t.numeric => eval_number(t, x),
        Value::Int(n) => eval_one(t, StackStr::render(n).as_str(), 0, cx),
        Value::Float(x) => eval_one(t, StackStr::render(x).as_str(), 0, cx),
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

/// A number against a field test whose tests are all numeric comparisons.
fn eval_number(t: &FieldTest, x: f64) -> bool {
    let holds = |test: &Test| matches!(test, Test::Compare(op, limit) if op.holds(x, *limit));
    match &t.values {
        Values::Any(tests) => tests.iter().any(holds),
        Values::All(groups) => groups.iter().all(|g| g.iter().any(holds)),
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
        Test::Cidr(net) => s
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| net.contains(&super::super::field::canonical_ip(ip))),
        Test::Compare(op, limit) => s.trim().parse::<f64>().is_ok_and(|x| op.holds(x, *limit)),
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
    use crate::matcher::tests::events;

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
}
