//! One container as the sensor knows it, shared by its processes: what its cgroup path says
//! (`container_path`), then what its runtime's API says once it has answered (`runtime_api`
//! fills it in, off the event path). Its own file so that `containers` (which makes slots) and
//! `runtime_api` (which fills them) both use it and neither uses the other's internals.
//!
//! Uses: `container_path` (this folder) and the engine's events.

use std::sync::{Arc, OnceLock};

use tunnelwatch_engine::event::Container;

use crate::linux::container_path::PathContainer;

/// One container, shared by its processes: what its cgroup path says, then what the
/// runtime's API says, once it has answered.
#[derive(Debug)]
pub struct Slot {
    base: Arc<Container>,
    named: OnceLock<Arc<Container>>,
}

impl Slot {
    pub(crate) fn new(c: PathContainer) -> Slot {
        Slot {
            base: Arc::new(Container {
                id: c.id.into(),
                runtime: c.runtime.into(),
                pod_uid: c.pod_uid.unwrap_or_default().into(),
                ..Container::default()
            }),
            named: OnceLock::new(),
        }
    }

    /// What is known of the container now.
    pub fn current(&self) -> Arc<Container> {
        self.named.get().unwrap_or(&self.base).clone()
    }

    /// The container as its cgroup path names it (id, runtime, pod uid).
    pub fn base(&self) -> &Container {
        &self.base
    }

    /// Fills in what the runtime's API said (the first answer stays).
    pub fn name(&self, named: Container) {
        let _ = self.named.set(Arc::new(named));
    }
}
