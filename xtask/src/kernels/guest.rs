//! What runs inside the matrix's VM and what it says: the init script (PID 1) that starts the
//! sensor, makes both seed rules fire (an exec of `ngrok`, a DNS query for an ngrok domain) and
//! the renamed-ngrok rule (an exec of `update-helper`, identified by its Go build information,
//! which checks the exec record's inode, size and times against the file on each kernel),
//! stops it with SIGINT and prints a report between two markers on the serial console; and
//! the reading of that report back from the console.
//!
//! May use: the standard library only.

use std::collections::BTreeMap;

/// The rule that fires on `ngrok http ...` (Linux Ngrok Reverse Proxy Usage).
const EXEC_RULE: &str = "bc84d574-708c-467d-b78a-4c1e20171f97";
/// The rule that fires on an executable identified as ngrok under another name (Renamed Ngrok
/// Agent).
const RENAMED_RULE: &str = "fe647c01-2e4b-4f5a-8611-6e0fab46fa0a";
/// The rule that fires on a DNS query for `*.ngrok.io` (Ngrok Reverse Proxy on Network).
const DNS_RULE: &str = "5790a766-53b8-40d3-a696-3547b978fcf0";

/// Lines around the report that the init script prints on the serial console.
const BEGIN: &str = "===== tunnelwatch kernel test: begin =====";
const END: &str = "===== tunnelwatch kernel test: end =====";

/// The checks every kernel must pass (the report's `TW-RESULT` names).
pub const CHECKS: [&str; 5] = ["loaded", "exec_alert", "dns_alert", "identified", "exit"];

/// The guest's PID 1. `@EXEC_RULE@`, `@RENAMED_RULE@`, `@DNS_RULE@`, `@BEGIN@` and `@END@` are
/// filled in.
const INIT: &str = r#"#!/bin/busybox sh
# PID 1 of the kernel-matrix VM (cargo xtask kernels): runs the sensor, makes both seed rules
# fire, prints a report between markers on the serial console and powers off.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
hostname tunnelwatch-vm
ip link set lo up
# Keep kernel messages off the console while the report is printed; the report shows those
# logged during the test.
echo 1 >/proc/sys/kernel/printk
dmesg -c >/dev/null

[ -r /sys/kernel/btf/vmlinux ] && btf=PASS || btf=FAIL
/usr/bin/tunnelwatch --stats-interval 0 >/tmp/out 2>/tmp/err &
pid=$!

# Ready, or gone: at most 120 s (the verifier is slow under emulation).
loaded=FAIL
i=0
while [ $i -lt 1200 ]; do
    if grep -q '^tunnelwatch: ready' /tmp/err; then loaded=PASS; break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
done

if [ $loaded = PASS ]; then
    /ngrok http 8080
    /update-helper http 8080
    # No server answers on the VM's loopback: the query leaves, nothing comes back.
    timeout 2 nslookup vmtest.ngrok.io 127.0.0.1 >/dev/null 2>&1
    i=0
    while [ $i -lt 100 ]; do
        grep -q '"rule_id":"@EXEC_RULE@"' /tmp/out && grep -q '"rule_id":"@DNS_RULE@"' /tmp/out \
            && grep -q '"rule_id":"@RENAMED_RULE@"' /tmp/out && break
        sleep 0.1
        i=$((i + 1))
    done
fi

kill -INT $pid 2>/dev/null
(sleep 30; kill -KILL $pid) 2>/dev/null &
watchdog=$!
wait $pid
code=$?
kill $watchdog 2>/dev/null

grep -q '"rule_id":"@EXEC_RULE@"' /tmp/out && exec_alert=PASS || exec_alert=FAIL
grep -q '"rule_id":"@DNS_RULE@"' /tmp/out && dns_alert=PASS || dns_alert=FAIL
grep '"rule_id":"@RENAMED_RULE@"' /tmp/out | grep -q '"original_file_name":"ngrok"' \
    && identified=PASS || identified=FAIL
[ $loaded = PASS ] && [ $code = 0 ] && exited=PASS || exited=FAIL

echo
echo '@BEGIN@'
echo "kernel: $(uname -r)"
echo "network interfaces: $(ls /sys/class/net | tr '\n' ' ')"
echo '----- sensor stderr -----'
cat /tmp/err
echo '----- sensor stdout -----'
cat /tmp/out
echo '----- kernel log during the test -----'
dmesg | tail -n 60
echo '----- results -----'
echo "TW-RESULT btf $btf"
echo "TW-RESULT loaded $loaded"
echo "TW-RESULT exec_alert $exec_alert"
echo "TW-RESULT dns_alert $dns_alert"
echo "TW-RESULT identified $identified"
echo "TW-RESULT exit $exited code=$code"
echo '@END@'
poweroff -f
"#;

/// The init script, rule ids and markers filled in.
pub fn init_script() -> String {
    INIT.replace("@EXEC_RULE@", EXEC_RULE)
        .replace("@RENAMED_RULE@", RENAMED_RULE)
        .replace("@DNS_RULE@", DNS_RULE)
        .replace("@BEGIN@", BEGIN)
        .replace("@END@", END)
}

/// The guest's report.
#[derive(Default)]
pub struct Report {
    pub kernel: String,
    pub stderr: String,
    pub stdout: String,
    pub kernel_log: String,
    /// TW-RESULT name -> (PASS?, detail).
    pub results: BTreeMap<String, (bool, String)>,
}

/// The report between [`BEGIN`] and [`END`] on the console, if complete.
pub fn parse_report(console: &str) -> Option<Report> {
    let start = console.find(BEGIN)? + BEGIN.len();
    let body = &console[start..start + console[start..].find(END)?];
    let mut report = Report::default();
    let mut section = "";
    for line in body.lines() {
        if let Some(k) = line.strip_prefix("kernel: ") {
            report.kernel = k.to_string();
        } else if let Some(name) = line
            .strip_prefix("----- ")
            .and_then(|l| l.strip_suffix(" -----"))
        {
            section = match name {
                "sensor stderr" => "stderr",
                "sensor stdout" => "stdout",
                "results" => "results",
                _ => "kernel_log",
            };
        } else {
            let target = match section {
                "stderr" => &mut report.stderr,
                "stdout" => &mut report.stdout,
                "kernel_log" => &mut report.kernel_log,
                "results" => {
                    if let Some(rest) = line.strip_prefix("TW-RESULT ") {
                        let mut parts = rest.splitn(3, ' ');
                        let name = parts.next().unwrap_or("").to_string();
                        let ok = parts.next() == Some("PASS");
                        let detail = parts.next().unwrap_or("").to_string();
                        report.results.insert(name, (ok, detail));
                    }
                    continue;
                }
                _ => continue,
            };
            target.push_str(line);
            target.push('\n');
        }
    }
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report_between_the_markers() {
        let console = format!(
            "boot noise\n{BEGIN}\nkernel: 5.10.0-46-cloud-amd64\n----- sensor stderr -----\n\
             tunnelwatch: ready in 2700 ms\n----- sensor stdout -----\n{{\"rule_id\":\"x\"}}\n\
             ----- kernel log during the test -----\n[ 1.0] hi\n----- results -----\n\
             TW-RESULT loaded PASS\nTW-RESULT exit FAIL code=1\n{END}\npower off\n"
        );
        let r = parse_report(&console).expect("a report");
        assert_eq!(r.kernel, "5.10.0-46-cloud-amd64");
        assert_eq!(r.stderr, "tunnelwatch: ready in 2700 ms\n");
        assert_eq!(r.stdout, "{\"rule_id\":\"x\"}\n");
        assert_eq!(r.kernel_log, "[ 1.0] hi\n");
        assert_eq!(r.results["loaded"], (true, String::new()));
        assert_eq!(r.results["exit"], (false, "code=1".to_string()));
        assert!(parse_report(&console[..console.find(END).unwrap()]).is_none());
    }

    #[test]
    fn the_script_is_filled_in() {
        let s = init_script();
        assert!(!s.contains('@'), "a placeholder is left: {s}");
        assert!(s.contains(EXEC_RULE) && s.contains(DNS_RULE) && s.contains(BEGIN));
        for check in CHECKS {
            assert!(s.contains(&format!("TW-RESULT {check} ")), "{check}");
        }
    }
}
