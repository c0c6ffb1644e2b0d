//! Nothing to use here: the programs are the `tunnelwatch-ebpf` binary (src/main.rs), built
//! for `bpfel-unknown-none` by userspace/build.rs. This library target exists so that
//! userspace can name the crate as a build dependency and be rebuilt when it changes.
#![no_std]
