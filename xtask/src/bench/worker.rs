//! The load generators, each run as `target/release/xtask bench worker KIND --FLAG VALUE...` in
//! a process of its own (an optimised, single-purpose, small process, the same in every
//! configuration), and the bench's side of them. A worker waits for an absolute
//! CLOCK_MONOTONIC start time (so that the workers of one run start together), stops at its end
//! time and prints its report as one JSON line, its own CPU time included. Every socket is
//! bound to or sends to 127.0.0.1 only.
//!
//! The arguments are one typed [`Worker`] value on both sides: the bench turns it into flags
//! ([`Worker::command_line`]), clap parses them back in the worker; the report is one typed
//! struct per kind, serialised by the worker and read back by the bench ([`Spawned::finish`]).
//! A new kind: a file in worker/ with its `Args` and `Report`, and a variant here.
//!
//! May use: its own files (worker/), bench/process, clap, serde.

mod conn;
mod dns;
mod dnswire;
mod exec;
mod latency;
mod sys;
mod tcp;
mod udp;
mod window;

use std::{
    io::{BufRead as _, BufReader, Lines, Write as _},
    path::Path,
    process::{ChildStdout, Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub use self::{
    conn::{Args as ConnArgs, Kind as ConnKind, Report as ConnReport},
    dns::{ClientArgs as DnsClientArgs, ClientReport as DnsClientReport},
    dns::{ServerArgs as DnsServerArgs, ServerReport as DnsServerReport},
    exec::{Args as ExecArgs, Report as ExecReport},
    latency::{Args as LatencyArgs, Report as LatencyReport},
    tcp::{Args as TcpArgs, Report as TcpReport},
    udp::{Args as UdpArgs, Report as UdpReport},
    window::Window,
};
use super::process::Owned;

/// One load generator and its arguments.
#[derive(Clone, Debug, PartialEq, clap::Subcommand, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Worker {
    /// fork + exec + wait of a program in a loop, pinned to a CPU.
    Exec(ExecArgs),
    /// UDP datagrams to a port on 127.0.0.1, and their receiver.
    Udp(UdpArgs),
    /// Bulk TCP over one connection on 127.0.0.1.
    Tcp(TcpArgs),
    /// A DNS responder on 127.0.0.1 (serves until stdin closes).
    DnsServer(DnsServerArgs),
    /// A DNS client, closed or open loop.
    DnsClient(DnsClientArgs),
    /// `ngrok http <t>` launched in turn, for the exec-to-alert latency.
    Latency(LatencyArgs),
    /// New flows to 127.0.0.1 (TCP, TLS ClientHello, UDP, QUIC Initial), each closed at once.
    Conn(ConnArgs),
}

/// A worker's report: its kind's numbers and its CPU time.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Output<R> {
    #[serde(flatten)]
    pub report: R,
    /// CPU seconds of the worker and its reaped children (kernel time included).
    pub cpu: f64,
}

/// Runs the worker (in its own process) and prints its report.
pub fn main(worker: &Worker) -> Result<()> {
    fn print<R: Serialize>(report: R) -> Result<()> {
        let out = Output {
            report,
            cpu: sys::cpu_secs(),
        };
        println!("{}", serde_json::to_string(&out)?);
        std::io::stdout().flush()?;
        Ok(())
    }
    match worker {
        Worker::Exec(a) => print(exec::run(a)?),
        Worker::Udp(a) => print(udp::run(a)?),
        Worker::Tcp(a) => print(tcp::run(a)?),
        Worker::DnsServer(a) => print(dns::serve(a)?),
        Worker::DnsClient(a) => print(dns::query(a)?),
        Worker::Latency(a) => print(latency::run(a)?),
        Worker::Conn(a) => print(conn::run(a)?),
    }
}

impl Worker {
    /// The arguments after `xtask bench worker` that clap parses back into `self`.
    pub fn command_line(&self) -> Vec<String> {
        let value = serde_json::to_value(self).expect("a worker serialises");
        let (kind, fields) = value
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("one variant");
        let mut args = vec![kind.clone()];
        for (flag, v) in fields.as_object().expect("struct variants") {
            args.push(format!("--{flag}"));
            args.push(v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        }
        args
    }

    /// Starts the worker (`xtask`: the release build of xtask), stdout piped.
    pub fn spawn(&self, xtask: &Path) -> Result<Spawned> {
        self.start(xtask, Stdio::null())
    }

    /// Like [`Worker::spawn`], with a stdin pipe whose closing tells the worker to stop.
    pub fn spawn_with_stdin(&self, xtask: &Path) -> Result<Spawned> {
        self.start(xtask, Stdio::piped())
    }

    fn start(&self, xtask: &Path, stdin: Stdio) -> Result<Spawned> {
        let child = Command::new(xtask)
            .args(["bench", "worker"])
            .args(self.command_line())
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start a bench worker")?;
        Ok(Spawned {
            child: Owned(Some(child)),
            stdout: None,
        })
    }
}

/// A running worker (killed if dropped unfinished).
pub struct Spawned {
    child: Owned,
    /// Its stdout once a line was read from it.
    stdout: Option<Lines<BufReader<ChildStdout>>>,
}

impl Spawned {
    /// The next line of its stdout (a `ready` line before the report).
    pub fn read_line(&mut self) -> Option<String> {
        if self.stdout.is_none() {
            let out = self.child.0.as_mut()?.stdout.take()?;
            self.stdout = Some(BufReader::new(out).lines());
        }
        self.stdout.as_mut()?.next()?.ok()
    }

    /// Closes its stdin (a worker started with one stops).
    pub fn close_stdin(&mut self) {
        if let Some(c) = self.child.0.as_mut() {
            drop(c.stdin.take());
        }
    }

    /// Waits for it and reads its report, the last line of its stdout.
    pub fn finish<R: DeserializeOwned>(mut self) -> Result<Output<R>> {
        let child = self.child.0.take().expect("running");
        let out = child.wait_with_output()?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(lines) = self.stdout.take() {
            text = lines.map_while(Result::ok).collect::<Vec<_>>().join("\n");
        }
        if !out.status.success() {
            bail!("a bench worker failed ({}): {text}", out.status);
        }
        let last = text.lines().last().unwrap_or_default();
        serde_json::from_str(last).with_context(|| format!("a bench worker's report: {last:?}"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        worker: Worker,
    }

    #[test]
    fn clap_reads_back_what_the_bench_writes() {
        let workers = [
            Worker::Exec(ExecArgs {
                window: Window {
                    start: 1,
                    end: 2_000_000_000,
                },
                cpu: 1,
                prog: "/bin/true".into(),
            }),
            Worker::Udp(UdpArgs {
                window: Window { start: 3, end: 4 },
                port: 9999,
                size: 64,
            }),
            Worker::Tcp(TcpArgs {
                window: Window { start: 5, end: 6 },
            }),
            Worker::Conn(ConnArgs {
                window: Window { start: 7, end: 8 },
                kind: ConnKind::Quic,
                rate: 20_000,
            }),
            Worker::DnsServer(DnsServerArgs {
                port: 53,
                end: 7,
                threads: 1,
            }),
            Worker::DnsClient(DnsClientArgs {
                port: 53,
                window: Window { start: 8, end: 9 },
                threads: 2,
                in_flight: 8,
                rate: 0,
            }),
            Worker::Latency(LatencyArgs {
                count: 300,
                gap_us: 1000,
                prog: "/tmp/x y/ngrok".into(),
            }),
        ];
        for w in workers {
            let line = w.command_line();
            let mut argv = vec!["worker".to_string()];
            argv.extend(line.iter().cloned());
            let back = Cli::try_parse_from(&argv)
                .unwrap_or_else(|e| panic!("{line:?}: {e}"))
                .worker;
            assert_eq!(back, w, "{line:?}");
        }
        let w = Worker::DnsClient(DnsClientArgs {
            port: 53,
            window: Window { start: 8, end: 9 },
            threads: 2,
            in_flight: 8,
            rate: 100,
        });
        assert_eq!(
            w.command_line().join(" "),
            "dns-client --end 9 --in-flight 8 --port 53 --rate 100 --start 8 --threads 2"
        );
    }

    #[test]
    fn reports_are_read_back_typed() {
        let out = Output {
            report: ExecReport {
                execs: 10,
                failed: 0,
                secs: 1.5,
            },
            cpu: 0.25,
        };
        let line = serde_json::to_string(&out).unwrap();
        assert_eq!(line, r#"{"execs":10,"failed":0,"secs":1.5,"cpu":0.25}"#);
        assert_eq!(
            serde_json::from_str::<Output<ExecReport>>(&line).unwrap(),
            out
        );
    }

    #[test]
    fn a_spawned_process_report_is_its_last_line() {
        // Not a worker: a shell that prints like one.
        let child = Command::new("sh")
            .args(["-c", r#"echo ready; echo '{"served":3,"cpu":0.5}'"#])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut s = Spawned {
            child: Owned(Some(child)),
            stdout: None,
        };
        assert_eq!(s.read_line().as_deref(), Some("ready"));
        s.close_stdin();
        let out: Output<DnsServerReport> = s.finish().unwrap();
        assert_eq!((out.report.served, out.cpu), (3, 0.5));
    }
}
