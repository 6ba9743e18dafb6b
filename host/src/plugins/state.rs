//! What a plugin's store holds: its name, memory cap, WASI context, log limiter; and the
//! implementation of the `host` interface.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{FsPerms, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{http_autoinstrument::plugin::host, types, Level};
use super::config::Grants;

/// Log lines a plugin may write per second; the rest are counted and dropped.
const LOG_LINES_PER_SECOND: u32 = 50;
/// Longest log line kept from a plugin.
const MAX_LOG_LINE: usize = 1024;
/// Table elements a plugin may have over all its tables (function tables; a few thousand is
/// plenty).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

pub struct PluginState {
    pub name: Arc<str>,
    pub memory: MemoryCap,
    wasi: WasiCtx,
    table: ResourceTable,
    log_window: Instant,
    log_lines: u32,
    pub logs_suppressed: u64,
}

impl PluginState {
    pub fn new(name: Arc<str>, memory_cap_bytes: usize, grants: &Grants) -> Result<Self> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for var in &grants.env {
            if let Ok(value) = std::env::var(var) {
                wasi.env(var, value);
            }
        }
        for dir in &grants.read_dirs {
            let guest = dir.to_string_lossy();
            wasi.preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
                .map_err(|e| anyhow::anyhow!("cannot grant directory {}: {e}", dir.display()))?;
        }
        if grants.stdio {
            wasi.inherit_stdout().inherit_stderr();
        }
        Ok(PluginState {
            name,
            memory: MemoryCap::new(memory_cap_bytes),
            wasi: wasi.build(),
            table: ResourceTable::new(),
            log_window: Instant::now(),
            log_lines: 0,
            logs_suppressed: 0,
        })
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for PluginState {}

impl host::Host for PluginState {
    fn log(&mut self, level: Level, message: String) {
        if self.log_window.elapsed().as_secs() >= 1 {
            self.log_window = Instant::now();
            self.log_lines = 0;
        }
        self.log_lines += 1;
        if self.log_lines > LOG_LINES_PER_SECOND {
            self.logs_suppressed += 1;
            return;
        }
        let mut end = message.len().min(MAX_LOG_LINE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let message = &message[..end];
        let plugin = &*self.name;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn now_unix_nanos(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }

    fn random_u64(&mut self) -> u64 {
        rand::random()
    }
}

/// Refuses memory growth beyond the cap and remembers that it did, so a resulting trap is
/// reported as out-of-memory rather than a generic trap. The cap is on the instance as a whole:
/// a component may have several linear memories (several core modules, or multi-memory), and
/// each one under the cap could still add up to many times it.
pub struct MemoryCap {
    cap: usize,
    /// Bytes of every linear memory of the instance so far (memories never shrink).
    memory_bytes: usize,
    /// Elements of every table of the instance so far.
    table_elements: usize,
    pub exceeded: bool,
}

impl MemoryCap {
    fn new(cap: usize) -> Self {
        MemoryCap {
            cap,
            memory_bytes: 0,
            table_elements: 0,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_bytes
            .saturating_add(desired.saturating_sub(current));
        if total > self.cap {
            self.exceeded = true;
            return Ok(false);
        }
        self.memory_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .table_elements
            .saturating_add(desired.saturating_sub(current));
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_memory_cap_is_on_all_memories_together() {
        let mut cap = MemoryCap::new(64 * MIB);
        assert!(cap.memory_growing(0, 40 * MIB, None).unwrap());
        assert!(cap.memory_growing(40 * MIB, 48 * MIB, None).unwrap());
        // A second memory: alone under the cap, together over it.
        assert!(!cap.memory_growing(0, 20 * MIB, None).unwrap());
        assert!(cap.exceeded);
        assert!(cap.memory_growing(0, 16 * MIB, None).unwrap());
    }

    #[test]
    fn table_elements_are_capped_over_all_tables() {
        let mut cap = MemoryCap::new(64 * MIB);
        assert!(cap.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        assert!(!cap.table_growing(0, MAX_TABLE_ELEMENTS, None).unwrap());
        assert!(cap.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
    }
}
