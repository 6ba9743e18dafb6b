//! Loading the plugins directory and watching it for changes (add, replace, remove).
//!
//! Every change triggers a rescan of the whole directory after a short quiet period: a file
//! still being written settles first, an atomic rename is one event, and the result does not
//! depend on which events the platform reports. Loading happens on the watcher thread; the
//! chain swaps in the new list only when every new version is ready.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Weak};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};

use super::chain::{Link, PluginChain};
use super::closed::ClosedPlugin;
use super::config::{settings_path, OnError, PluginSettings};
use super::engine::content_hash;
use super::instance::{LoadRequest, PluginVersion, VersionKey};

/// Quiet time after the last file event before the directory is rescanned.
const SETTLE: Duration = Duration::from_millis(100);

/// What one rescan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub loaded: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// File name and error of every version that failed to load (an older version, if any,
    /// keeps running).
    pub failed: Vec<(String, String)>,
}

/// Why a plugin file did not load, with what its settings say to do about it.
struct LoadFailure {
    error: anyhow::Error,
    on_error: OnError,
    /// The version that failed.
    key: VersionKey,
}

/// `*.wasm` files of `dir` in file-name order (hidden and temporary files ignored).
fn plugin_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the plugins directory {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".wasm") || !entry.path().is_file() {
            continue;
        }
        files.push((name, entry.path()));
    }
    files.sort();
    Ok(files)
}

impl PluginChain {
    /// Rescans the plugins directory and swaps in what changed. Safe to call at any time;
    /// the watcher calls it on every change.
    pub fn reload(&self) -> ReloadReport {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.rescans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut report = ReloadReport::default();
        let Some(dir) = self.config.dir.clone() else {
            return report;
        };
        let files = match plugin_files(&dir) {
            Ok(files) => files,
            Err(e) => {
                tracing::error!("{e:#}; keeping the current plugins");
                report
                    .failed
                    .push((dir.display().to_string(), format!("{e:#}")));
                return report;
            }
        };
        let current = self.plugins.load_full();
        let mut next = Vec::with_capacity(files.len());
        for (name, path) in &files {
            let old = current.iter().find(|p| &**p.name() == name.as_str());
            match self.load_file(name, path, old.map(|p| p.key())) {
                Ok(Some(version)) => {
                    tracing::info!(
                        plugin = name.as_str(),
                        imports = version.report.imports.len(),
                        "plugin loaded"
                    );
                    report.loaded.push(name.clone());
                    next.push(Arc::new(Link::Loaded(Box::new(version))));
                }
                Ok(None) => {
                    if let Some(old) = old {
                        report.unchanged.push(name.clone());
                        next.push(old.clone());
                    }
                }
                Err(failure) => {
                    let message = format!("{:#}", failure.error);
                    let running = old.filter(|p| matches!(***p, Link::Loaded(_)));
                    let consequence = match (running, failure.on_error) {
                        (Some(old), _) => {
                            next.push(old.clone());
                            "the previous version keeps running"
                        }
                        (None, OnError::Drop) => {
                            next.push(Arc::new(Link::Closed(ClosedPlugin::new(
                                name,
                                failure.key,
                                message.clone(),
                                self.stats_for(name),
                            ))));
                            "its on-error is drop, so every span is dropped until it loads"
                        }
                        (None, OnError::Pass) => "its on-error is pass, so spans go on without it",
                    };
                    tracing::error!(
                        plugin = name.as_str(),
                        "cannot load plugin {}: {message}; {consequence}",
                        path.display(),
                    );
                    report.failed.push((name.clone(), message));
                }
            }
        }
        for old in current.iter() {
            if !files.iter().any(|(n, _)| n.as_str() == &**old.name()) {
                tracing::info!(plugin = &**old.name(), "plugin removed");
                report.removed.push(old.name().to_string());
            }
        }
        let changed = next.len() != current.len()
            || next
                .iter()
                .zip(current.iter())
                .any(|(a, b)| !Arc::ptr_eq(a, b));
        if changed {
            self.plugins.store(Arc::new(next));
        }
        report
    }

    /// Loads `path` unless its content and settings equal `current`'s, or those of a version that
    /// already failed and is not running. `Ok(None)`: nothing to do.
    fn load_file(
        &self,
        name: &str,
        path: &Path,
        current: Option<VersionKey>,
    ) -> Result<Option<PluginVersion>, LoadFailure> {
        let settings_file = settings_path(path);
        let settings_bytes = std::fs::read(&settings_file).unwrap_or_default();
        // Read first: the policy of a plugin that cannot load. Settings that cannot be read say
        // nothing, so the default holds: closed.
        let settings = PluginSettings::load(&settings_file);
        let on_error = settings
            .as_ref()
            .map(|(s, _)| s.on_error)
            .unwrap_or_default();
        let wasm = match std::fs::read(path) {
            Ok(wasm) => wasm,
            Err(e) => {
                return Err(LoadFailure {
                    error: anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
                    on_error,
                    key: (content_hash(&[]), content_hash(&settings_bytes)),
                })
            }
        };
        let key = (content_hash(&wasm), content_hash(&settings_bytes));
        let fail = |error: anyhow::Error| LoadFailure {
            error,
            on_error,
            key,
        };
        if current == Some(key) {
            return Ok(None);
        }
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.get(name) == Some(&key) {
            if current.is_none() {
                return Ok(None);
            }
            return Err(fail(anyhow::anyhow!(
                "unchanged since it last failed to load"
            )));
        }
        let stats = self.stats_for(name);
        let result = settings.and_then(|(settings, _)| {
            PluginVersion::load(
                &self.engine,
                &self.config,
                LoadRequest {
                    name,
                    wasm: &wasm,
                    settings,
                    key,
                    stats: stats.clone(),
                },
            )
        });
        match result {
            Ok(version) => {
                failed.remove(name);
                stats.record_load(true, None);
                Ok(Some(version))
            }
            Err(e) => {
                failed.insert(name.to_string(), key);
                stats.record_load(false, Some(&format!("{e:#}")));
                Err(fail(e))
            }
        }
    }

    /// Watches the plugins directory and reloads on every change until the returned watcher
    /// is dropped.
    pub fn watch(self: &Arc<Self>) -> Result<PluginWatcher> {
        let dir = self
            .config
            .dir
            .clone()
            .context("no plugins directory configured (plugins.dir)")?;
        let (tx, rx) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| changes_the_directory(&e.kind)) {
                    let _ = tx.send(());
                }
            })
            .context("cannot create a file watcher")?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch the plugins directory {}", dir.display()))?;
        let chain = Arc::downgrade(self);
        thread::Builder::new()
            .name("plugin-reload".into())
            .spawn(move || reload_on_events(chain, rx))
            .context("cannot start the plugin reload thread")?;
        Ok(PluginWatcher { _watcher: watcher })
    }
}

/// Whether an event can change what the directory holds. Opening a file changes nothing, and a
/// rescan opens the directory and every plugin in it: reacting to opens made each rescan trigger
/// the next, ten times a second for as long as the agent ran.
fn changes_the_directory(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn reload_on_events(chain: Weak<PluginChain>, events: mpsc::Receiver<()>) {
    while events.recv().is_ok() {
        // Let a burst of events (a copy in progress, rename pairs) settle.
        loop {
            match events.recv_timeout(SETTLE) {
                Ok(()) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        let Some(chain) = chain.upgrade() else { return };
        chain.reload();
    }
}

/// Keeps the plugins directory watched; dropping it stops the watching.
pub struct PluginWatcher {
    _watcher: notify::RecommendedWatcher,
}
