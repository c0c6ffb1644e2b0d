//! Names of containers from their runtime's API, looked up once per container on a thread of
//! its own, so that the event loop never waits: a container's [`Slot`] is handed over when it
//! is first seen, and the answer fills it in; events after that carry the names, an alert
//! before it carries the id alone.
//!
//! - Docker and Podman: the Docker Engine API (Podman's service serves it), through
//!   `bollard`, over the runtime's unix socket: `GET /containers/ID/json` gives the name, the
//!   image as the container was created from it, and Kubernetes labels (cri-dockerd).
//! - containerd and CRI-O: the Kubernetes CRI (`RuntimeService.ContainerStatus`), through
//!   `k8s-cri`'s generated client (tonic) over the CRI socket: the container's name, image
//!   and its pod's name, namespace and uid (the `io.kubernetes.pod.*` labels).
//!
//! Each lookup has [`TIMEOUT`] in all: a socket that hangs costs the lookup thread that long
//! per container and costs the event loop nothing; a socket that lies (an error, a body that
//! is not the API's) leaves the container with its id. Requests wait in a bounded queue; one
//! that does not fit is dropped and counted. What an answer says is cut to [`TEXT_MAX`]
//! bytes per field.
//!
//! Uses: `container_slot` (the slots it fills) and the engine's events.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    time::Duration,
};

use tunnelwatch_engine::event::Container;

use crate::linux::container_slot::Slot;

/// The most one lookup may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Lookups waiting at most.
const QUEUE: usize = 256;

/// Longest name, image or pod field kept (bytes).
pub const TEXT_MAX: usize = 256;

/// Where the runtimes' API sockets are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sockets {
    /// Docker Engine API sockets of Docker.
    pub docker: Vec<PathBuf>,
    /// Docker Engine API sockets of Podman's service.
    pub podman: Vec<PathBuf>,
    /// CRI sockets (containerd, CRI-O).
    pub cri: Vec<PathBuf>,
}

impl Default for Sockets {
    /// The runtimes' default (rootful) sockets.
    fn default() -> Self {
        let paths = |p: &[&str]| p.iter().map(PathBuf::from).collect();
        Sockets {
            docker: paths(&["/run/docker.sock", "/var/run/docker.sock"]),
            podman: paths(&["/run/podman/podman.sock"]),
            cri: paths(&[
                "/run/containerd/containerd.sock",
                "/run/crio/crio.sock",
                "/run/k3s/containerd/containerd.sock",
            ]),
        }
    }
}

/// What the lookups did, for the stats line.
#[derive(Debug, Default)]
pub struct LookupCounters {
    /// Containers asked about.
    pub asked: AtomicU64,
    /// Containers named.
    pub named: AtomicU64,
    /// Lookups that failed, timed out, or found no socket.
    pub failed: AtomicU64,
    /// Requests dropped: the queue was full.
    pub dropped: AtomicU64,
}

/// The handle the resolver asks through.
pub struct Lookups {
    tx: SyncSender<Arc<Slot>>,
    pub counters: Arc<LookupCounters>,
}

impl Lookups {
    /// Starts the lookup thread.
    pub fn start(sockets: Sockets) -> std::io::Result<Lookups> {
        let (tx, rx) = sync_channel(QUEUE);
        let counters = Arc::new(LookupCounters::default());
        let c = counters.clone();
        std::thread::Builder::new()
            .name("container-names".into())
            .spawn(move || serve(rx, &sockets, &c))?;
        Ok(Lookups { tx, counters })
    }

    /// Asks for the names of `slot`'s container (never waits).
    pub fn ask(&self, slot: Arc<Slot>) {
        let runtime = &*slot.base().runtime;
        if matches!(runtime, "lxc" | "systemd-nspawn") {
            // No API: their id is their name.
            let base = slot.base().clone();
            slot.name(Container {
                name: base.id.clone(),
                ..base
            });
            return;
        }
        self.counters.asked.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(slot) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The lookup thread: one request at a time, each within [`TIMEOUT`].
fn serve(rx: Receiver<Arc<Slot>>, sockets: &Sockets, counters: &LookupCounters) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            log::warn!("container names: cannot start the lookup thread's runtime: {e}");
            return;
        }
    };
    while let Ok(slot) = rx.recv() {
        let base = slot.base().clone();
        let answer = runtime.block_on(async {
            tokio::time::timeout(TIMEOUT, lookup(&base, sockets))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {TIMEOUT:?}")))
        });
        match answer {
            Ok(named) => {
                counters.named.fetch_add(1, Ordering::Relaxed);
                slot.name(named);
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                log::debug!("container {} ({}): no names: {e}", base.id, base.runtime);
            }
        }
    }
}

/// The names of `c` from the first socket of its runtime that answers.
async fn lookup(c: &Container, sockets: &Sockets) -> Result<Container, String> {
    let (docker_api, candidates): (bool, &[PathBuf]) = match &*c.runtime {
        "docker" => (true, &sockets.docker),
        "podman" => (true, &sockets.podman),
        _ => (false, &sockets.cri),
    };
    let mut why = String::from("no API socket");
    for socket in candidates.iter().filter(|p| p.exists()) {
        let answer = if docker_api {
            docker(c, socket).await
        } else {
            cri(c, socket).await
        };
        match answer {
            Ok(named) => return Ok(named),
            Err(e) => why = format!("{}: {e}", socket.display()),
        }
    }
    Err(why)
}

/// Cut to [`TEXT_MAX`] bytes (at a character boundary).
fn text(s: &str) -> Arc<str> {
    let mut end = s.len().min(TEXT_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].into()
}

/// The Kubernetes pod fields of a container's labels.
fn with_pod_labels(mut c: Container, labels: Option<&HashMap<String, String>>) -> Container {
    if let Some(l) = labels {
        let get = |k: &str| l.get(k).map(|v| text(v));
        c.pod_name = get("io.kubernetes.pod.name").unwrap_or(c.pod_name);
        c.pod_namespace = get("io.kubernetes.pod.namespace").unwrap_or(c.pod_namespace);
        if c.pod_uid.is_empty() {
            c.pod_uid = get("io.kubernetes.pod.uid").unwrap_or_default();
        }
    }
    c
}

/// Docker Engine API: `GET /containers/ID/json`.
async fn docker(c: &Container, socket: &Path) -> Result<Container, String> {
    // API 1.41: served by Docker 20.10 on and by Podman 3 on.
    let version = bollard::ClientVersion {
        major_version: 1,
        minor_version: 41,
    };
    let client =
        bollard::Docker::connect_with_unix(&socket.to_string_lossy(), TIMEOUT.as_secs(), &version)
            .map_err(|e| e.to_string())?;
    let info = client
        .inspect_container(&c.id, None)
        .await
        .map_err(|e| e.to_string())?;
    let config = info.config.as_ref();
    let image = config
        .and_then(|cfg| cfg.image.as_deref())
        .or(info.image.as_deref())
        .unwrap_or_default();
    let named = Container {
        name: text(
            info.name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/'),
        ),
        image: text(image),
        ..c.clone()
    };
    Ok(with_pod_labels(
        named,
        config.and_then(|cfg| cfg.labels.as_ref()),
    ))
}

/// CRI: `RuntimeService.ContainerStatus`.
async fn cri(c: &Container, socket: &Path) -> Result<Container, String> {
    use k8s_cri::v1::{ContainerStatusRequest, runtime_service_client::RuntimeServiceClient};

    let path = socket.to_path_buf();
    // The URI is a placeholder: the connector dials the socket.
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| e.to_string())?;
    let status = RuntimeServiceClient::new(channel)
        .container_status(ContainerStatusRequest {
            container_id: c.id.to_string(),
            verbose: false,
        })
        .await
        .map_err(|e| e.message().to_owned())?
        .into_inner()
        .status
        .ok_or("no status in the answer")?;
    let named = Container {
        name: text(status.metadata.as_ref().map_or("", |m| m.name.as_str())),
        image: text(status.image.as_ref().map_or("", |i| i.image.as_str())),
        ..c.clone()
    };
    Ok(with_pod_labels(named, Some(&status.labels)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_at_a_character() {
        let long = "é".repeat(200);
        assert_eq!(text(&long).len(), 256);
        assert_eq!(&*text("web"), "web");
    }

    #[test]
    fn pod_labels() {
        let labels: HashMap<String, String> = [
            ("io.kubernetes.pod.name", "api-7d9f"),
            ("io.kubernetes.pod.namespace", "prod"),
            (
                "io.kubernetes.pod.uid",
                "74c13223-5a00-11e9-b385-42010a80018d",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let c = with_pod_labels(Container::default(), Some(&labels));
        assert_eq!(
            (&*c.pod_name, &*c.pod_namespace, &*c.pod_uid),
            ("api-7d9f", "prod", "74c13223-5a00-11e9-b385-42010a80018d")
        );
    }
}
