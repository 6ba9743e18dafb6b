//! Builds the eBPF programs (the workspace member ebpf/probes) with aya-build and embeds the
//! object in the agent.
//!
//! The probes need a BPF-capable Rust toolchain and bpf-linker, which stable Rust alone does not
//! have: a rustup nightly with rust-src, or Debian's rustc-web (what scripts/setup.sh installs).
//! Without either, the build stops with one message naming the setup command.
use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

const PROBES: &str = "http-autoinstrument-probes";
/// Debian's cross toolchain (`rustc-web`): a stable rustc that builds `core` for BPF when
/// RUSTC_BOOTSTRAP allows `-Z build-std`.
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    println!(
        "cargo:rerun-if-changed={}",
        root.join("ebpf/common/src").display()
    );
    println!("cargo:rerun-if-env-changed=HTTP_AUTOINSTRUMENT_PROBES");

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let out = out_dir.join(PROBES);
    // A prebuilt object (e.g. from a container build stage) can be supplied instead.
    if let Ok(prebuilt) = env::var("HTTP_AUTOINSTRUMENT_PROBES") {
        std::fs::copy(&prebuilt, &out)
            .unwrap_or_else(|e| panic!("HTTP_AUTOINSTRUMENT_PROBES={prebuilt}: {e}"));
        return;
    }
    if let Err(e) = build_probes(&root, &out_dir) {
        eprintln!(
            "\nerror: could not build the eBPF probes (ebpf/probes): {e:#}\n\
             They need Debian's rustc-web or a nightly with rust-src, and bpf-linker.\n\
             Run `scripts/setup.sh` once (installs everything), then `cargo build` again.\n"
        );
        std::process::exit(1);
    }
}

fn build_probes(root: &Path, out_dir: &Path) -> anyhow::Result<()> {
    let linker =
        find_in_path("bpf-linker").ok_or_else(|| anyhow::anyhow!("bpf-linker is not on PATH"))?;
    let toolchain = if nightly_has_rust_src() {
        aya_build::Toolchain::Nightly
    } else if Path::new(DEBIAN_CARGO).exists() && Path::new(DEBIAN_RUSTC).exists() {
        use_debian_toolchain(out_dir, &linker)?;
        // Not used: with rustup off PATH, aya-build runs the toolchain PATH has.
        aya_build::Toolchain::Nightly
    } else {
        anyhow::bail!("no BPF-capable Rust toolchain found");
    };
    // The probes' own release settings, for their build alone: LLVM sees the whole program at
    // link time, and BPF has no unwinding.
    env::set_var("CARGO_PROFILE_RELEASE_LTO", "true");
    env::set_var("CARGO_PROFILE_RELEASE_PANIC", "abort");
    let probes = root.join("ebpf/probes");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: PROBES,
            root_dir: probes.to_str().unwrap(),
            ..Default::default()
        }],
        toolchain,
    )
}

/// The rustup route, as on a usual developer machine.
fn nightly_has_rust_src() -> bool {
    let Ok(output) = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
    else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    output.status.success()
        && Path::new(&sysroot)
            .join("lib/rustlib/src/rust/library")
            .is_dir()
}

/// The Debian route: aya-build runs `cargo` and `rustc` from PATH when it finds no rustup, so
/// PATH becomes Debian's toolchain and bpf-linker only, and RUSTC_BOOTSTRAP lets that stable
/// compiler build `core` for BPF.
fn use_debian_toolchain(out_dir: &Path, linker: &Path) -> anyhow::Result<()> {
    let bin = out_dir.join("bpf-toolchain-bin");
    std::fs::create_dir_all(&bin)?;
    let link = bin.join("bpf-linker");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(linker, &link)?;
    let mut path = OsString::from(bin.as_os_str());
    path.push(":/usr/lib/llvm-22/bin:/usr/bin:/bin");
    env::set_var("PATH", path);
    env::set_var("RUSTC_BOOTSTRAP", "1");
    env::remove_var("RUSTUP_TOOLCHAIN");
    env::remove_var("CARGO");
    Ok(())
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let home_bin = env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(home_bin)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
