//! The Wasm engine shared by all plugins: compilation (with a cache), the linker, and the
//! epoch ticker that enforces time budgets (`epoch`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::bindings::SpanProcessor;
use super::epoch::{EpochTicker, Running};
use super::state::PluginState;

pub type ContentHash = [u8; 32];

pub fn content_hash(bytes: &[u8]) -> ContentHash {
    Sha256::digest(bytes).into()
}

pub struct PluginEngine {
    engine: Engine,
    linker: Linker<PluginState>,
    /// Compiled components by content hash: an unchanged plugin is never compiled twice.
    compiled: Mutex<HashMap<ContentHash, Component>>,
    disk_cache: Option<PathBuf>,
    compilations: AtomicU64,
    ticker: EpochTicker,
}

impl PluginEngine {
    pub fn new(disk_cache: Option<PathBuf>) -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.parallel_compilation(false);
        // For profiling plugins with `perf`: names the JIT code in /tmp/perf-PID.map.
        if std::env::var_os("HTTP_AUTOINSTRUMENT_PLUGINS_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot create the Wasm engine")?;
        let mut linker = Linker::new(&engine);
        SpanProcessor::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("cannot link the plugin host interface")?;
        // Components from other languages import WASI; they get an empty WASI context unless
        // their settings grant something (see PluginState::new).
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(anyhow::Error::from)
            .context("cannot link WASI")?;
        let ticker = EpochTicker::start(&engine)?;
        Ok(PluginEngine {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
            disk_cache,
            compilations: AtomicU64::new(0),
            ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<PluginState> {
        &self.linker
    }

    /// Hold while calling into plugin code: time budgets only advance meanwhile.
    pub fn running_plugin_code(&self) -> Running<'_> {
        self.ticker.running()
    }

    /// How many times a component was compiled (cache misses), for tests and diagnostics.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Compiles `bytes`, or returns the cached result for the same content.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component> {
        let hash = content_hash(bytes);
        if let Some(c) = self
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
        {
            return Ok(c.clone());
        }
        let component = match self.load_from_disk(&hash) {
            Some(c) => c,
            None => {
                check_header(bytes)?;
                self.compilations.fetch_add(1, Ordering::Relaxed);
                let c = Component::new(&self.engine, bytes)?;
                self.save_to_disk(&hash, &c);
                c
            }
        };
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, component.clone());
        Ok(component)
    }

    fn disk_path(&self, hash: &ContentHash) -> Option<PathBuf> {
        let dir = self.disk_cache.as_ref()?;
        let mut name = String::with_capacity(80);
        for b in hash {
            name.push_str(&format!("{b:02x}"));
        }
        // Precompiled code is only valid for the same wasmtime version and settings.
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut h);
        let compat = std::hash::Hasher::finish(&h);
        Some(dir.join(format!("{name}-{compat:016x}.cwasm")))
    }

    fn load_from_disk(&self, hash: &ContentHash) -> Option<Component> {
        let path = self.disk_path(hash)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `save_to_disk` (Component::serialize) into the
        // agent's own cache directory, under a name that includes the engine's compatibility
        // hash; wasmtime still checks the header and version before using it.
        match unsafe { Component::deserialize_file(&self.engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached plugin code");
                None
            }
        }
    }

    fn save_to_disk(&self, hash: &ContentHash, component: &Component) {
        let Some(path) = self.disk_path(hash) else {
            return;
        };
        let result = (|| -> Result<()> {
            std::fs::create_dir_all(path.parent().unwrap_or(&path))?;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, component.serialize()?)?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache compiled plugin");
        }
    }
}

/// Clear errors for the common wrong inputs, before wasmtime's generic parse errors.
fn check_header(bytes: &[u8]) -> Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        anyhow::bail!(
            "not a WebAssembly file ({} bytes, no \\0asm header): truncated or not a plugin",
            bytes.len()
        );
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        anyhow::bail!(
            "this is a core WebAssembly module, not a component: \
             wrap it with `wasm-tools component new` (or build with the guest SDK)"
        );
    }
    Ok(())
}
