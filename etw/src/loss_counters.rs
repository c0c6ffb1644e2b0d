//! ETW's loss counters per session, as last read, and how a refusal is told apart: OS-neutral
//! pieces of `consumer.rs`, tested on Linux.
//!
//! `ControlTraceW(EVENT_TRACE_CONTROL_QUERY)` can fail (a session being stopped, a transient
//! error). A failed query must not read as "nothing lost so far" (the next success would then
//! look like a jump, a phantom loss): the session keeps its last counts.

/// `(EventsLost, RealTimeBuffersLost)` per session, as last read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionLosses {
    last: Vec<(&'static str, u64, u64)>,
}

impl SessionLosses {
    /// Records a query of `session`'s counters; `None` (the query failed) keeps the last.
    /// ETW's counters only grow: a lower reading keeps the higher one.
    pub fn update(&mut self, session: &'static str, query: Option<(u64, u64)>) {
        let Some((events, buffers)) = query else {
            return;
        };
        match self.last.iter_mut().find(|(n, _, _)| *n == session) {
            Some(slot) => {
                slot.1 = slot.1.max(events);
                slot.2 = slot.2.max(buffers);
            }
            None => self.last.push((session, events, buffers)),
        }
    }

    /// Events and buffers lost, all sessions together.
    pub fn totals(&self) -> (u64, u64) {
        self.last
            .iter()
            .fold((0, 0), |(e, b), (_, de, db)| (e + de, b + db))
    }
}

/// `ERROR_ACCESS_DENIED` (5), as a Win32 error or wrapped in an HRESULT (0x80070005, which is
/// how ferrisetw reports some refusals): "not elevated" (exit 3), not a load failure.
pub fn is_access_denied(code: Option<i32>) -> bool {
    match code {
        Some(5) => true,
        Some(c) => c as u32 == 0x8007_0005,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_query_is_never_a_loss() {
        let mut l = SessionLosses::default();
        l.update("tunnelwatch", Some((2, 1)));
        l.update("tunnelwatch-kernel", Some((3, 0)));
        assert_eq!(l.totals(), (5, 1));
        // The kernel session's query fails: its last counts stay.
        l.update("tunnelwatch-kernel", None);
        assert_eq!(l.totals(), (5, 1));
        // And the next success is compared with them: nothing new.
        l.update("tunnelwatch-kernel", Some((3, 0)));
        assert_eq!(l.totals(), (5, 1));
        l.update("tunnelwatch", Some((4, 1)));
        assert_eq!(l.totals(), (7, 1));
        // A session never read counts nothing.
        assert_eq!(SessionLosses::default().totals(), (0, 0));
    }

    #[test]
    fn access_denied_is_recognised_as_win32_error_and_hresult() {
        assert!(is_access_denied(Some(5)));
        assert!(is_access_denied(Some(0x8007_0005u32 as i32)));
        assert!(!is_access_denied(Some(1450)), "ERROR_NO_SYSTEM_RESOURCES");
        assert!(!is_access_denied(Some(0x8007_05AAu32 as i32)));
        assert!(!is_access_denied(None));
    }
}
