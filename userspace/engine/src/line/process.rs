//! The body of a process line: CIM Endpoint.Processes, declared once (see `line/mod.rs`).
//!
//! Floor 1 (events, fields and lines): may use `event` and the line types.

use crate::{
    event::{Process, ProcessEvent},
    line::{Context, line_fields, pid},
};

line_fields! {
    /// CIM Endpoint.Processes fields of a process start, in the order lines carry them.
    pub struct ProcessLine<'a> {
        /// The host (CIM `dest` of Endpoint.Processes).
        dest: &'a str,
        user: &'a str,
        /// Numeric uid on Linux, SID on Windows.
        user_id: &'a str,
        /// The command line.
        process: &'a str,
        process_name: &'a str,
        process_path: &'a str,
        process_id: Option<u32>,
        parent_process: &'a str,
        parent_process_name: &'a str,
        parent_process_path: &'a str,
        parent_process_id: Option<u32>,
        original_file_name: &'a str,
        /// The command line is cut short.
        args_truncated: bool,
        /// `memfd` or `deleted`: the program runs without a file on disk.
        process_fileless: &'a str,
        /// The dynamic loader the program was run through, when run through one directly.
        process_loader: &'a str,
    }
}

impl<'a> From<&'a ProcessEvent> for ProcessLine<'a> {
    fn from(e: &'a ProcessEvent) -> Self {
        ProcessLine {
            dest: &e.host,
            user: &e.process.user,
            user_id: &e.process.user_id,
            process: &e.process.command_line,
            process_name: &e.process.name,
            process_path: &e.process.path,
            process_id: pid(e.process.pid),
            parent_process: &e.parent.command_line,
            parent_process_name: &e.parent.name,
            parent_process_path: &e.parent.path,
            parent_process_id: pid(e.parent.pid),
            original_file_name: &e.process.original_file_name,
            args_truncated: e.args_truncated,
            process_fileless: &e.fileless,
            process_loader: &e.loader,
        }
    }
}

impl ProcessLine<'_> {
    /// The event: the head's host, else `dest`; the parent's user is not on the line.
    pub(crate) fn into_event(self, c: &Context<'_>) -> ProcessEvent {
        let process = Process {
            user: self.user.into(),
            user_id: self.user_id.into(),
            original_file_name: self.original_file_name.into(),
            ..c.process(
                self.process_id,
                self.process_name,
                self.process_path,
                self.process,
            )
        };
        let parent = c.process(
            self.parent_process_id,
            self.parent_process_name,
            self.parent_process_path,
            self.parent_process,
        );
        ProcessEvent {
            time: c.time,
            host: if c.host.is_empty() { self.dest } else { c.host }.into(),
            platform: c.platform(
                &[&process.path, &parent.path],
                &[&process.name, &parent.name],
            ),
            process,
            parent,
            args_truncated: self.args_truncated,
            fileless: self.process_fileless.into(),
            loader: self.process_loader.into(),
        }
    }
}
