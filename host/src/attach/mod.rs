//! Loading the eBPF object and attaching its uprobes to traced processes.
//!
//! One object is loaded once; its programs are attached per process (scoped to that pid, at the
//! file offsets `inspect` found), and the process's struct offsets go into the `OFFSETS` map
//! (and the process's slot of `OFFSETS_TABLE` when it is free) first, so a probe never fires
//! without knowing where to read.
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};
use http_autoinstrument_common::{
    counter, GoOffsets, GoroutineKey, HttpServerEvent, InFlightSlot, OffsetsSlot, ABSENT,
    EVENT_RECORD_BYTES, IN_FLIGHT_SLOTS,
};

use crate::inspect::GoBinary;

mod table_slots;
use table_slots::TableSlots;

static PROBES_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/http-autoinstrument-probes"));

/// Which programs go on ServeHTTP's entry and on the request's end (`inspect::RequestEnd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeMode {
    /// The real probes: spans for every request.
    Full,
    /// A bare counting probe pair on the same offsets, and no spans: the floor that overhead
    /// measurements compare the full probes with.
    Count,
    /// As `count`, with the request end on ServeHTTP's RETs, where the kernel single-steps every
    /// hit (what `inspect::RequestEnd` avoids): only for measuring what that placement saves.
    CountOnRets,
    /// The real probes without reading the traced process: the clock, the in-flight table and
    /// the ring buffer, and spans with no HTTP fields. Only for measuring what reading the
    /// request and the response costs (the full probes' run time minus this one's).
    Bookkeeping,
}

impl ProbeMode {
    fn programs(self) -> (&'static str, &'static str) {
        match self {
            ProbeMode::Full | ProbeMode::Bookkeeping => ("serve_http_entry", "request_end"),
            ProbeMode::Count | ProbeMode::CountOnRets => ("count_entry", "count_request_end"),
        }
    }
}

/// Kernel-side counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub entry_hits: u64,
    pub return_hits: u64,
    pub events_submitted: u64,
    pub events_lost: u64,
    pub returns_without_entry: u64,
    pub unconfigured_hits: u64,
    pub panics: u64,
    pub ends_after_panic_reported: u64,
}

struct Attached {
    links: Vec<(&'static str, UProbeLinkId)>,
}

pub struct Probes {
    ebpf: Ebpf,
    mode: ProbeMode,
    offsets: BpfHashMap<MapData, u32, GoOffsets>,
    offsets_table: Array<MapData, OffsetsSlot>,
    table_slots: TableSlots,
    panicked: BpfHashMap<MapData, GoroutineKey, HttpServerEvent>,
    in_flight: Array<MapData, InFlightSlot>,
    counters: PerCpuArray<MapData, u64>,
    attached: HashMap<u32, Attached>,
}

/// Raises RLIMIT_MEMLOCK for kernels that still charge BPF maps to it (before 5.11).
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct; failure only matters on old kernels.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK; fine on kernels >= 5.11");
    }
}

/// Size of the events ring buffer: ~2,800 events, over 250 ms of 10,000 requests/s, and room
/// for 2,300 more after the wakeup at 512 waiting events. Its pages count twice in the agent's resident memory (the
/// kernel maps the data area twice), so it is kept to what that needs.
pub const EVENTS_RING_BYTES: u32 = 4 * 1024 * 1024;

/// The most waiting events that may be asked to wake the agent (`capture.wakeup_events`): half
/// the ring buffer, so the other half takes what arrives while the agent wakes up and drains.
pub const MAX_WAKEUP_EVENTS: u64 = EVENTS_RING_BYTES as u64 / EVENT_RECORD_BYTES / 2;

impl Probes {
    /// Loads the eBPF object and its programs into the kernel.
    ///
    /// `wakeup_bytes`: unread ring-buffer bytes at which a probe wakes the agent.
    pub fn load(mode: ProbeMode, wakeup_bytes: u64) -> Result<Self> {
        raise_memlock_limit();
        let mut ebpf = EbpfLoader::new()
            .override_global("WAKEUP_BYTES", &wakeup_bytes, true)
            .override_global("READ_REQUEST", &u8::from(mode != ProbeMode::Bookkeeping), true)
            .map_max_entries("EVENTS", EVENTS_RING_BYTES)
            .load(PROBES_OBJECT)
            .context(
                "loading the eBPF probes failed: the agent needs root or CAP_BPF + CAP_PERFMON \
                 (+ CAP_SYS_RESOURCE on kernels < 5.11) and a kernel with BPF ring buffers (>= 5.8)",
            )?;
        let (entry, ret) = mode.programs();
        for name in [entry, ret, "gopanic_entry"] {
            let program: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("eBPF object has no program {name}"))?
                .try_into()?;
            program
                .load()
                .with_context(|| format!("the kernel rejected eBPF program {name}"))?;
        }
        let offsets = BpfHashMap::try_from(ebpf.take_map("OFFSETS").context("map OFFSETS")?)?;
        let offsets_table = Array::try_from(
            ebpf.take_map("OFFSETS_TABLE")
                .context("map OFFSETS_TABLE")?,
        )?;
        let panicked = BpfHashMap::try_from(ebpf.take_map("PANICKED").context("map PANICKED")?)?;
        let counters = PerCpuArray::try_from(ebpf.take_map("COUNTERS").context("map COUNTERS")?)?;
        let in_flight = Array::try_from(ebpf.take_map("IN_FLIGHT").context("map IN_FLIGHT")?)?;
        Ok(Probes {
            ebpf,
            mode,
            offsets,
            offsets_table,
            table_slots: TableSlots::default(),
            panicked,
            in_flight,
            counters,
            attached: HashMap::new(),
        })
    }

    /// The ring buffer of request events; can be taken once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .context("the events ring buffer was already taken")?;
        Ok(RingBuf::try_from(map)?)
    }

    pub fn is_attached(&self, pid: u32) -> bool {
        self.attached.contains_key(&pid)
    }

    /// Uprobe links currently attached, over every process.
    pub fn link_count(&self) -> usize {
        self.attached.values().map(|a| a.links.len()).sum()
    }

    pub fn attached_pids(&self) -> Vec<u32> {
        self.attached.keys().copied().collect()
    }

    /// Attaches the probes to process `pid`, which runs `binary`. `load_bias` is what the
    /// process added to the binary's link-time addresses (0 unless it is a PIE).
    pub fn attach(&mut self, pid: u32, binary: &GoBinary, load_bias: u64) -> Result<()> {
        let target = PathBuf::from(format!("/proc/{pid}/exe"));
        let offsets = relocate(binary.offsets, load_bias);
        self.offsets
            .insert(pid, offsets, 0)
            .with_context(|| format!("storing offsets of pid {pid}"))?;
        if let Err(e) = self.claim_table_slot(pid, offsets) {
            self.forget_offsets(pid);
            return Err(e);
        }
        let scope = UProbeScope::OneProcess(
            NonZeroU32::new(pid).ok_or_else(|| anyhow!("pid 0 cannot be traced"))?,
        );
        let (entry, ret) = self.mode.programs();
        let function = &binary.serve_http;
        let mut points: Vec<(&'static str, u64)> =
            vec![(entry, function.file_offset + function.entry_offset)];
        let ends = if self.mode == ProbeMode::CountOnRets {
            binary.serve_http_ret_offsets()
        } else {
            binary.request_end_offsets()
        };
        points.extend(ends.into_iter().map(|at| (ret, at)));
        if let (ProbeMode::Full, Some(gopanic)) = (self.mode, &binary.gopanic) {
            points.push(("gopanic_entry", gopanic.file_offset + gopanic.entry_offset));
        }
        let mut links = Vec::with_capacity(points.len());
        for (program, file_offset) in points {
            match self.attach_one(program, file_offset, &target, scope) {
                Ok(link) => links.push((program, link)),
                Err(e) => {
                    self.detach_links(links);
                    self.forget_offsets(pid);
                    return Err(e.context(format!(
                        "attaching {program} to pid {pid} ({}) at file offset {file_offset:#x}",
                        binary.path.display()
                    )));
                }
            }
        }
        self.attached.insert(pid, Attached { links });
        Ok(())
    }

    fn attach_one(
        &mut self,
        program: &str,
        file_offset: u64,
        target: &Path,
        scope: UProbeScope,
    ) -> Result<UProbeLinkId> {
        let program: &mut UProbe = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| anyhow!("no program {program}"))?
            .try_into()?;
        Ok(program.attach(
            UProbeAttachLocation::AbsoluteOffset(file_offset),
            target,
            scope,
        )?)
    }

    fn detach_links(&mut self, links: Vec<(&'static str, UProbeLinkId)>) {
        for (program, link) in links {
            if let Some(Ok(p)) = self.ebpf.program_mut(program).map(<&mut UProbe>::try_from) {
                if let Err(e) = p.detach(link) {
                    tracing::debug!("detaching {program}: {e}");
                }
            }
        }
    }

    /// Detaches the probes of `pid` and forgets its offsets. Safe to call for unknown pids.
    /// Returns how many of its requests never ended (it exited while serving them).
    pub fn detach(&mut self, pid: u32) -> usize {
        if let Some(attached) = self.attached.remove(&pid) {
            self.detach_links(attached.links);
        }
        self.forget_offsets(pid);
        self.forget_requests(pid)
    }

    /// Frees the in-flight table's slots of `pid`'s requests that never ended. Nothing else
    /// would: a slot is reused only by its goroutine or once finished, so every process killed
    /// while serving would leave its slots taken for good, and a full set sends its goroutines to
    /// the slower overflow map (whose LRU forgets by itself). Finished slots are left alone:
    /// they are free already, and another process may be claiming one right now.
    fn forget_requests(&mut self, pid: u32) -> usize {
        let mut freed = 0;
        for index in 0..IN_FLIGHT_SLOTS {
            let Ok(mut slot) = self.in_flight.get(&index, 0) else {
                continue;
            };
            if slot.key.pid == pid && slot.request.request != 0 {
                slot.request.request = 0;
                slot.request.flags = 0;
                if self.in_flight.set(index, slot, 0).is_ok() {
                    freed += 1;
                }
            }
        }
        freed
    }

    /// Puts `pid`'s offsets in its table slot if no other process holds it (otherwise the probes
    /// find them in the hash map).
    fn claim_table_slot(&mut self, pid: u32, offsets: GoOffsets) -> Result<()> {
        let Some(index) = self.table_slots.claim(pid) else {
            return Ok(());
        };
        let slot = OffsetsSlot {
            pid: pid.into(),
            offsets,
        };
        self.offsets_table
            .set(index, slot, 0)
            .with_context(|| format!("storing offsets of pid {pid} in slot {index}"))
    }

    fn forget_offsets(&mut self, pid: u32) {
        let _ = self.offsets.remove(&pid);
        let Some(index) = self.table_slots.release(pid) else {
            return;
        };
        // Pid 0 owns nothing.
        let freed = self.offsets_table.get(&index, 0).and_then(|mut slot| {
            slot.pid = 0;
            self.offsets_table.set(index, slot, 0)
        });
        if let Err(e) = freed {
            tracing::debug!("freeing offsets slot {index}: {e}");
        }
    }

    pub fn counters(&self) -> KernelCounters {
        let sum = |index: u32| -> u64 {
            self.counters
                .get(&index, 0)
                .map(|values| values.iter().sum())
                .unwrap_or(0)
        };
        KernelCounters {
            entry_hits: sum(counter::ENTRY_HITS),
            return_hits: sum(counter::RETURN_HITS),
            events_submitted: sum(counter::EVENTS_SUBMITTED),
            events_lost: sum(counter::EVENTS_LOST),
            returns_without_entry: sum(counter::RETURNS_WITHOUT_ENTRY),
            unconfigured_hits: sum(counter::UNCONFIGURED_HITS),
            panics: sum(counter::PANICS),
            ends_after_panic_reported: sum(counter::ENDS_AFTER_PANIC_REPORTED),
        }
    }

    /// Removes and returns the events of handlers that panicked and have not returned for
    /// `grace_ns` (the panic ended the request), plus those of processes no longer attached.
    pub fn take_abandoned_panics(
        &mut self,
        now_monotonic_ns: u64,
        grace_ns: u64,
    ) -> Vec<HttpServerEvent> {
        let mut expired = Vec::new();
        for item in self.panicked.iter() {
            let Ok((key, event)) = item else { break };
            let abandoned = !self.attached.contains_key(&key.pid)
                || now_monotonic_ns.saturating_sub(event.end_monotonic_ns) >= grace_ns;
            if abandoned {
                expired.push((key, event));
            }
        }
        expired
            .into_iter()
            .filter_map(|(key, event)| self.panicked.remove(&key).ok().map(|_| event))
            .collect()
    }
}

/// Adds the load bias to the run-time addresses in `offsets` (itabs); offsets stay as they are.
fn relocate(mut offsets: GoOffsets, load_bias: u64) -> GoOffsets {
    for itab in [
        &mut offsets.response_itab,
        &mut offsets.h2_writer_itab,
        &mut offsets.tls_conn_itab,
        &mut offsets.tcp_conn_itab,
    ] {
        if *itab != ABSENT && *itab != 0 {
            *itab += load_bias;
        }
    }
    offsets
}

/// The load bias of a PIE executable in process `pid`: how far its first mapping (file offset 0)
/// was moved from its link-time address. 0 for a fixed-address executable. `exe_inode`: the
/// inode of the file `binary` was inspected from, which the process runs.
pub fn load_bias(pid: u32, binary: &GoBinary, exe_inode: u64) -> Result<u64> {
    if !binary.is_pie {
        return Ok(0);
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .with_context(|| format!("reading /proc/{pid}/maps"))?;
    // By inode, not by path: the path of an executable replaced on disk since it started ends in
    // " (deleted)", and a path may contain spaces.
    let start = parse_load_bias(&maps, exe_inode)
        .ok_or_else(|| anyhow!("no mapping of {} in pid {pid}", binary.path.display()))?;
    // Go links PIE executables at a non-zero address too: the bias is relative to it.
    Ok(start.wrapping_sub(binary.first_load_vaddr))
}

/// The start of the mapping of file offset 0 of the file with inode `inode`.
fn parse_load_bias(maps: &str, inode: u64) -> Option<u64> {
    maps.lines().find_map(|line| {
        // start-end perms offset dev inode [path]
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let _perms = fields.next()?;
        let offset = fields.next()?;
        let _dev = fields.next()?;
        let line_inode: u64 = fields.next()?.parse().ok()?;
        (line_inode == inode && u64::from_str_radix(offset, 16).ok()? == 0)
            .then(|| u64::from_str_radix(range.split('-').next()?, 16).ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_mapping_of_the_executable() {
        let maps = "\
55d0c0000000-55d0c0200000 r--p 00000000 fd:00 123 /srv/my app (deleted)
55d0c0200000-55d0c0400000 r-xp 00200000 fd:00 123 /srv/my app (deleted)
7f0000000000-7f0000001000 r--p 00000000 fd:00 9 /usr/lib/libc.so.6
7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(parse_load_bias(maps, 123), Some(0x55d0c0000000));
        assert_eq!(parse_load_bias(maps, 9), Some(0x7f0000000000));
        assert_eq!(parse_load_bias(maps, 124), None);
    }

    #[test]
    fn relocation_moves_itabs_only() {
        let mut o: GoOffsets = unsafe { std::mem::zeroed() };
        o.response_itab = 0x1000;
        o.h2_writer_itab = ABSENT;
        o.request_request_uri = 0xc0;
        let r = relocate(o, 0x5000);
        assert_eq!(r.response_itab, 0x6000);
        assert_eq!(r.h2_writer_itab, ABSENT);
        assert_eq!(r.request_request_uri, 0xc0);
    }
}
