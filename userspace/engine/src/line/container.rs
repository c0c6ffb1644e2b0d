//! Where the process of a line runs: its container and its namespaces, declared once (see
//! `line/mod.rs`) and written after the body of every line whose event has a process (exec
//! and DNS lines; connection lines too). A host process has none of these fields.
//!
//! Floor 1 (events, fields and lines): may use `event` and the line types.

use std::sync::Arc;

use crate::{
    event::{Container, Namespaces, Process},
    line::line_fields,
};

line_fields! {
    /// The container of the line's process (from its cgroup path and the runtime's API) and
    /// its namespaces when they are not the host's.
    pub struct ContainerLine<'a> {
        container_id: &'a str,
        /// `docker`, `podman`, `containerd`, `cri-o`, `cri`, `lxc` or `systemd-nspawn`.
        container_runtime: &'a str,
        container_name: &'a str,
        container_image: &'a str,
        /// Kubernetes.
        pod_uid: &'a str,
        pod_name: &'a str,
        pod_namespace: &'a str,
        /// Namespace inode numbers, as `/proc/PID/ns/*` shows them.
        pid_ns: Option<u32>,
        mnt_ns: Option<u32>,
        net_ns: Option<u32>,
    }
}

impl<'a> ContainerLine<'a> {
    /// The fields of `process` (none for a host process, or for no process).
    pub fn of(process: Option<&'a Process>) -> ContainerLine<'a> {
        let c = process.and_then(|p| p.container.as_deref());
        let ns = process.and_then(|p| p.namespaces);
        let text = |f: fn(&Container) -> &Arc<str>| c.map_or("", |c| &**f(c));
        let id = |f: fn(Namespaces) -> u32| ns.map(f).filter(|&n| n != 0);
        ContainerLine {
            container_id: text(|c| &c.id),
            container_runtime: text(|c| &c.runtime),
            container_name: text(|c| &c.name),
            container_image: text(|c| &c.image),
            pod_uid: text(|c| &c.pod_uid),
            pod_name: text(|c| &c.pod_name),
            pod_namespace: text(|c| &c.pod_namespace),
            pid_ns: id(|n| n.pid),
            mnt_ns: id(|n| n.mnt),
            net_ns: id(|n| n.net),
        }
    }

    /// Whether the line says nothing of a container or namespaces.
    pub fn is_empty(&self) -> bool {
        *self == ContainerLine::of(None)
    }

    /// Puts what the line says into `process`.
    pub(crate) fn apply(&self, process: &mut Process) {
        let container = Container {
            id: self.container_id.into(),
            runtime: self.container_runtime.into(),
            name: self.container_name.into(),
            image: self.container_image.into(),
            pod_uid: self.pod_uid.into(),
            pod_name: self.pod_name.into(),
            pod_namespace: self.pod_namespace.into(),
        };
        process.container = (container != Container::default()).then(|| Arc::new(container));
        let ns = Namespaces {
            pid: self.pid_ns.unwrap_or(0),
            mnt: self.mnt_ns.unwrap_or(0),
            net: self.net_ns.unwrap_or(0),
        };
        process.namespaces = (ns != Namespaces::default()).then_some(ns);
    }
}
