//! `cargo xtask kernels`: the kernel matrix. Boots Debian's cloud kernels (5.10, 6.1, 6.12 and
//! the newest 7.x) under QEMU, each with the release sensor in an initramfs, and checks inside
//! the VM that the sensor loads, alerts on an exec of `ngrok` and on a DNS query for an ngrok
//! domain, identifies a renamed Go-built ngrok (which checks the exec record's inode, size and
//! times against the file), and exits cleanly on SIGINT.
//!
//! - Packages: qemu-system-x86, busybox-static and binutils, installed here rather than by
//!   `setup`, so that builds and CI do not pull in QEMU for nothing.
//! - Kernels: `apt-get download` of `linux-image-*-cloud-amd64` (and, from 6.19 on, the
//!   `linux-binary-*` and `linux-base-*` packages that hold its files) with a private apt
//!   configuration (sources, lists, cache and state under `target/kernels/NAME/apt/`) naming
//!   only deb.debian.org; the machine's own apt configuration is left as it is. The newest image
//!   of each series in its suites is picked and cached: `--refresh` looks again.
//! - VM: no network device at all (`-nic none`), serial console only; the initramfs holds
//!   busybox, the sensor and its libraries, a copy of `true` named `ngrok`, and an init script
//!   that prints a report between markers and powers off.
//!
//! Each kernel's console is kept in `target/kernels/NAME/console.log`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::{self, File, OpenOptions},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;

use crate::{cargo, install_packages, output, setup, sh};

/// Debian packages that only this subcommand needs.
const APT_PACKAGES: &[&str] = &[
    "qemu-system-x86", // qemu-system-x86_64
    "busybox-static",  // the VM's shell and tools
    "binutils",        // strip: a smaller initramfs
];

/// The keyring that signs every suite below (debian-archive-keyring).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The rule that fires on `ngrok http ...` (Linux Ngrok Reverse Proxy Usage).
const EXEC_RULE: &str = "bc84d574-708c-467d-b78a-4c1e20171f97";
/// The rule that fires on an executable identified as ngrok by its Go build information under
/// another name (Renamed Ngrok Agent): the exec record's inode, size and times must match the
/// file the sensor opens, which checks those kernel offsets on each kernel.
const RENAMED_RULE: &str = "fe647c01-2e4b-4f5a-8611-6e0fab46fa0a";
/// The rule that fires on a DNS query for `*.ngrok.io` (Ngrok Reverse Proxy on Network).
const DNS_RULE: &str = "5790a766-53b8-40d3-a696-3547b978fcf0";

/// Lines around the report that the init script prints on the serial console.
const BEGIN: &str = "===== tunnelwatch kernel test: begin =====";
const END: &str = "===== tunnelwatch kernel test: end =====";

/// One kernel of the matrix: a series of Debian cloud images and the suites to take it from.
struct Kernel {
    /// What `--kernel` takes and the table shows.
    name: &'static str,
    /// Image packages are `linux-image-{series}.*-cloud-amd64`; the newest one wins.
    series: &'static str,
    /// (archive, suite) pairs on deb.debian.org.
    suites: &'static [(&'static str, &'static str)],
}

/// The matrix: every kernel from 5.10 LTS on that a Debian release ships, and the newest.
const KERNELS: &[Kernel] = &[
    Kernel {
        name: "5.10",
        series: "5.10",
        suites: &[
            ("debian", "bullseye"),
            ("debian-security", "bullseye-security"),
        ],
    },
    Kernel {
        name: "6.1",
        series: "6.1",
        suites: &[
            ("debian", "bookworm"),
            ("debian-security", "bookworm-security"),
        ],
    },
    Kernel {
        name: "6.12",
        series: "6.12",
        suites: &[("debian", "trixie"), ("debian-security", "trixie-security")],
    },
    Kernel {
        name: "7",
        series: "7",
        suites: &[
            ("debian", "trixie-backports"),
            ("debian", "sid"),
            ("debian", "experimental"),
        ],
    },
];

/// How QEMU runs the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    /// Pure emulation: works anywhere (the default: nested KVM, where /dev/kvm exists in a
    /// VM, can fail with "KVM internal error" or unsettable MSRs).
    Tcg,
    /// Hardware virtualisation (needs a working /dev/kvm), with `-cpu host`.
    Kvm,
}

/// `cargo xtask kernels` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this kernel (repeatable): 5.10, 6.1, 6.12 or 7. Default: all.
    #[arg(long = "kernel", value_name = "NAME")]
    kernels: Vec<String>,
    /// Look for newer kernel packages instead of using the ones cached in target/kernels/.
    #[arg(long)]
    refresh: bool,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// Seconds one VM may run (boot, test, power off) before it counts as failed.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
}

/// Runs the matrix; fails when any kernel fails.
pub fn run(args: &Args) -> Result<()> {
    let selected: Vec<&Kernel> = if args.kernels.is_empty() {
        KERNELS.iter().collect()
    } else {
        args.kernels
            .iter()
            .map(|n| {
                KERNELS.iter().find(|k| k.name == n).with_context(|| {
                    let names: Vec<_> = KERNELS.iter().map(|k| k.name).collect();
                    format!("no kernel {n:?}: choose from {}", names.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    setup()?;
    install_packages(APT_PACKAGES)?;
    cargo(["build", "--release"])?;

    let dir = PathBuf::from("target/kernels");
    fs::create_dir_all(&dir)?;
    let initrd = build_initramfs(&dir)?;
    let accel = args.accel;
    if accel == Accel::Kvm && !kvm_usable() {
        bail!("--accel kvm: /dev/kvm cannot be opened");
    }

    let mut results = Vec::new();
    for kernel in selected {
        let image = fetch_kernel(kernel, &dir.join(kernel.name), args.refresh)?;
        eprintln!(
            "xtask: booting {} ({}, {}) under QEMU ({accel:?})",
            kernel.name, image.release, image.version
        );
        let result = boot(
            kernel,
            &image,
            &initrd,
            accel,
            Duration::from_secs(args.timeout),
        )?;
        eprintln!(
            "xtask: {}: {} in {:.1} s",
            kernel.name,
            result.verdict(),
            result.seconds
        );
        results.push((image, result));
    }

    print_table(&results, accel);
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, r)| !r.passed())
        .map(|(_, r)| r.name)
        .collect();
    for (_, r) in results.iter().filter(|(_, r)| !r.passed()) {
        r.print_failure();
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("kernel matrix failed on {}", failed.join(", "))
    }
}

fn kvm_usable() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

// ---------------------------------------------------------------------------------------------
// Kernel packages

/// A kernel image ready to boot.
struct Image {
    package: String,
    version: String,
    /// `uname -r`, from the name of the image file.
    release: String,
    /// Whether the package's config has CONFIG_DEBUG_INFO_BTF=y.
    btf: bool,
    vmlinuz: PathBuf,
}

/// Finds, downloads and unpacks the newest image of `kernel`'s series into `dir`, or reuses
/// the one there (unless `refresh`).
fn fetch_kernel(kernel: &Kernel, dir: &Path, refresh: bool) -> Result<Image> {
    let info = dir.join("kernel.txt");
    let vmlinuz = dir.join("vmlinuz");
    if !refresh
        && vmlinuz.is_file()
        && let Ok(text) = fs::read_to_string(&info)
        && let Some(image) = parse_info(&text, &vmlinuz)
    {
        return Ok(image);
    }
    fs::create_dir_all(dir)?;
    let apt = Apt::new(&dir.join("apt"), kernel.suites)?;
    apt.update()?;
    let candidate = apt.newest_image(kernel.series)?.with_context(|| {
        format!(
            "no linux-image-{}.*-cloud-amd64 package in {}",
            kernel.series,
            kernel
                .suites
                .iter()
                .map(|(_, s)| *s)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let debs = apt.download(&candidate, &dir.join("debs"))?;

    let unpacked = dir.join("unpacked");
    if unpacked.exists() {
        fs::remove_dir_all(&unpacked)?;
    }
    for deb in &debs {
        sh("dpkg-deb", &["-x", path_str(deb)?, path_str(&unpacked)?])?;
    }
    let (image_file, release, config) =
        find_kernel(&unpacked).with_context(|| format!("no vmlinuz in {}", candidate.package))?;
    let btf = fs::read_to_string(config)
        .unwrap_or_default()
        .lines()
        .any(|l| l == "CONFIG_DEBUG_INFO_BTF=y");
    fs::copy(image_file, &vmlinuz)?;
    // The modules are not needed: the tests use nothing but what is built in.
    fs::remove_dir_all(&unpacked)?;
    let Candidate {
        package, version, ..
    } = candidate;
    fs::write(
        &info,
        format!("package={package}\nversion={version}\nrelease={release}\nbtf={btf}\n"),
    )?;
    if !btf {
        eprintln!("xtask: warning: {package} is built without CONFIG_DEBUG_INFO_BTF=y");
    }
    Ok(Image {
        package,
        version,
        release,
        btf,
        vmlinuz,
    })
}

/// In an unpacked image: the kernel, its release (`uname -r`) and its config. Up to 6.18
/// they are /boot/vmlinuz-REL and /boot/config-REL, since 6.19 /usr/lib/modules/REL/vmlinuz
/// and /usr/lib/modules/REL/config.
fn find_kernel(root: &Path) -> Option<(PathBuf, String, PathBuf)> {
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let boot = root.join("boot");
    if let Some(rel) = names(&boot).iter().find_map(|n| n.strip_prefix("vmlinuz-")) {
        return Some((
            boot.join(format!("vmlinuz-{rel}")),
            rel.to_string(),
            boot.join(format!("config-{rel}")),
        ));
    }
    let modules = root.join("usr/lib/modules");
    names(&modules).into_iter().find_map(|rel| {
        let dir = modules.join(&rel);
        let image = dir.join("vmlinuz");
        image.is_file().then(|| (image, rel, dir.join("config")))
    })
}

/// Reads `kernel.txt` back.
fn parse_info(text: &str, vmlinuz: &Path) -> Option<Image> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    Some(Image {
        package: field("package")?,
        version: field("version")?,
        release: field("release")?,
        btf: field("btf")? == "true",
        vmlinuz: vmlinuz.to_path_buf(),
    })
}

/// apt-get and apt-cache with a private configuration: only the given suites, and lists,
/// cache and state of their own, so that the machine's apt setup is neither used nor changed.
struct Apt {
    options: Vec<String>,
}

impl Apt {
    fn new(dir: &Path, suites: &[(&str, &str)]) -> Result<Self> {
        if !Path::new(KEYRING).is_file() {
            bail!("{KEYRING} is missing: install debian-archive-keyring");
        }
        let dir = std::path::absolute(dir)?;
        for sub in ["lists/partial", "cache/archives/partial", "empty"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let mut sources = String::new();
        for (archive, suite) in suites {
            writeln!(
                sources,
                "deb [signed-by={KEYRING}] http://deb.debian.org/{archive} {suite} main"
            )?;
        }
        fs::write(dir.join("sources.list"), sources)?;
        fs::write(dir.join("status"), "")?;
        let d = |sub: &str| dir.join(sub).to_string_lossy().into_owned();
        let settings = [
            ("Dir::Etc::SourceList", d("sources.list")),
            ("Dir::Etc::SourceParts", d("empty")),
            ("Dir::Etc::Preferences", d("empty/preferences")),
            ("Dir::Etc::PreferencesParts", d("empty")),
            ("Dir::State::Lists", d("lists")),
            ("Dir::State::Status", d("status")),
            ("Dir::Cache", d("cache")),
            ("Dir::Cache::pkgcache", String::new()),
            ("Dir::Cache::srcpkgcache", String::new()),
            ("APT::Architecture", "amd64".into()),
            ("APT::Architectures", "amd64".into()),
            ("Acquire::Languages", "none".into()),
            // Only the Packages indices: no AppStream data, no Contents.
            (
                "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled",
                "false".into(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled",
                "false".into(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled",
                "false".into(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled",
                "false".into(),
            ),
            (
                "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled",
                "false".into(),
            ),
            // The files are ours (root's): no need to hand downloads to the _apt user.
            ("APT::Sandbox::User", "root".into()),
            ("Debug::NoLocking", "true".into()),
        ];
        let options = settings
            .into_iter()
            .flat_map(|(k, v)| ["-o".to_string(), format!("{k}={v}")])
            .collect();
        Ok(Self { options })
    }

    fn args<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args: Vec<&str> = self.options.iter().map(String::as_str).collect();
        args.extend(rest);
        args
    }

    fn update(&self) -> Result<()> {
        sh("apt-get", &self.args(&["-q", "update"]))
    }

    /// The newest `linux-image-{series}.*-cloud-amd64` image (not a meta-package).
    fn newest_image(&self, series: &str) -> Result<Option<Candidate>> {
        let names = output(
            "apt-cache",
            &self.args(&["search", "--names-only", "^linux-image-.*-cloud-amd64$"]),
        )
        .context("apt-cache search failed")?;
        let prefix = format!("linux-image-{series}.");
        let names: Vec<&str> = names
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&prefix) && n.ends_with("-cloud-amd64"))
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        let mut show = vec!["show"];
        show.extend(&names);
        let stanzas = output("apt-cache", &self.args(&show)).context("apt-cache show failed")?;
        let mut best: Option<Candidate> = None;
        for stanza in stanzas.split("\n\n") {
            let field = |key: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
                    .unwrap_or("")
            };
            let (package, version) = (field("Package"), field("Version"));
            // Meta-packages (linux-image-6.12-cloud-amd64) depend on the real image.
            if package.is_empty() || field("Depends").contains("linux-image-") {
                continue;
            }
            let newer = match &best {
                None => true,
                Some(b) => Command::new("dpkg")
                    .args(["--compare-versions", version, "gt", &b.version])
                    .status()
                    .context("cannot run dpkg --compare-versions")?
                    .success(),
            };
            if newer {
                // Since 6.19 the image package is empty: the kernel is in linux-binary-ABI
                // and its config in linux-base-ABI, both of exactly this version.
                let parts = field("Depends")
                    .split([',', '|'])
                    .filter_map(|d| d.split_whitespace().next())
                    .filter(|d| d.starts_with("linux-binary-") || d.starts_with("linux-base-"))
                    .map(str::to_string)
                    .collect();
                best = Some(Candidate {
                    package: package.to_string(),
                    version: version.to_string(),
                    parts,
                });
            }
        }
        Ok(best)
    }

    /// Downloads the candidate's packages into `dir` (emptied first); returns the .debs.
    fn download(&self, candidate: &Candidate, dir: &Path) -> Result<Vec<PathBuf>> {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        fs::create_dir_all(dir)?;
        let specs: Vec<String> = std::iter::once(&candidate.package)
            .chain(&candidate.parts)
            .map(|p| format!("{p}={}", candidate.version))
            .collect();
        let mut args = vec!["-q", "download"];
        args.extend(specs.iter().map(String::as_str));
        eprintln!("xtask: apt-get download {}", specs.join(" "));
        let status = Command::new("apt-get")
            .args(self.args(&args))
            .current_dir(dir)
            .status()
            .context("cannot run apt-get")?;
        if !status.success() {
            bail!("apt-get download {} failed ({status})", specs.join(" "));
        }
        let debs: Vec<PathBuf> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        if debs.len() != specs.len() {
            bail!(
                "apt-get download {} left {} .deb files",
                specs.join(" "),
                debs.len()
            );
        }
        Ok(debs)
    }
}

/// A kernel image package and the packages that hold its files.
struct Candidate {
    package: String,
    version: String,
    /// linux-binary-ABI and linux-base-ABI, for the packages that split them off (6.19 on).
    parts: Vec<String>,
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

// ---------------------------------------------------------------------------------------------
// Initramfs

/// The guest's PID 1. `@EXEC_RULE@`, `@DNS_RULE@`, `@BEGIN@` and `@END@` are filled in.
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

/// Builds `dir/initrd.gz`: busybox, the stripped release sensor and its libraries, `ngrok`
/// (a copy of `true`), `update-helper` (a static x86-64 program that exits, carrying Go 1.16
/// build information naming ngrok), /etc/passwd and the init script.
fn build_initramfs(dir: &Path) -> Result<PathBuf> {
    let mut cpio = Cpio::default();
    for d in ["dev", "proc", "sys", "tmp", "root", "etc"] {
        cpio.dir(d);
    }
    cpio.char_dev("dev/console", 5, 1);
    cpio.char_dev("dev/null", 1, 3);

    let busybox = Path::new("/bin/busybox");
    if output("ldd", &[path_str(busybox)?]).is_some_and(|o| !o.contains("not a dynamic")) {
        bail!("/bin/busybox is not static: install busybox-static");
    }
    cpio.file("bin/busybox", 0o755, fs::read(busybox)?);

    let stripped = dir.join("tunnelwatch.stripped");
    sh(
        "strip",
        &[
            "--strip-debug",
            "-o",
            path_str(&stripped)?,
            "target/release/tunnelwatch",
        ],
    )?;
    cpio.file("usr/bin/tunnelwatch", 0o755, fs::read(&stripped)?);
    let true_path = Path::new("/bin/true");
    cpio.file("ngrok", 0o755, fs::read(true_path)?);
    let renamed = tunnelwatch_identify::testing::GoFile::new("go1.16.15", "go.ngrok.com/cmd/ngrok");
    cpio.file("update-helper", 0o755, renamed.elf());
    for program in [Path::new("target/release/tunnelwatch"), true_path] {
        for lib in shared_libraries(program)? {
            let data = fs::read(&lib).with_context(|| format!("cannot read {lib}"))?;
            cpio.file(lib.trim_start_matches('/'), 0o755, data);
        }
    }

    cpio.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
    );
    cpio.file("etc/group", 0o644, b"root:x:0:\n".to_vec());
    let init = INIT
        .replace("@EXEC_RULE@", EXEC_RULE)
        .replace("@DNS_RULE@", DNS_RULE)
        .replace("@RENAMED_RULE@", RENAMED_RULE)
        .replace("@BEGIN@", BEGIN)
        .replace("@END@", END);
    cpio.file("init", 0o755, init.into_bytes());

    let raw = dir.join("initrd");
    fs::write(&raw, cpio.finish())?;
    sh("gzip", &["-f", "-n", "-6", path_str(&raw)?])?;
    Ok(dir.join("initrd.gz"))
}

/// The shared libraries (and the dynamic loader) that `ldd` lists for `program`.
fn shared_libraries(program: &Path) -> Result<Vec<String>> {
    let text = output("ldd", &[path_str(program)?])
        .with_context(|| format!("ldd {} failed", program.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect())
}

/// A cpio archive in the "newc" format that the kernel unpacks as its initramfs.
#[derive(Default)]
struct Cpio {
    /// Paths (no leading `/`) in order: a directory sorts before what it holds.
    entries: BTreeMap<String, Entry>,
}

enum Entry {
    Dir,
    File { mode: u32, data: Vec<u8> },
    CharDev { major: u32, minor: u32 },
}

impl Cpio {
    /// Adds a directory and its parents.
    fn dir(&mut self, path: &str) {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            self.entries.insert(path[..at + i].to_string(), Entry::Dir);
            at += i + 1;
        }
        self.entries.insert(path.to_string(), Entry::Dir);
    }

    fn parents(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        self.parents(path);
        self.entries
            .insert(path.to_string(), Entry::File { mode, data });
    }

    fn char_dev(&mut self, path: &str, major: u32, minor: u32) {
        self.parents(path);
        self.entries
            .insert(path.to_string(), Entry::CharDev { major, minor });
    }

    /// The archive's bytes, trailer included.
    fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (name, entry)) in (1..).zip(&self.entries) {
            let (mode, nlink, rdev, data): (u32, u32, (u32, u32), &[u8]) = match entry {
                Entry::Dir => (0o040_755, 2, (0, 0), &[]),
                Entry::File { mode, data } => (0o100_000 | mode, 1, (0, 0), data),
                Entry::CharDev { major, minor } => (0o020_600, 1, (*major, *minor), &[]),
            };
            Self::record(&mut out, ino, mode, nlink, rdev, name, data);
        }
        Self::record(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[]);
        out
    }

    fn record(
        out: &mut Vec<u8>,
        ino: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        name: &str,
        data: &[u8],
    ) {
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad4(out);
        out.extend_from_slice(data);
        pad4(out);
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

// ---------------------------------------------------------------------------------------------
// Booting and the report

/// What one VM showed.
struct Outcome {
    name: &'static str,
    seconds: f64,
    /// The report between the markers, when the guest got that far.
    report: Option<Report>,
    /// Why there is no report (timeout, QEMU error), with the console's tail.
    problem: Option<String>,
    console: PathBuf,
}

/// The guest's report.
#[derive(Default)]
struct Report {
    kernel: String,
    stderr: String,
    stdout: String,
    kernel_log: String,
    /// TW-RESULT name -> (PASS?, detail).
    results: BTreeMap<String, (bool, String)>,
}

impl Outcome {
    fn check(&self, name: &str) -> Option<bool> {
        self.report
            .as_ref()
            .map(|r| r.results.get(name).is_some_and(|(ok, _)| *ok))
    }

    fn passed(&self) -> bool {
        ["loaded", "exec_alert", "dns_alert", "identified", "exit"]
            .iter()
            .all(|c| self.check(c) == Some(true))
    }

    fn verdict(&self) -> &'static str {
        match (&self.report, self.passed()) {
            (None, _) => "NO REPORT",
            (Some(_), true) => "PASS",
            (Some(_), false) => "FAIL",
        }
    }

    /// How long the sensor took to load and attach, from its `ready in N ms` line.
    fn ready_ms(&self) -> Option<u64> {
        let stderr = &self.report.as_ref()?.stderr;
        let at = stderr.find("tunnelwatch: ready in ")? + "tunnelwatch: ready in ".len();
        stderr[at..].split_whitespace().next()?.parse().ok()
    }

    /// The program the kernel refused or could not attach, from the sensor's error.
    fn refused(&self) -> Option<String> {
        let stderr = &self.report.as_ref()?.stderr;
        ["the kernel refused program ", "cannot attach "]
            .iter()
            .find_map(|p| {
                let at = stderr.find(p)? + p.len();
                let word = stderr[at..].split_whitespace().next()?;
                Some(word.trim_end_matches(':').to_string())
            })
    }

    fn print_failure(&self) {
        eprintln!("\n===== {}: {} =====", self.name, self.verdict());
        if let Some(p) = &self.problem {
            eprintln!("{p}");
        }
        if let Some(r) = &self.report {
            eprintln!("kernel: {}", r.kernel);
            for (name, (ok, detail)) in &r.results {
                eprintln!("{name}: {} {detail}", if *ok { "PASS" } else { "FAIL" });
            }
            eprintln!("----- sensor stderr -----\n{}", r.stderr.trim_end());
            eprintln!("----- sensor stdout -----\n{}", r.stdout.trim_end());
            if !r.kernel_log.trim().is_empty() {
                eprintln!("----- kernel log -----\n{}", r.kernel_log.trim_end());
            }
        }
        eprintln!("(console: {})", self.console.display());
    }
}

/// Boots one kernel with the initramfs and reads the report off the serial console.
fn boot(
    kernel: &Kernel,
    image: &Image,
    initrd: &Path,
    accel: Accel,
    timeout: Duration,
) -> Result<Outcome> {
    let console = Path::new("target/kernels")
        .join(kernel.name)
        .join("console.log");
    let log = File::create(&console)?;
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-m", "1024", "-smp", "1", "-nographic", "-no-reboot"])
        // No network device at all: nothing in the guest can reach a network.
        .args(["-nic", "none"])
        .arg("-kernel")
        .arg(&image.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"]);
    match accel {
        Accel::Kvm => qemu.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => qemu.args(["-accel", "tcg"]),
    };
    let started = Instant::now();
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start qemu-system-x86_64")?;
    let mut problem = None;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                problem = Some(format!("qemu exited with {status}"));
            }
            break;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            problem = Some(format!("timed out after {} s", timeout.as_secs()));
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&fs::read(&console)?).replace('\r', "");
    let report = parse_report(&text);
    if report.is_none() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let why = problem.unwrap_or_else(|| "the guest printed no report".into());
        problem = Some(format!("{why}; console tail:\n{}", tail.join("\n")));
    }
    Ok(Outcome {
        name: kernel.name,
        seconds,
        report,
        problem,
        console,
    })
}

/// The report between [`BEGIN`] and [`END`] on the console, if complete.
fn parse_report(console: &str) -> Option<Report> {
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

/// The results table, on stdout.
fn print_table(results: &[(Image, Outcome)], accel: Accel) {
    let mark = |v: Option<bool>| match v {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "-",
    };
    println!(
        "\n{:<6} {:<28} {:<4} {:<6} {:<10} {:<9} {:<10} {:<6} {:>8} {:>7}  refused",
        "kernel",
        "release",
        "btf",
        "loaded",
        "exec alert",
        "dns alert",
        "identified",
        "exit",
        "load ms",
        "seconds"
    );
    for (image, o) in results {
        let release = o
            .report
            .as_ref()
            .map_or(image.release.as_str(), |r| r.kernel.as_str());
        println!(
            "{:<6} {:<28} {:<4} {:<6} {:<10} {:<9} {:<10} {:<6} {:>8} {:>7.1}  {}",
            o.name,
            release,
            if image.btf { "yes" } else { "no" },
            mark(o.check("loaded")),
            mark(o.check("exec_alert")),
            mark(o.check("dns_alert")),
            mark(o.check("identified")),
            mark(o.check("exit")),
            o.ready_ms().map_or_else(|| "-".into(), |ms| ms.to_string()),
            o.seconds,
            o.refused().unwrap_or_else(|| "-".into()),
        );
    }
    println!(
        "(QEMU {accel:?}; seconds: boot, test and power-off; packages: {})",
        {
            let p: Vec<String> = results
                .iter()
                .map(|(i, _)| format!("{} {}", i.package, i.version))
                .collect();
            p.join(", ")
        }
    );
}
