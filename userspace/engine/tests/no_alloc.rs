//! Evaluating an event that no rule matches allocates nothing (a counting global allocator).

mod common;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use common::*;
use tunnelwatch_engine::event::Platform;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The only test of this binary, so no other test allocates while counting.
#[test]
fn no_allocation_without_a_match() {
    let engine = builtin_engine();
    let quiet = [
        exec("/usr/bin/grep", "grep ngrok http.log"),
        exec("/usr/local/bin/ngrok", "ngrok version"),
        exec("/usr/bin/ls", "ls -l /home/ärger"),
        // Non-ASCII command line that the Linux rule reads (process_name matches).
        exec("/usr/local/bin/ngrok", "ngrok vérsion"),
        dns_query("example.com"),
        dns_query("ngrok.io"),
        dns_response("abc.ngrok.io", &["1.2.3.4"], 0),
        // Prefilter candidates whose conditions fail: a node server with a port (the
        // localtunnel rule), ssh to an ordinary host (the SSH rules' regular expressions), a
        // long name under one domain (the DNS tunnel rules' shape fields), cloudflared listing
        // tunnels, a Windows command line in capitals.
        exec("/usr/bin/node", "node /srv/app/server.js --port 3000"),
        exec(
            "/usr/bin/ssh",
            "ssh -p 2222 -l admin bastion.example.com uptime",
        ),
        exec("/usr/bin/cloudflared", "cloudflared tunnel list"),
        exec_on(
            Platform::Windows,
            r"C:\Windows\System32\CMD.EXE",
            r"C:\WINDOWS\SYSTEM32\CMD.EXE /C DIR C:\USERS",
        ),
        // Longer than the prefilter's stack buffer, upper case and non-ASCII.
        exec(
            "/usr/bin/python3",
            &format!("python3 -c 'print(1)' {}", "ÄRGER ".repeat(200)),
        ),
        exec(
            "/usr/bin/python3",
            &format!("PYTHON3 -C 'PRINT(1)' {}", "X".repeat(2000)),
        ),
        dns_query("UPDATES.EXAMPLE.COM"),
        dns_query("a-rather-long-but-ordinary-host-name-of-forty-chars.example.co.uk"),
    ];
    let hit = exec("/usr/local/bin/ngrok", "ngrok http 80");
    let mut out = Vec::new();
    // Warm-up: the thread's lower-casing buffer grows once.
    for e in &quiet {
        engine.evaluate(e, &mut out);
    }
    assert!(out.is_empty());

    COUNTING.store(true, Ordering::SeqCst);
    for e in &quiet {
        engine.evaluate(e, &mut out);
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert!(out.is_empty());
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0);

    // A match allocates (the alert and its message), which the counter does see.
    COUNTING.store(true, Ordering::SeqCst);
    engine.evaluate(&hit, &mut out);
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(out.len(), 1);
    assert!(ALLOCATIONS.load(Ordering::SeqCst) > 0);
}
