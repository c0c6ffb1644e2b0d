//! The OCI image: built offline with umoci (Debian's) from an empty image, one layer holding
//! the sensor, its dynamic loader and shared libraries (found from the binary's own ELF
//! headers) and the commented configuration; its config names the architecture, the
//! entrypoint (`/usr/bin/tunnelwatch --config /etc/tunnelwatch/tunnelwatch.yml`) and the
//! image's labels. The OCI layout is then written as one tar file (an `oci-archive`), its
//! image named `tunnelwatch:VERSION` (what `podman load` calls it: `localhost/tunnelwatch:VERSION`).
//!
//! Run it privileged enough to load eBPF programs, with the host's PID namespace and the
//! host's cgroup v2 root (the README's "Install on a fleet"); the sensor says what is
//! missing otherwise (exit code 3).
//!
//! May use: shell, arch, package (the version).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, ensure};

use super::VERSION;
use crate::{
    arch::Arch,
    shell::{path_str, sh},
};

/// Builds the image of `arch` from the stripped `binary` into the archive `out`; `work` is a
/// scratch folder.
pub fn build(arch: Arch, binary: &Path, work: &Path, out: &Path) -> Result<PathBuf> {
    let layout = work.join("oci");
    let bundle = work.join("bundle");
    let image = format!("{}:{VERSION}", path_str(&layout)?);
    sh("umoci", &["init", "--layout", path_str(&layout)?])?;
    sh("umoci", &["new", "--image", &image])?;
    sh("umoci", &["unpack", "--image", &image, path_str(&bundle)?])?;
    let rootfs = bundle.join("rootfs");
    let put = |at: &str, from: &Path| -> Result<()> {
        let path = rootfs.join(at);
        fs::create_dir_all(path.parent().expect("a file in a folder"))?;
        fs::copy(from, &path).with_context(|| format!("cannot copy {}", from.display()))?;
        Ok(())
    };
    put("usr/bin/tunnelwatch", binary)?;
    for (at, from) in arch.runtime_files(binary)? {
        put(&at, &from)?;
    }
    put(
        "etc/tunnelwatch/tunnelwatch.yml",
        Path::new("deploy/tunnelwatch.yml"),
    )?;
    // Mount points the runtime and the sensor's mounts use.
    for d in ["proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    sh("umoci", &["repack", "--image", &image, path_str(&bundle)?])?;
    let label = |k: &str, v: &str| format!("{k}={v}");
    let labels = [
        label("org.opencontainers.image.title", "tunnelwatch"),
        label("org.opencontainers.image.version", VERSION),
        label(
            "org.opencontainers.image.source",
            "https://github.com/tunnelwatch/tunnelwatch",
        ),
        label("org.opencontainers.image.licenses", "MIT OR Apache-2.0"),
        label(
            "org.opencontainers.image.description",
            "tunnelwatch: reverse-proxy tunnel sensor (eBPF); run with the host's PID \
             namespace and cgroup v2 root (README: Install on a fleet)",
        ),
    ];
    let mut config = vec![
        "config",
        "--image",
        &image,
        "--os",
        "linux",
        "--architecture",
        arch.debian(),
        "--author",
        "tunnelwatch",
        "--config.entrypoint",
        "/usr/bin/tunnelwatch",
        "--config.cmd",
        "--config",
        "--config.cmd",
        "/etc/tunnelwatch/tunnelwatch.yml",
        "--config.workingdir",
        "/",
    ];
    for l in &labels {
        config.extend(["--config.label", l.as_str()]);
    }
    sh("umoci", &config)?;
    sh("umoci", &["gc", "--layout", path_str(&layout)?])?;
    name_image(&layout)?;
    if out.exists() {
        fs::remove_file(out)?;
    }
    // The layout's own files at the archive's top, as `podman save --format oci-archive`
    // writes them.
    sh(
        "tar",
        &[
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
            path_str(&layout)?,
            "-cf",
            path_str(out)?,
            ".",
        ],
    )?;
    Ok(out.to_path_buf())
}

/// Names the layout's one image `tunnelwatch:VERSION` (the `org.opencontainers.image.ref.name`
/// annotation of index.json, which umoci sets to the bare tag).
fn name_image(layout: &Path) -> Result<()> {
    let path = layout.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&fs::read(&path)?)?;
    let manifests = index["manifests"]
        .as_array_mut()
        .context("index.json without manifests")?;
    ensure!(
        manifests.len() == 1,
        "index.json lists {} images",
        manifests.len()
    );
    manifests[0]["annotations"]["org.opencontainers.image.ref.name"] =
        format!("tunnelwatch:{VERSION}").into();
    fs::write(&path, serde_json::to_vec(&index)?)?;
    Ok(())
}
