//! The kernel packages of the matrix: Debian's `linux-image-*-cloud-ARCH` images (amd64, and
//! arm64 for its row) found, downloaded and unpacked with apt-get under a private
//! configuration (sources, lists, cache and state under `target/kernels/NAME/apt/`) that names
//! only deb.debian.org, so that the machine's own apt configuration is neither used nor
//! changed. The newest image of a series in its suites is picked and cached in
//! `target/kernels/NAME/` (`kernel.txt` says which). The same way, the arm64 guest's busybox
//! (busybox-static of that architecture) is downloaded once ([`fetch_file`]).
//!
//! May use: shell.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::shell::{output, path_str, sh};

/// The keyring that signs every suite (debian-archive-keyring).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A kernel image ready to boot.
pub struct Image {
    pub package: String,
    pub version: String,
    /// `uname -r`, from the name of the image file.
    pub release: String,
    /// Whether the package's config has CONFIG_DEBUG_INFO_BTF=y.
    pub btf: bool,
    pub vmlinuz: PathBuf,
}

/// Finds, downloads and unpacks the newest image of `series` (`linux-image-{series}.*`) for
/// Debian architecture `arch` in `suites` ((archive, suite) pairs on deb.debian.org) into
/// `dir`, or reuses the one there (unless `refresh`).
pub fn fetch(
    series: &str,
    arch: &str,
    suites: &[(&str, &str)],
    dir: &Path,
    refresh: bool,
) -> Result<Image> {
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
    let apt = Apt::new(&dir.join("apt"), suites, arch)?;
    apt.update()?;
    let candidate = apt.newest_image(series)?.with_context(|| {
        format!(
            "no linux-image-{series}.*-cloud-{arch} package in {}",
            suites
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

/// The file `path` of Debian package `package` (architecture `arch`, from `suites`), downloaded
/// and unpacked once under `dir` (kept there: later calls read it from there).
pub fn fetch_file(
    package: &str,
    path: &str,
    arch: &str,
    suites: &[(&str, &str)],
    dir: &Path,
) -> Result<PathBuf> {
    let file = dir.join("unpacked").join(path);
    if file.is_file() {
        return Ok(file);
    }
    let apt = Apt::new(&dir.join("apt"), suites, arch)?;
    apt.update()?;
    let debs = dir.join("debs");
    if debs.exists() {
        fs::remove_dir_all(&debs)?;
    }
    fs::create_dir_all(&debs)?;
    let status = Command::new("apt-get")
        .args(apt.args(&["-q", "download", &format!("{package}:{arch}")]))
        .current_dir(&debs)
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get download {package}:{arch} failed ({status})");
    }
    for deb in fs::read_dir(&debs)? {
        let deb = deb?.path();
        sh(
            "dpkg-deb",
            &["-x", path_str(&deb)?, path_str(&dir.join("unpacked"))?],
        )?;
    }
    if !file.is_file() {
        bail!("{package}:{arch} has no /{path}");
    }
    Ok(file)
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
    /// Debian's name of the architecture (amd64, arm64).
    arch: String,
}

impl Apt {
    fn new(dir: &Path, suites: &[(&str, &str)], arch: &str) -> Result<Self> {
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
            ("APT::Architecture", arch.into()),
            ("APT::Architectures", arch.into()),
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
        Ok(Self {
            options,
            arch: arch.to_string(),
        })
    }

    fn args<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args: Vec<&str> = self.options.iter().map(String::as_str).collect();
        args.extend(rest);
        args
    }

    fn update(&self) -> Result<()> {
        sh("apt-get", &self.args(&["-q", "update"]))
    }

    /// The newest `linux-image-{series}.*-cloud-ARCH` image (not a meta-package).
    fn newest_image(&self, series: &str) -> Result<Option<Candidate>> {
        let suffix = format!("-cloud-{}", self.arch);
        let names = output(
            "apt-cache",
            &self.args(&[
                "search",
                "--names-only",
                &format!("^linux-image-.*{suffix}$"),
            ]),
        )
        .context("apt-cache search failed")?;
        let prefix = format!("linux-image-{series}.");
        let names: Vec<&str> = names
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&prefix) && n.ends_with(&suffix))
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
