//! The Windows sensor's counters on the engine's stats line (`tunnelwatch: stats {JSON}`, the
//! Linux sensor's too): what was lost (ETW's own counters, the hand-off channel's drops),
//! what was handled, and the output every sensor reports.
//!
//! Uses: `enrich`'s counters and the engine's stats line.

use tunnelwatch_engine::{stats::Stats, step::Counts};

use crate::enrich::Counters;

/// Losses, as counted by ETW for a session and by the sensor for its channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// `EVENT_TRACE_PROPERTIES.EventsLost`, both sessions: events ETW could not buffer.
    pub etw_events_lost: u64,
    /// `RealTimeBuffersLost`: buffers ETW dropped because the sensor read too slowly.
    pub etw_buffers_lost: u64,
    /// Events the callbacks dropped because the channel to the main loop was full.
    pub channel_dropped: u64,
    /// Events whose schema or properties ETW (TDH) could not decode.
    pub decode_errors: u64,
}

impl Losses {
    /// Everything lost, in events or buffers.
    pub fn total(&self) -> u64 {
        self.etw_events_lost + self.etw_buffers_lost + self.channel_dropped
    }
}

/// What the stats line reports besides the losses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    pub counters: Counters,
    /// What the step wrote and folded (and what its correlations dropped).
    pub written: Counts,
    pub suppressed: u64,
    pub processes: usize,
    /// Which events make process starts: "kernel" or "kernel-process" (see `enrich::Mode`).
    pub mode: &'static str,
}

/// The stats line (`which`: "periodic" or "final").
pub fn stats(which: &str, losses: &Losses, a: &Activity) -> Stats {
    let mut line = Stats::new(which);
    line.label("mode", a.mode)
        .set("etw_events_lost", losses.etw_events_lost)
        .set("etw_buffers_lost", losses.etw_buffers_lost)
        .set("channel_dropped", losses.channel_dropped)
        .set("decode_errors", losses.decode_errors)
        .set("records", a.counters.records)
        .set("unmapped", a.counters.unmapped)
        .set("process_starts", a.counters.process_starts)
        .set("dns_messages", a.counters.dns_events)
        .set("dns_held", a.counters.dns_held)
        .set("dns_unmatched", a.counters.dns_unmatched)
        .set("live_command_lines", a.counters.live_command_lines)
        .set("missing_command_lines", a.counters.missing_command_lines)
        .set("connections", a.counters.connections)
        .set("connections_held", a.counters.connections_held)
        .set("connections_unmatched", a.counters.connections_unmatched)
        .set("udp_repeats", a.counters.udp_repeats)
        .set("udp_flows_forgotten", a.counters.udp_flows_forgotten)
        .set("names_learned", a.counters.names_learned)
        .output(a.written, a.suppressed)
        .set("processes", a.processes as u64);
    line
}

/// The warning for losses since the last check, or `None` when nothing new was lost.
pub fn loss_warning(before: &Losses, now: &Losses) -> Option<String> {
    let new = now.total().checked_sub(before.total())?;
    (new > 0).then(|| {
        format!(
            "events lost: {new} since the last check ({} in all: ETW {} events and {} buffers, channel {}); the machine produces events faster than the sensor reads them",
            now.total(),
            now.etw_events_lost,
            now.etw_buffers_lost,
            now.channel_dropped
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_line_has_losses_then_activity() {
        let losses = Losses {
            etw_events_lost: 1,
            etw_buffers_lost: 2,
            channel_dropped: 3,
            decode_errors: 4,
        };
        let a = Activity {
            counters: Counters {
                records: 10,
                process_starts: 5,
                dns_events: 4,
                unmapped: 1,
                dns_held: 2,
                dns_unmatched: 1,
                live_command_lines: 0,
                missing_command_lines: 0,
                connections: 6,
                connections_held: 1,
                connections_unmatched: 0,
                udp_repeats: 40,
                udp_flows_forgotten: 0,
                names_learned: 3,
            },
            written: Counts {
                lines: 3,
                alerts: 1,
                summaries: 1,
                folded: 4,
                ..Counts::default()
            },
            suppressed: 0,
            processes: 120,
            mode: "kernel",
        };
        let expected: serde_json::Value = serde_json::from_str(concat!(
            r#"{"stats":"final","mode":"kernel","etw_events_lost":1,"etw_buffers_lost":2,"#,
            r#""channel_dropped":3,"decode_errors":4,"records":10,"unmapped":1,"process_starts":5,"#,
            r#""dns_messages":4,"dns_held":2,"dns_unmatched":1,"live_command_lines":0,"#,
            r#""missing_command_lines":0,"connections":6,"connections_held":1,"#,
            r#""connections_unmatched":0,"udp_repeats":40,"udp_flows_forgotten":0,"#,
            r#""names_learned":3,"#,
            r#""lines":3,"alerts":1,"suppressed":0,"correlation_groups_dropped":0,"#,
            r#""correlation_values_dropped":0,"correlation_late":0,"summaries":1,"folded":4,"#,
            r#""fold_untracked":0,"processes":120}"#
        ))
        .unwrap();
        assert_eq!(stats("final", &losses, &a).to_json(), expected);
    }

    #[test]
    fn losses_are_warned_about_once() {
        let a = Losses::default();
        let b = Losses {
            etw_buffers_lost: 2,
            channel_dropped: 5,
            ..Losses::default()
        };
        assert_eq!(loss_warning(&a, &a), None);
        let w = loss_warning(&a, &b).unwrap();
        assert!(
            w.starts_with("events lost: 7 since the last check (7 in all"),
            "{w}"
        );
        assert_eq!(loss_warning(&b, &b), None);
    }
}
