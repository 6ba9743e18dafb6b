//! Loading the eBPF object and attaching its uprobes to traced executables.
//!
//! One object is loaded once. Each traced executable gets a slot in the probes' table of
//! [`BinaryConfig`]s (its struct offsets and itab addresses), filled before any of its probes is
//! attached, and every attachment carries the slot in its cookie. An executable selected as a
//! whole (by `--exe`, or with no selector) is attached once for every process that runs it: its
//! replicas and restarts are traced from their first request with no new attach. One selected as
//! a single process (`--pid`, `--port`) is attached to that process only, so that the other
//! processes of the same file take no trap.
//!
//! Detaching a uprobe takes the kernel a while; links are closed on a thread of their own so that
//! it never delays attaching.
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::mpsc;

use anyhow::{anyhow, Context, Result};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::uprobe::{
    UProbeAttachLocation, UProbeAttachPoint, UProbeLink, UProbeLinkId, UProbeScope,
};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};
use http_autoinstrument_common::{
    counter, probe_cookie, BinaryConfig, ClientCallSlot, GoroutineKey, GoroutineSlot,
    HttpServerEvent, InFlightSlot, SlotValue, COOKIE_X_NET, EVENT_RECORD_BYTES, GOROUTINE_SLOTS,
    MAX_BINARIES,
};

use crate::inspect::{Function, GoBinary};

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
    /// The real probes with propagation on, whose programs do everything but the writes into the
    /// traced process (no `traceparent` goes out): what propagation costs the probes, measurable
    /// where the kernel forbids the writes (lockdown refuses only programs that can reach the
    /// write helper, and here the verifier sees it never called). Only for benchmarks.
    PropagationDryRun,
}

/// The programs of one mode: on a request's start and end, a client call's start and return.
struct Programs {
    entry: &'static str,
    request_end: &'static str,
    client_start: &'static str,
    client_return: &'static str,
}

impl ProbeMode {
    fn programs(self) -> Programs {
        match self {
            ProbeMode::Full | ProbeMode::Bookkeeping | ProbeMode::PropagationDryRun => Programs {
                entry: "serve_http_entry",
                request_end: "request_end",
                client_start: "client_call_start",
                client_return: "client_call_return",
            },
            ProbeMode::Count | ProbeMode::CountOnRets => Programs {
                entry: "count_entry",
                request_end: "count_request_end",
                client_start: "count_client_start",
                client_return: "count_client_return",
            },
        }
    }
}

/// Whether a trace is sampled, decided by the probes where it starts (see the common crate's
/// `is_sampled`): `sampler::*` and the ratio bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplerSettings {
    pub mode: u64,
    pub bound: u64,
}

/// Kernel-side counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub entry_hits: u64,
    pub request_end_hits: u64,
    pub events_submitted: u64,
    pub events_lost: u64,
    pub ends_without_entry: u64,
    pub unconfigured_hits: u64,
    pub panics: u64,
    pub ends_after_panic_reported: u64,
    pub not_sampled: u64,
    pub client_entry_hits: u64,
    pub client_return_hits: u64,
    pub header_write_hits: u64,
    pub traceparents_written: u64,
    pub traceparents_left_to_application: u64,
    pub traceparents_without_room: u64,
    pub traceparents_replaced: u64,
}

/// Which processes an attachment fires in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every process that runs the file, now or later.
    WholeFile,
    /// This process only.
    Process(u32),
}

/// The probes of one executable attached with one [`Scope`]; hand it back to
/// [`Probes::release`] to detach them.
#[derive(Debug)]
pub struct Attachment {
    links: Vec<(&'static str, UProbeLinkId)>,
}

impl Attachment {
    pub fn link_count(&self) -> usize {
        self.links.len()
    }
}

/// Work for the thread that closes links.
enum Reap {
    Links(Vec<UProbeLink>),
    /// A slot whose links were all sent before: free to reuse once they are closed.
    Slot(u32),
}

pub struct Probes {
    ebpf: Ebpf,
    mode: ProbeMode,
    binaries: Array<MapData, BinaryConfig>,
    panicked: BpfHashMap<MapData, GoroutineKey, HttpServerEvent>,
    in_flight: Array<MapData, InFlightSlot>,
    client_calls: Array<MapData, ClientCallSlot>,
    counters: PerCpuArray<MapData, u64>,
    /// Slots never used, or closed for good.
    free_slots: Vec<u32>,
    reaper: mpsc::Sender<Reap>,
    reaped_slots: mpsc::Receiver<u32>,
    links: usize,
    propagation: Propagation,
}

/// Whether the probes write `traceparent` into outgoing HTTP/1.x requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Propagation {
    On,
    /// Off, and why.
    Off(String),
}

/// The programs that write `traceparent` (they use `bpf_probe_write_user`, which a locked-down
/// kernel refuses at load): into HTTP/1.x and HTTP/2 requests, and, at a call's start in place of
/// `client_call_start`, over a value a proxy copied.
const HEADER_WRITE_PROGRAM: &str = "client_header_write";
const H2_HEADER_WRITE_PROGRAM: &str = "client_h2_header_write";
const PROPAGATING_CLIENT_START_PROGRAM: &str = "client_call_start_propagating";

fn load_program(ebpf: &mut Ebpf, name: &str) -> Result<()> {
    let program: &mut UProbe = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("eBPF object has no program {name}"))?
        .try_into()?;
    program
        .load()
        .with_context(|| format!("the kernel rejected eBPF program {name}"))
}

/// The kernel's lockdown mode (`none`, `integrity`, `confidentiality`), when its security file
/// system says: `integrity` and `confidentiality` forbid `bpf_probe_write_user`.
fn kernel_lockdown() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/security/lockdown").ok()?;
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_owned())
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

/// Size of the events ring buffer: what a busy service sends between two of the agent's polls,
/// with room for what arrives while the agent wakes and drains (`MAX_WAKEUP_EVENTS`). Its
/// pages count twice in the agent's resident memory (the kernel maps the data area twice), so it
/// is kept to what that needs.
pub const EVENTS_RING_BYTES: u32 = 4 * 1024 * 1024;

/// The most waiting events that may be asked to wake the agent (`capture.wakeup_events`): half
/// the ring buffer, so the other half takes what arrives while the agent wakes up and drains.
pub const MAX_WAKEUP_EVENTS: u64 = EVENTS_RING_BYTES as u64 / EVENT_RECORD_BYTES / 2;

impl Probes {
    /// Loads the eBPF object and its programs into the kernel.
    ///
    /// `wakeup_bytes`: unread ring-buffer bytes at which a probe wakes the agent.
    ///
    /// `propagate`: whether client calls should carry their trace context to the next service
    /// (see [`Propagation`]); it is on only where the kernel allows it.
    pub fn load(
        mode: ProbeMode,
        wakeup_bytes: u64,
        sampler: SamplerSettings,
        propagate: bool,
    ) -> Result<Self> {
        raise_memlock_limit();
        let mut propagation = match (propagate, mode) {
            (false, _) => Propagation::Off("switched off by the configuration".to_owned()),
            (_, ProbeMode::PropagationDryRun) => Propagation::On,
            (true, ProbeMode::Full) => match kernel_lockdown() {
                Some(mode) if mode != "none" => Propagation::Off(format!(
                    "the kernel is locked down ({mode}), which forbids BPF programs to write \
                     into processes"
                )),
                _ => Propagation::On,
            },
            (true, _) => Propagation::Off(format!("not in probe mode {mode:?}")),
        };
        let mut ebpf = EbpfLoader::new()
            .override_global("WAKEUP_BYTES", &wakeup_bytes, true)
            .override_global("SAMPLER", &sampler.mode, true)
            .override_global("SAMPLER_BOUND", &sampler.bound, true)
            .override_global(
                "READ_REQUEST",
                &u8::from(mode != ProbeMode::Bookkeeping),
                true,
            )
            .override_global(
                "WRITE_USER",
                &u8::from(mode != ProbeMode::PropagationDryRun),
                true,
            )
            .map_max_entries("EVENTS", EVENTS_RING_BYTES)
            .load(PROBES_OBJECT)
            .context(
                "loading the eBPF probes failed: the agent needs root or CAP_SYS_ADMIN (+ \
                 CAP_SYS_RESOURCE on kernels < 5.11) and a kernel with BPF ring buffers and \
                 attach cookies (>= 5.15)",
            )?;
        let programs = mode.programs();
        for name in [
            programs.entry,
            programs.request_end,
            programs.client_start,
            programs.client_return,
            "gopanic_entry",
        ] {
            load_program(&mut ebpf, name)?;
        }
        if propagation == Propagation::On {
            let loaded = [
                HEADER_WRITE_PROGRAM,
                H2_HEADER_WRITE_PROGRAM,
                PROPAGATING_CLIENT_START_PROGRAM,
            ]
            .into_iter()
            .try_for_each(|name| load_program(&mut ebpf, name));
            if let Err(e) = loaded {
                let error = format!("{e:#}");
                propagation = Propagation::Off(
                    if error.contains("cannot use helper bpf_probe_write_user") {
                        "the kernel refuses BPF programs the helper that writes into processes \
                         (bpf_probe_write_user): kernel lockdown in integrity or \
                         confidentiality mode (see /sys/kernel/security/lockdown), or no \
                         CAP_SYS_ADMIN"
                            .to_owned()
                    } else {
                        error
                    },
                );
            }
        }
        match &propagation {
            Propagation::On if mode == ProbeMode::PropagationDryRun => tracing::info!(
                "trace context propagation on as a dry run (probe mode propagation-dry-run): the \
                 probes do everything but write traceparent into requests"
            ),
            Propagation::On => tracing::info!(
                "trace context propagation on: HTTP/1.x and HTTP/2 requests made with net/http's \
                 client carry a traceparent header unless the application set its own"
            ),
            Propagation::Off(why) => tracing::warn!(
                "trace context propagation off ({why}): called services start new traces unless \
                 an SDK in the caller sends the context; spans and links inside a process are \
                 unaffected"
            ),
        }
        let binaries = Array::try_from(ebpf.take_map("BINARIES").context("map BINARIES")?)?;
        let panicked = BpfHashMap::try_from(ebpf.take_map("PANICKED").context("map PANICKED")?)?;
        let counters = PerCpuArray::try_from(ebpf.take_map("COUNTERS").context("map COUNTERS")?)?;
        let in_flight = Array::try_from(ebpf.take_map("IN_FLIGHT").context("map IN_FLIGHT")?)?;
        let client_calls =
            Array::try_from(ebpf.take_map("CLIENT_CALLS").context("map CLIENT_CALLS")?)?;
        let (reaper, reaped_slots) = start_reaper()?;
        Ok(Probes {
            ebpf,
            mode,
            binaries,
            panicked,
            in_flight,
            client_calls,
            counters,
            // Popped from the end: slot 0 first.
            free_slots: (0..MAX_BINARIES).rev().collect(),
            reaper,
            reaped_slots,
            links: 0,
            propagation,
        })
    }

    /// Whether client calls carry their trace context, and if not, why.
    pub fn propagation(&self) -> &Propagation {
        &self.propagation
    }

    /// The ring buffer of request events; can be taken once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .context("the events ring buffer was already taken")?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Uprobe links attached now, over every executable and process.
    pub fn link_count(&self) -> usize {
        self.links
    }

    /// Gives `binary` a slot and writes its offsets there, for attachments to come.
    pub fn configure(&mut self, binary: &GoBinary) -> Result<u32> {
        self.free_slots.extend(self.reaped_slots.try_iter());
        let slot = self.free_slots.pop().ok_or_else(|| {
            anyhow!("{MAX_BINARIES} executables are traced already; no room for another")
        })?;
        let config = BinaryConfig {
            configured: 1,
            offsets: binary.offsets,
        };
        if let Err(e) = self.binaries.set(slot, config, 0) {
            self.free_slots.push(slot);
            return Err(e).with_context(|| format!("storing the offsets of slot {slot}"));
        }
        Ok(slot)
    }

    /// Gives back the slot of an executable whose attachments have all been released. It is
    /// reused only once those links are closed, so no late hit reads another executable's slot.
    pub fn free(&mut self, slot: u32) {
        if self.reaper.send(Reap::Slot(slot)).is_err() {
            tracing::debug!(slot, "link closer gone; slot not reused");
        }
    }

    /// Attaches the probes of `binary` (configured in `slot`) to the file at `target`, for the
    /// processes of `scope`. `target` must be the file `binary` was read from: a path through an
    /// open descriptor of it (`/proc/self/fd/N`) guarantees that.
    pub fn attach(
        &mut self,
        slot: u32,
        binary: &GoBinary,
        target: &Path,
        scope: Scope,
    ) -> Result<Attachment> {
        let programs = self.mode.programs();
        let mut points: Vec<(&'static str, &Function, u64)> = Vec::new();
        let serve_http = &binary.serve_http;
        points.push((programs.entry, serve_http, serve_http.entry_offset));
        if self.mode == ProbeMode::CountOnRets {
            let ends = serve_http.return_offsets.iter();
            points.extend(ends.map(|&r| (programs.request_end, serve_http, r)));
        } else {
            let ends = binary.request_end_points();
            points.extend(ends.map(|(f, at)| (programs.request_end, f, at)));
        }
        let client_start = match self.propagation {
            Propagation::On => PROPAGATING_CLIENT_START_PROGRAM,
            Propagation::Off(_) => programs.client_start,
        };
        for round_trip in binary.round_trip.iter().chain(&binary.x_net_round_trip) {
            points.push((client_start, round_trip, round_trip.entry_offset));
            let returns = round_trip.return_offsets.iter();
            points.extend(returns.map(|&r| (programs.client_return, round_trip, r)));
        }
        if let (Propagation::On, Some(write)) =
            (&self.propagation, binary.traceparent_write_point())
        {
            points.push((HEADER_WRITE_PROGRAM, write, write.entry_offset));
        }
        if self.propagation == Propagation::On {
            let writes = binary.h2_traceparent_write_points();
            points.extend(writes.map(|w| (H2_HEADER_WRITE_PROGRAM, w, w.entry_offset)));
        }
        let full = matches!(self.mode, ProbeMode::Full | ProbeMode::PropagationDryRun);
        if let (true, Some(gopanic)) = (full, &binary.gopanic) {
            points.push(("gopanic_entry", gopanic, gopanic.entry_offset));
        }
        let scope = match scope {
            Scope::WholeFile => UProbeScope::AllProcesses,
            Scope::Process(pid) => UProbeScope::OneProcess(
                NonZeroU32::new(pid).ok_or_else(|| anyhow!("pid 0 cannot be traced"))?,
            ),
        };
        let mut links = Vec::with_capacity(points.len());
        // The client probes tell x/net's Transport from net/http's by their cookie.
        let x_net = binary.x_net_round_trip.as_ref();
        for (program, function, at) in points {
            let flag = if x_net.is_some_and(|f| std::ptr::eq(f, function)) {
                COOKIE_X_NET
            } else {
                0
            };
            let address = u32::try_from(function.address + at).map_err(|_| {
                anyhow!(
                    "{} is at {:#x}, beyond the 4 GiB the probes handle",
                    function.name,
                    function.address
                )
            });
            let attached = address.and_then(|address| {
                self.attach_one(
                    program,
                    UProbeAttachPoint {
                        location: UProbeAttachLocation::AbsoluteOffset(function.file_offset + at),
                        cookie: Some(probe_cookie(slot, address) | flag),
                    },
                    target,
                    scope,
                )
            });
            match attached {
                Ok(link) => links.push((program, link)),
                Err(e) => {
                    self.release(Attachment { links });
                    return Err(e.context(format!(
                        "attaching {program} to {} at {}+{at:#x}",
                        binary.path.display(),
                        function.name
                    )));
                }
            }
        }
        self.links += links.len();
        Ok(Attachment { links })
    }

    fn attach_one(
        &mut self,
        program: &str,
        point: UProbeAttachPoint<'_>,
        target: &Path,
        scope: UProbeScope,
    ) -> Result<UProbeLinkId> {
        let program: &mut UProbe = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| anyhow!("no program {program}"))?
            .try_into()?;
        Ok(program.attach(point, target, scope)?)
    }

    /// Detaches an attachment's probes (on the link-closing thread: this returns at once).
    pub fn release(&mut self, attachment: Attachment) {
        let mut links = Vec::with_capacity(attachment.links.len());
        for (program, id) in attachment.links {
            let taken = self
                .ebpf
                .program_mut(program)
                .map(<&mut UProbe>::try_from)
                .and_then(Result::ok)
                .map(|p| p.take_link(id));
            match taken {
                Some(Ok(link)) => links.push(link),
                Some(Err(e)) => tracing::debug!("detaching {program}: {e}"),
                None => tracing::debug!("detaching {program}: no such program"),
            }
        }
        self.links = self.links.saturating_sub(links.len());
        if self.reaper.send(Reap::Links(links)).is_err() {
            tracing::debug!("link closer gone; links closed here");
        }
    }

    /// Frees the slots of `pid`'s requests and client calls that never ended, in the probes'
    /// tables by goroutine. Nothing else would: a slot is reused only by its goroutine or once
    /// finished, so every process killed while serving or calling would leave its slots taken
    /// for good, and a full set sends its goroutines to the slower overflow map (whose LRU
    /// forgets by itself). Finished slots are left alone: they are free already, and another
    /// process may be claiming one right now. Returns how many requests and calls were freed.
    pub fn forget_unfinished(&mut self, pid: u32) -> (usize, usize) {
        let requests = free_slots_of(&mut self.in_flight, pid, |request| {
            request.request = 0;
            request.flags = 0;
        });
        let calls = free_slots_of(&mut self.client_calls, pid, |call| call.request = 0);
        (requests, calls)
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
            request_end_hits: sum(counter::REQUEST_END_HITS),
            events_submitted: sum(counter::EVENTS_SUBMITTED),
            events_lost: sum(counter::EVENTS_LOST),
            ends_without_entry: sum(counter::ENDS_WITHOUT_ENTRY),
            unconfigured_hits: sum(counter::UNCONFIGURED_HITS),
            panics: sum(counter::PANICS),
            ends_after_panic_reported: sum(counter::ENDS_AFTER_PANIC_REPORTED),
            not_sampled: sum(counter::NOT_SAMPLED),
            client_entry_hits: sum(counter::CLIENT_ENTRY_HITS),
            client_return_hits: sum(counter::CLIENT_RETURN_HITS),
            header_write_hits: sum(counter::HEADER_WRITE_HITS),
            traceparents_written: sum(counter::PROPAGATED),
            traceparents_left_to_application: sum(counter::PROPAGATION_APP_HEADER),
            traceparents_without_room: sum(counter::PROPAGATION_NO_ROOM),
            traceparents_replaced: sum(counter::PROPAGATION_REPLACED),
        }
    }

    /// Removes and returns the events of handlers that panicked and have not returned for
    /// `grace_ns` (the panic ended the request), plus those of processes no longer running.
    pub fn take_abandoned_panics(
        &mut self,
        now_monotonic_ns: u64,
        grace_ns: u64,
        is_running: impl Fn(u32) -> bool,
    ) -> Vec<HttpServerEvent> {
        let mut expired = Vec::new();
        for item in self.panicked.iter() {
            let Ok((key, event)) = item else { break };
            let abandoned = !is_running(key.pid)
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

/// Marks `pid`'s unfinished slots of a table by goroutine finished (`finish`); how many.
fn free_slots_of<V: SlotValue>(
    table: &mut Array<MapData, GoroutineSlot<V>>,
    pid: u32,
    finish: impl Fn(&mut V),
) -> usize
where
    GoroutineSlot<V>: aya::Pod,
{
    let mut freed = 0;
    for index in 0..GOROUTINE_SLOTS {
        let Ok(mut slot) = table.get(&index, 0) else {
            continue;
        };
        if slot.key.pid == pid && !slot.value.is_finished() {
            finish(&mut slot.value);
            if table.set(index, slot, 0).is_ok() {
                freed += 1;
            }
        }
    }
    freed
}

/// Starts the thread that closes links, and returns where to send it work and where it hands
/// back slots that are free again.
fn start_reaper() -> Result<(mpsc::Sender<Reap>, mpsc::Receiver<u32>)> {
    let (work, todo) = mpsc::channel::<Reap>();
    let (freed, reaped) = mpsc::channel::<u32>();
    std::thread::Builder::new()
        .name("link-closer".into())
        .spawn(move || {
            for item in todo {
                match item {
                    // Dropping a link detaches it.
                    Reap::Links(links) => drop(links),
                    Reap::Slot(slot) => {
                        let _ = freed.send(slot);
                    }
                }
            }
        })
        .context("starting the link-closing thread")?;
    Ok((work, reaped))
}

#[cfg(test)]
mod tests {
    use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

    /// Where control goes after instruction `at` of `code`: (next, whether the kernel's CFG
    /// check lets that edge close a loop). As Linux 6.1's `visit_insn`: jumps may, the
    /// fall-through of any other instruction may not. Calls to other functions are followed
    /// from those functions' own starts.
    fn successors(code: &[u8], at: usize) -> Vec<(usize, bool)> {
        let insn = &code[at * 8..at * 8 + 8];
        let (opcode, class) = (insn[0], insn[0] & 0x07);
        let offset = i16::from_le_bytes([insn[2], insn[3]]) as isize;
        let target = (at as isize + offset + 1) as usize;
        match (class, opcode & 0xf0) {
            (0x05 | 0x06, 0x90) => vec![],                // exit
            (0x05 | 0x06, 0x80) => vec![(at + 1, false)], // call
            (0x05, 0x00) => vec![(target, true)],         // goto
            (0x05 | 0x06, _) => vec![(at + 1, true), (target, true)],
            _ if opcode == 0x18 => vec![(at + 2, false)], // 64-bit immediate: two slots
            _ => vec![(at + 1, false)],
        }
    }

    /// Older kernels (Linux 6.1, Debian 12's, for one) reject a program with a loop whose back
    /// edge is a fall-through ("back-edge from insn X to Y"), a layout the compiler picks for
    /// some loops and newer kernels (6.18) accept. Checked here on the built object, by those
    /// kernels' rule, so that no old kernel is needed in CI to catch it.
    #[test]
    fn no_loop_closes_by_falling_through() {
        let elf = object::File::parse(super::PROBES_OBJECT).unwrap();
        let mut failures = Vec::new();
        let mut checked = 0;
        for section in elf.sections().filter(|s| s.kind() == SectionKind::Text) {
            let code = section.data().unwrap();
            let count = code.len() / 8;
            let starts = elf.symbols().filter(|s| {
                s.section_index() == Some(section.index()) && s.kind() == SymbolKind::Text
            });
            for start in starts {
                let name = start.name().unwrap_or("?").to_owned();
                checked += 1;
                // 1: on the depth-first search's stack; 2: explored.
                let mut state = vec![0u8; count];
                let first = (start.address() / 8) as usize;
                let mut stack = vec![(first, successors(code, first), 0)];
                state[first] = 1;
                while let Some((at, next, i)) = stack.last_mut() {
                    let Some(&(to, may_loop)) = next.get(*i) else {
                        state[*at] = 2;
                        stack.pop();
                        continue;
                    };
                    *i += 1;
                    let from = *at;
                    if to >= count {
                        continue;
                    }
                    match state[to] {
                        0 => {
                            state[to] = 1;
                            stack.push((to, successors(code, to), 0));
                        }
                        1 if !may_loop => failures.push(format!("{name}: {from} -> {to}")),
                        _ => {}
                    }
                }
            }
        }
        assert!(checked >= 10, "only {checked} programs found");
        assert!(
            failures.is_empty(),
            "loops closed by a fall-through (rejected by Linux 6.1): {failures:?}"
        );
    }

    /// Linux refuses a program whose frames, along its deepest chain of bpf-to-bpf calls, take
    /// more than 512 bytes of stack (each frame rounded up to 32). A kernel in lockdown refuses
    /// the propagation probe for its helper before it gets to count, so the count is made here.
    #[test]
    fn every_program_fits_the_kernels_stack() {
        use std::collections::HashMap;
        /// Name, frame bytes and callees of each function, by (section, first instruction).
        type Functions = HashMap<(usize, usize), (String, u64, Vec<(usize, usize)>)>;
        let elf = object::File::parse(super::PROBES_OBJECT).unwrap();
        let mut functions: Functions = HashMap::new();
        let mut entries = Vec::new();
        for section in elf.sections().filter(|s| s.kind() == SectionKind::Text) {
            let code = section.data().unwrap();
            let relocations: HashMap<u64, object::Relocation> = section.relocations().collect();
            let symbols = elf.symbols().filter(|s| {
                s.section_index() == Some(section.index()) && s.kind() == SymbolKind::Text
            });
            for symbol in symbols {
                let first = (symbol.address() / 8) as usize;
                let end = first + (symbol.size() / 8) as usize;
                // Registers holding the frame pointer plus an offset, as helpers' arguments do.
                let mut frame_pointer: [Option<i64>; 11] = [None; 11];
                let (mut depth, mut calls, mut at) = (0i64, Vec::new(), first);
                while at < end {
                    let insn = &code[at * 8..at * 8 + 8];
                    let (opcode, dst, src) = (insn[0], (insn[1] & 0x0f) as usize, insn[1] >> 4);
                    let offset = i64::from(i16::from_le_bytes([insn[2], insn[3]]));
                    let imm = i64::from(i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]));
                    match opcode & 0x07 {
                        0x01 if src == 10 => depth = depth.max(-offset),
                        0x02 | 0x03 if dst == 10 => depth = depth.max(-offset),
                        _ => {}
                    }
                    let writes_dst = matches!(opcode & 0x07, 0x00 | 0x01 | 0x04 | 0x07);
                    if opcode == 0xbf && src == 10 {
                        frame_pointer[dst] = Some(0);
                    } else if opcode == 0x07 && frame_pointer[dst].is_some() {
                        let at_offset = frame_pointer[dst].unwrap() + imm;
                        frame_pointer[dst] = Some(at_offset);
                        depth = depth.max(-at_offset);
                    } else if writes_dst && dst < 11 {
                        frame_pointer[dst] = None;
                    }
                    if opcode == 0x85 && src == 1 {
                        let target = match relocations.get(&(at as u64 * 8)) {
                            Some(relocation) => {
                                let object::RelocationTarget::Symbol(index) = relocation.target()
                                else {
                                    panic!("call at {at} relocated to a non-symbol");
                                };
                                let callee = elf.symbol_by_index(index).unwrap();
                                let section = callee.section_index().unwrap().0;
                                (section, (callee.address() as i64 / 8 + imm + 1) as usize)
                            }
                            None => (section.index().0, (at as i64 + imm + 1) as usize),
                        };
                        calls.push(target);
                    }
                    if opcode == 0x85 {
                        // Caller-saved registers are gone after any call.
                        frame_pointer[..6].fill(None);
                    }
                    at += if opcode == 0x18 { 2 } else { 1 };
                }
                let frame = (depth.max(1) as u64).div_ceil(32) * 32;
                let name = symbol.name().unwrap_or("?").to_owned();
                functions.insert((section.index().0, first), (name, frame, calls));
                if section.name() != Ok(".text") {
                    entries.push((section.index().0, first));
                }
            }
        }
        // The deepest chain below each function (calls cannot recurse in BPF).
        fn deepest(at: (usize, usize), functions: &Functions) -> u64 {
            let (_, frame, calls) = functions
                .get(&at)
                .unwrap_or_else(|| panic!("a call to {at:?}, where no function starts"));
            frame
                + calls
                    .iter()
                    .map(|&c| deepest(c, functions))
                    .max()
                    .unwrap_or(0)
        }
        assert!(entries.len() >= 10, "only {} programs found", entries.len());
        let too_deep: Vec<String> = entries
            .iter()
            .map(|&entry| (&functions[&entry].0, deepest(entry, &functions)))
            .filter(|&(_, depth)| depth > 512)
            .map(|(name, depth)| format!("{name}: {depth} bytes"))
            .collect();
        assert!(too_deep.is_empty(), "stack over 512 bytes: {too_deep:?}");
    }
}
