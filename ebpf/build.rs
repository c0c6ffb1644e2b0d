//! Rebuild the programs when bpf-linker changes: the object depends on its LLVM.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
