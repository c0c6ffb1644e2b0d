//! Which container a cgroup path names: the runtime, the container's id and, for Kubernetes,
//! the pod's uid, from the names runtimes give the cgroups they create. The innermost match
//! wins (a container inside a kind node's container, systemd inside an LXC container).
//!
//! Layouts (cgroup v2 paths, and the v1 controller paths of `/proc/PID/cgroup`, which use the
//! same names), `<id>` being 64 hex digits:
//! - Docker: `/system.slice/docker-<id>.scope` (systemd driver), `/docker/<id>` (cgroupfs);
//! - Podman (libpod): `/machine.slice/libpod-<id>.scope` and `.../libpod-<id>.scope/container`
//!   (systemd; rootless under `user@UID.service`), `/libpod_parent/libpod-<id>` (cgroupfs);
//!   `libpod-conmon-<id>.scope` is its monitor, not the container;
//! - containerd: `cri-containerd-<id>.scope` (CRI, systemd), `nerdctl-<id>.scope`, and
//!   `/<namespace>/<id>` (cgroupfs, e.g. `/default/<id>`, `/k8s.io/<id>`);
//! - CRI-O: `crio-<id>.scope` (systemd), `crio-<id>` (cgroupfs); `crio-conmon-<id>.scope`
//!   is its monitor;
//! - Kubernetes: the pod's cgroup above the container's: `kubepods-pod<uid>.slice`,
//!   `kubepods-burstable-pod<uid>.slice`, `kubepods-besteffort-pod<uid>.slice` (systemd,
//!   the uid's dashes written as underscores) or `pod<uid>` (cgroupfs, under
//!   `/kubepods[/burstable|/besteffort]`), where a bare `<id>` is the container of whatever
//!   CRI runtime runs it (`cri`);
//! - LXC: `lxc.payload.<name>` (4.0 on), `lxc.payload/<name>` and `/lxc/<name>` (older);
//!   `lxc.monitor.<name>` is its monitor;
//! - systemd-nspawn: `/machine.slice/systemd-nspawn@<name>.service/payload` (and
//!   `machine-<name>.scope`, escaped as systemd escapes unit names); `supervisor` is
//!   nspawn itself.
//!
//! Uses: nothing of this crate.

/// A container a cgroup path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathContainer {
    /// `docker`, `podman`, `containerd`, `cri-o`, `cri`, `lxc` or `systemd-nspawn`.
    pub runtime: &'static str,
    /// The runtime's container id (the name for LXC and systemd-nspawn).
    pub id: String,
    /// The Kubernetes pod's uid (with dashes), when the path has one.
    pub pod_uid: Option<String>,
}

/// The container `path` (a cgroup path, `/`-separated) names, if any.
pub fn parse(path: &str) -> Option<PathContainer> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate().rev() {
        let parent = i.checked_sub(1).map(|j| parts[j]);
        if let Some((runtime, id)) = container_of(part, parent, &parts[..i]) {
            let pod_uid = parts[..i].iter().rev().find_map(|p| pod_uid(p));
            let runtime = if runtime == "cri" && pod_uid.is_none() {
                "containerd"
            } else {
                runtime
            };
            return Some(PathContainer {
                runtime,
                id,
                pod_uid,
            });
        }
        if is_monitor(part) {
            // A runtime's own process beside the container (conmon, lxc-monitor, nspawn).
            return None;
        }
    }
    None
}

/// The runtime and id that one component names; `above` are the components above it.
fn container_of(
    part: &str,
    parent: Option<&str>,
    above: &[&str],
) -> Option<(&'static str, String)> {
    const SCOPES: &[(&str, &str)] = &[
        ("docker-", "docker"),
        ("libpod-", "podman"),
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("nerdctl-", "containerd"),
        ("containerd-", "containerd"),
    ];
    for (prefix, runtime) in SCOPES {
        if let Some(rest) = part.strip_prefix(prefix) {
            let id = rest.strip_suffix(".scope").unwrap_or(rest);
            if is_id(id) {
                return Some((runtime, id.to_owned()));
            }
        }
    }
    if is_id(part) {
        let runtime = match parent {
            Some("docker") => "docker",
            Some("libpod_parent") => "podman",
            Some(p) if pod_uid(p).is_some() => "cri",
            _ if above.iter().any(|p| p.starts_with("kubepods")) => "cri",
            _ => "containerd",
        };
        return Some((runtime, part.to_owned()));
    }
    if let Some(name) = part.strip_prefix("lxc.payload.") {
        return named("lxc", name);
    }
    if matches!(parent, Some("lxc.payload" | "lxc")) && above.len() == 1 {
        return named("lxc", part);
    }
    if let Some(name) = part
        .strip_prefix("systemd-nspawn@")
        .and_then(|n| n.strip_suffix(".service"))
    {
        return named("systemd-nspawn", &unescape_unit(name));
    }
    if parent == Some("machine.slice")
        && let Some(name) = part
            .strip_prefix("machine-")
            .and_then(|n| n.strip_suffix(".scope"))
    {
        // libvirt's VMs and LXC domains have scopes here too (`machine-qemu\x2d1\x2dvm`).
        let name = unescape_unit(name);
        if !name.starts_with("qemu-") && !name.starts_with("lxc-") {
            return named("systemd-nspawn", &name);
        }
    }
    None
}

fn named(runtime: &'static str, name: &str) -> Option<(&'static str, String)> {
    (!name.is_empty()).then(|| (runtime, name.to_owned()))
}

/// A runtime's monitor process's cgroup: not the container.
fn is_monitor(part: &str) -> bool {
    part.starts_with("libpod-conmon-")
        || part.starts_with("crio-conmon-")
        || part.starts_with("lxc.monitor")
        || part == "supervisor"
}

/// 64 lowercase hex digits.
fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The pod uid a pod's cgroup names: `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid>.slice`
/// (systemd, dashes escaped as underscores).
fn pod_uid(part: &str) -> Option<String> {
    let uid = if let Some(rest) = part.strip_prefix("kubepods-") {
        let rest = rest.strip_suffix(".slice")?;
        let at = rest.find("pod")?;
        rest[at + 3..].replace('_', "-")
    } else {
        part.strip_prefix("pod")?.to_owned()
    };
    let uuid = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    uuid.then_some(uid)
}

/// A unit name part as systemd escapes it: `\xNN` is the byte NN.
fn unescape_unit(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(v) = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup paths of a `/proc/PID/cgroup` file (`ID:CONTROLLERS:PATH` lines): the v2 path
/// (`0::PATH`) first, then the v1 controllers' (hybrid hosts, where a runtime may have
/// placed the container in the v1 hierarchies only).
pub fn proc_cgroup_paths(text: &str) -> Vec<&str> {
    let mut v2 = Vec::new();
    let mut v1 = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(_), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if id == "0" { &mut v2 } else { &mut v1 }.push(path);
    }
    v2.extend(v1);
    v2
}

/// The container named by the first of `paths` that names one.
pub fn parse_any<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<PathContainer> {
    paths.into_iter().find_map(parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d";
    const UID: &str = "74c13223-5a00-11e9-b385-42010a80018d";

    fn c(runtime: &'static str, id: &str, pod: Option<&str>) -> Option<PathContainer> {
        Some(PathContainer {
            runtime,
            id: id.into(),
            pod_uid: pod.map(str::to_owned),
        })
    }

    #[test]
    fn docker() {
        assert_eq!(
            parse(&format!("/system.slice/docker-{ID}.scope")),
            c("docker", ID, None)
        );
        assert_eq!(parse(&format!("/docker/{ID}")), c("docker", ID, None));
        // Rootless Docker (systemd driver, under the user's manager).
        assert_eq!(
            parse(&format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/docker-{ID}.scope"
            )),
            c("docker", ID, None)
        );
    }

    #[test]
    fn podman() {
        // This machine's hybrid host with the cgroupfs manager (checked: podman 4.3 + runc).
        assert_eq!(
            parse(&format!("/libpod_parent/libpod-{ID}")),
            c("podman", ID, None)
        );
        assert_eq!(
            parse(&format!("/machine.slice/libpod-{ID}.scope")),
            c("podman", ID, None)
        );
        assert_eq!(
            parse(&format!("/machine.slice/libpod-{ID}.scope/container")),
            c("podman", ID, None)
        );
        assert_eq!(
            parse(&format!(
                "/machine.slice/machine-libpod_pod_1b2c.slice/libpod-{ID}.scope"
            )),
            c("podman", ID, None)
        );
        assert_eq!(
            parse(&format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
            )),
            c("podman", ID, None)
        );
        // conmon, the monitor, is not in the container.
        assert_eq!(
            parse(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn kubernetes_with_every_qos_class() {
        let u = UID.replace('-', "_");
        for (path, runtime) in [
            // systemd driver: Guaranteed, Burstable, BestEffort.
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/cri-containerd-{ID}.scope"),
                "containerd",
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope"
                ),
                "containerd",
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/crio-{ID}.scope"
                ),
                "cri-o",
            ),
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/docker-{ID}.scope"),
                "docker",
            ),
            // cgroupfs driver: the container's cgroup is its bare id.
            (format!("/kubepods/besteffort/pod{UID}/{ID}"), "cri"),
            (format!("/kubepods/burstable/pod{UID}/{ID}"), "cri"),
            (format!("/kubepods/pod{UID}/{ID}"), "cri"),
            (format!("/kubepods/burstable/pod{UID}/crio-{ID}"), "cri-o"),
            // A kind node: Kubernetes inside a Docker container.
            (
                format!(
                    "/docker/{}/kubepods/burstable/pod{UID}/{ID}",
                    "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970"
                ),
                "cri",
            ),
        ] {
            assert_eq!(parse(&path), c(runtime, ID, Some(UID)), "{path}");
        }
        // The pod's own cgroup, and CRI-O's monitor: no container.
        assert_eq!(parse(&format!("/kubepods/burstable/pod{UID}")), None);
        assert_eq!(
            parse(&format!(
                "/kubepods.slice/kubepods-pod{u}.slice/crio-conmon-{ID}.scope"
            )),
            None
        );
    }

    #[test]
    fn containerd_without_kubernetes() {
        assert_eq!(parse(&format!("/default/{ID}")), c("containerd", ID, None));
        assert_eq!(
            parse(&format!("/system.slice/nerdctl-{ID}.scope")),
            c("containerd", ID, None)
        );
    }

    #[test]
    fn lxc() {
        assert_eq!(parse("/lxc.payload.web"), c("lxc", "web", None));
        assert_eq!(
            parse("/lxc.payload.web/system.slice/cron.service"),
            c("lxc", "web", None)
        );
        assert_eq!(parse("/lxc.payload/web"), c("lxc", "web", None));
        assert_eq!(parse("/lxc/web"), c("lxc", "web", None));
        assert_eq!(parse("/lxc.monitor.web"), None);
        // Docker inside an LXC container: the innermost wins.
        assert_eq!(
            parse(&format!("/lxc.payload.web/system.slice/docker-{ID}.scope")),
            c("docker", ID, None)
        );
    }

    #[test]
    fn systemd_nspawn() {
        assert_eq!(
            parse("/machine.slice/systemd-nspawn@deb12.service/payload"),
            c("systemd-nspawn", "deb12", None)
        );
        assert_eq!(
            parse("/machine.slice/systemd-nspawn@deb12.service/payload/system.slice/ssh.service"),
            c("systemd-nspawn", "deb12", None)
        );
        assert_eq!(
            parse("/machine.slice/machine-my\\x2dbox.scope/payload"),
            c("systemd-nspawn", "my-box", None)
        );
        assert_eq!(
            parse("/machine.slice/systemd-nspawn@deb12.service/supervisor"),
            None
        );
        // libvirt's VMs are not containers.
        assert_eq!(
            parse("/machine.slice/machine-qemu\\x2d1\\x2dvm.scope"),
            None
        );
    }

    #[test]
    fn host_paths_name_nothing() {
        for p in [
            "/",
            "",
            "/init.scope",
            "/system.slice/sshd.service",
            "/user.slice/user-1000.slice/session-2.scope",
            "/process_api/fb097fd4a6fea7ac879e5e4b535eba1e",
            "/system.slice/docker.service",
            "/docker/not-an-id",
        ] {
            assert_eq!(parse(p), None, "{p}");
        }
    }

    #[test]
    fn proc_cgroup_of_a_hybrid_host() {
        // A container runc placed in the v1 hierarchies only (the unified one left at `/`).
        let text = format!(
            "9:name=systemd:/docker/{ID}\n8:pids:/docker/{ID}\n4:memory:/docker/{ID}\n0::/\n"
        );
        let paths = proc_cgroup_paths(&text);
        assert_eq!(paths[0], "/");
        assert_eq!(parse_any(paths), c("docker", ID, None));
        // A pure v2 host.
        let text = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(parse_any(proc_cgroup_paths(&text)), c("docker", ID, None));
        assert_eq!(parse_any(proc_cgroup_paths("garbage\n1:cpu\n")), None);
    }
}
