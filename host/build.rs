//! Builds the eBPF programs (ebpf/probes) and embeds the object in the agent.
//!
//! The probes need a BPF-capable Rust toolchain and bpf-linker, which stable Rust alone does not
//! have: without them the build stops with one message naming the setup command.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for dir in ["ebpf/probes/src", "ebpf/common/src"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("ebpf/probes/Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("scripts/build-ebpf.sh").display()
    );
    println!("cargo:rerun-if-env-changed=HTTP_AUTOINSTRUMENT_PROBES");

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("http-autoinstrument-probes");
    // A prebuilt object (e.g. from a container build stage) can be supplied instead.
    if let Ok(prebuilt) = std::env::var("HTTP_AUTOINSTRUMENT_PROBES") {
        std::fs::copy(&prebuilt, &out)
            .unwrap_or_else(|e| panic!("HTTP_AUTOINSTRUMENT_PROBES={prebuilt}: {e}"));
        return;
    }
    let target_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("bpf-target");
    let status = Command::new("bash")
        .arg(root.join("scripts/build-ebpf.sh"))
        .arg(&out)
        .env("EBPF_TARGET_DIR", &target_dir)
        .status();
    match status {
        Ok(s) if s.success() => {}
        _ => panic!(
            "\n\nerror: could not build the eBPF probes (ebpf/probes).\n\
             They need Debian's rustc-web or a nightly with rust-src, and bpf-linker.\n\
             Run `scripts/setup.sh` once (installs everything), then `cargo build` again.\n\n"
        ),
    }
}
