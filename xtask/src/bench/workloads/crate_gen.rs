//! The "mixed realistic load": a small generated crate with no dependencies, built from clean
//! with `cargo build --offline` (rustc, cc, the linker: many execs, files, a little of
//! everything): its sources, written once per run.
//!
//! May use: the standard library, anyhow.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::Result;

/// Modules in the generated crate, and functions per module.
const MODULES: usize = 6;
const FUNCTIONS: usize = 24;

/// Writes the crate at `dir` (Cargo.toml, src/main.rs, src/mN.rs).
pub fn write(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir.join("src"))?;
    fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"tw-bench-load\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\n\n[workspace]\n",
    )?;
    let mut main = String::new();
    for m in 0..MODULES {
        writeln!(main, "mod m{m};")?;
    }
    main.push_str("\nfn main() {\n    let mut total = 0u64;\n");
    for m in 0..MODULES {
        writeln!(main, "    total = total.wrapping_add(m{m}::run(total));")?;
    }
    main.push_str("    println!(\"{total}\");\n}\n");
    fs::write(dir.join("src/main.rs"), main)?;
    for m in 0..MODULES {
        let mut src = String::new();
        writeln!(
            src,
            "use std::collections::BTreeMap;\n\n\
             #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]\n\
             pub struct Item<T> {{ pub key: String, pub value: T, pub tags: Vec<String> }}\n\n\
             pub trait Score {{ fn score(&self) -> u64; }}\n\
             impl Score for u64 {{ fn score(&self) -> u64 {{ *self }} }}\n\
             impl<T: Score> Score for Item<T> {{ fn score(&self) -> u64 {{ \
             self.value.score() + self.key.len() as u64 + self.tags.len() as u64 }} }}\n"
        )?;
        for f in 0..FUNCTIONS {
            writeln!(
                src,
                "pub fn f{f}<T: Score + Clone + std::fmt::Debug>(items: &[Item<T>], seed: u64) -> u64 {{\n\
                 \x20   let mut map: BTreeMap<String, u64> = BTreeMap::new();\n\
                 \x20   for (i, it) in items.iter().enumerate() {{\n\
                 \x20       let k = format!(\"{{}}-{{}}-{f}\", it.key, i % {m_plus});\n\
                 \x20       *map.entry(k).or_default() += it.score().wrapping_mul(seed | 1);\n\
                 \x20   }}\n\
                 \x20   map.values().copied().filter(|v| v % {f_plus} != 0).fold(seed, |a, v| a.rotate_left(5) ^ v)\n\
                 }}\n",
                m_plus = m + 2,
                f_plus = f + 3,
            )?;
        }
        src.push_str(
            "pub fn run(seed: u64) -> u64 {\n    let items: Vec<Item<u64>> = (0..64u64)\n        \
             .map(|i| Item { key: format!(\"k{i}\"), value: i ^ seed, tags: vec![i.to_string()] })\n        \
             .collect();\n    let mut acc = seed;\n",
        );
        for f in 0..FUNCTIONS {
            writeln!(src, "    acc ^= f{f}(&items, acc);")?;
        }
        src.push_str("    acc\n}\n");
        fs::write(dir.join(format!("src/m{m}.rs")), src)?;
    }
    Ok(())
}
