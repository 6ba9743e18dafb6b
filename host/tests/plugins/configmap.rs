//! Hot reload through a Kubernetes ConfigMap volume. The kubelet never edits files in place: it
//! writes a new timestamped directory, points a `..data_tmp` symlink at it, renames that over
//! `..data`, and each visible `NAME` is a symlink to `..data/NAME`. This test builds that layout
//! and performs the same swaps, so the agent sees exactly what a ConfigMap update does.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use http_autoinstrument::plugins::{PluginChain, PluginsConfig};
use http_autoinstrument::span::Span;

use crate::support::*;

/// A ConfigMap volume as the kubelet lays it out.
struct ConfigMapVolume {
    dir: tempfile::TempDir,
    generation: u32,
}

impl ConfigMapVolume {
    fn new() -> Self {
        ConfigMapVolume {
            dir: tempfile::tempdir().unwrap(),
            generation: 0,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Publishes a new version holding exactly `files`, the way the kubelet's atomic writer does.
    fn publish(&mut self, files: &[(&str, &[u8])]) {
        self.generation += 1;
        let version = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.generation,
            1000 + self.generation
        );
        let version_dir = self.path().join(&version);
        std::fs::create_dir(&version_dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(version_dir.join(name), bytes).unwrap();
        }
        let tmp = self.path().join("..data_tmp");
        symlink(&version, &tmp).unwrap();
        let old = std::fs::read_link(self.path().join("..data")).ok();
        std::fs::rename(&tmp, self.path().join("..data")).unwrap();
        // Visible names: a symlink per key, created once, removed when the key goes away.
        for (name, _) in files {
            let link = self.path().join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(name), &link).unwrap();
            }
        }
        for entry in std::fs::read_dir(self.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !files.iter().any(|(n, _)| *n == name) {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(self.path().join(old)).unwrap();
        }
    }
}

fn wait_for(chain: &PluginChain, what: &str, seen: impl Fn(&[Span]) -> bool) {
    let started = Instant::now();
    let r = resource();
    while started.elapsed() < Duration::from_secs(120) {
        let batch = vec![
            http_span(&r, "/healthz", None),
            http_span(&r, "/users/7", None),
        ];
        if seen(&chain.process(batch)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "timed out waiting for: {what}; plugins: {:?}",
        chain.stats()
    );
}

#[test]
fn configmap_symlink_swaps_add_replace_and_remove_plugins() {
    let Some([filter, enrich]) = built_all(["filter", "enrich"]) else {
        return;
    };
    let (filter, enrich) = (
        std::fs::read(filter).unwrap(),
        std::fs::read(enrich).unwrap(),
    );
    let mut volume = ConfigMapVolume::new();
    volume.publish(&[("10-filter.wasm", &filter)]);
    let chain = PluginChain::new(PluginsConfig {
        dir: Some(volume.path().to_owned()),
        ..PluginsConfig::default()
    })
    .unwrap();
    let _watcher = chain.watch().unwrap();
    assert_eq!(
        chain.plugin_names(),
        ["10-filter.wasm"],
        "loaded through the symlinks"
    );
    wait_for(&chain, "health checks filtered", |out| out.len() == 1);

    // An update adds a plugin and its settings: only `..data` changes in the watched directory.
    let settings = b"[settings]\nattributes = { \"deployment.environment\" = \"prod\" }\n";
    volume.publish(&[
        ("10-filter.wasm", &filter),
        ("30-enrich.wasm", &enrich),
        ("30-enrich.toml", settings),
    ]);
    wait_for(&chain, "enrich added", |out| {
        out.len() == 1 && str_attr(&out[0], "deployment.environment") == Some("prod")
    });

    // An update that only changes a settings file behind an existing symlink.
    let settings = b"[settings]\nattributes = { \"deployment.environment\" = \"staging\" }\n";
    volume.publish(&[
        ("10-filter.wasm", &filter),
        ("30-enrich.wasm", &enrich),
        ("30-enrich.toml", settings),
    ]);
    wait_for(&chain, "new settings behind the same symlink", |out| {
        out.len() == 1 && str_attr(&out[0], "deployment.environment") == Some("staging")
    });

    // An update that removes the filter.
    volume.publish(&[("30-enrich.wasm", &enrich), ("30-enrich.toml", settings)]);
    wait_for(&chain, "filter removed", |out| out.len() == 2);
    assert_eq!(chain.plugin_names(), ["30-enrich.wasm"]);
    assert_eq!(chain.plugin_stats("30-enrich.wasm").unwrap().loads, 2);
}
