//! Reading Go values out of the traced process.
use aya_ebpf::helpers::generated::bpf_probe_read_user;
use http_autoinstrument_common::{BoundedStr, GoOffsets, ABSENT};

/// Copies `dst.len()` words at `address` out of the process; false for a nil address or a fault.
#[inline(always)]
pub fn read_words(dst: &mut [u64], address: u64) -> bool {
    address != 0
        && unsafe {
            bpf_probe_read_user(
                dst.as_mut_ptr() as *mut _,
                (dst.len() * 8) as u32,
                address as *const _,
            )
        } == 0
}

/// Reads the 8-byte word at `base + offset`; `None` for a nil base, an absent field or a fault.
#[inline(always)]
pub fn read_u64(base: u64, offset: u64) -> Option<u64> {
    if base == 0 || offset == ABSENT {
        return None;
    }
    // Not through `read_words`: with a one-word array there, LLVM spilled a register left
    // undefined on one path, which the verifier rejects ("R5 !read_ok") in the request-end probe.
    let mut value: u64 = 0;
    let ret = unsafe {
        bpf_probe_read_user(
            &mut value as *mut u64 as *mut _,
            8,
            (base + offset) as *const _,
        )
    };
    (ret == 0).then_some(value)
}

/// Words of the buffers a struct is copied into (see `GoOffsets::set_window_words`); a power of
/// two (see `Window::u64`).
pub const WINDOW_WORDS: usize = http_autoinstrument_common::WINDOW_WORDS as usize;

/// A struct's first words, copied out of the process with one read, as many as the agent found
/// the probe needs of it (`GoOffsets::*_window_words`). Fields outside the copy, or all of them
/// when the copy failed (the struct ends just before unmapped memory), are read one by one.
pub struct Window<'a> {
    words: &'a [u64; WINDOW_WORDS],
    /// How many words were copied: 0 when the copy failed.
    copied: u64,
    base: u64,
}

impl<'a> Window<'a> {
    /// Copies the first `words` words at `base`.
    #[inline(always)]
    pub fn read(buffer: &'a mut [u64; WINDOW_WORDS], base: u64, words: u64) -> Window<'a> {
        // Bounded again where the verifier sees it, like the index in `u64`.
        let words = unsafe { core::ptr::read_volatile(&words) };
        let words = if words > WINDOW_WORDS as u64 {
            WINDOW_WORDS as u64
        } else {
            words
        };
        let copied = base != 0
            && words != 0
            && unsafe {
                bpf_probe_read_user(
                    buffer.as_mut_ptr() as *mut _,
                    (words * 8) as u32,
                    base as *const _,
                )
            } == 0;
        Window {
            words: buffer,
            copied: if copied { words } else { 0 },
            base,
        }
    }

    /// The word at `offset`, like [`read_u64`].
    #[inline(always)]
    pub fn u64(&self, offset: u64) -> Option<u64> {
        if offset == ABSENT {
            return None;
        }
        let index = offset / 8;
        if offset % 8 == 0 && index < self.copied {
            // The mask changes nothing at run time; it shows the verifier the index's bound
            // (LLVM folds the comparison above into a form the verifier cannot follow, and
            // would drop a plain mask as redundant: the volatile read hides what it knows).
            let index = unsafe { core::ptr::read_volatile(&index) };
            let index = (index & (WINDOW_WORDS as u64 - 1)) as usize;
            return Some(unsafe { *self.words.as_ptr().add(index) });
        }
        read_u64(self.base, offset)
    }

    /// The byte at `offset` (a `uint8` field, which need not be 8-aligned).
    #[inline(always)]
    pub fn byte(&self, offset: u64) -> Option<u8> {
        if offset == ABSENT {
            return None;
        }
        let word = self.u64(offset & !7)?;
        Some((word >> ((offset & 7) * 8)) as u8)
    }

    /// The header (`ptr`, `len`) of the Go string at `offset`; (0, 0) when unreadable.
    #[inline(always)]
    pub fn go_string_header(&self, offset: u64) -> (u64, u64) {
        match (self.u64(offset), self.u64(field(offset, 8))) {
            (Some(ptr), Some(len)) => (ptr, len),
            _ => (0, 0),
        }
    }

    /// Copies the Go string at `offset` into `dst`, at most `N` bytes of it. `dst.len` keeps the
    /// full length so the agent can mark a truncated value.
    #[inline(always)]
    pub fn go_string<const N: usize>(&self, dst: &mut BoundedStr<N>, offset: u64) {
        let (ptr, len) = self.go_string_header(offset);
        read_bytes(dst, ptr, len);
    }
}

/// `offset + extra`, or `ABSENT` when the field itself is absent.
#[inline(always)]
pub fn field(offset: u64, extra: u64) -> u64 {
    if offset == ABSENT {
        ABSENT
    } else {
        offset + extra
    }
}

/// Copies `len` bytes at `ptr` (at most `N`) into `dst`.
#[inline(always)]
pub fn read_bytes<const N: usize>(dst: &mut BoundedStr<N>, ptr: u64, len: u64) {
    dst.len = 0;
    if ptr == 0 || len == 0 {
        return;
    }
    // Written so the verifier sees a size in [1, N]. The length is reloaded from memory first:
    // a caller's own checks (a key of length 10 or 11) let the compiler drop the clamp and
    // check a copy, which the verifier cannot relate back to the length it is given.
    let len = unsafe { core::ptr::read_volatile(&len) };
    let size = if len > N as u64 { N as u32 } else { len as u32 };
    if size == 0 || size as usize > N {
        return;
    }
    let ret =
        unsafe { bpf_probe_read_user(dst.bytes.as_mut_ptr() as *mut _, size, ptr as *const _) };
    if ret == 0 {
        dst.len = len;
    }
}

/// Whether a request's host (`Request.Host`, already copied) names a port, as in `shop:8080` or
/// `[::1]:8080`. The agent takes `server.port` from there when it does, so the probe only
/// follows the connection to its local port (five reads) when it does not. Only the end is
/// looked at, from the back: a port is at most five digits after a colon (an IPv6 literal's
/// colons are inside brackets, before the `]`); side by side, this made the probes' run time
/// 0.936x that of a byte loop over the whole host.
#[inline(always)]
pub fn has_port<const N: usize>(host: &BoundedStr<N>) -> bool {
    const { assert!(N.is_power_of_two()) };
    if host.len == 0 || host.len > N as u64 {
        return false;
    }
    for back in 1..=6u64 {
        if back > host.len {
            return false;
        }
        // The mask changes nothing (len <= N); it shows the verifier the index's bound.
        let index = ((host.len - back) & (N as u64 - 1)) as usize;
        match host.bytes[index] {
            b'0'..=b'9' => {}
            b':' => return back > 1,
            _ => return false,
        }
    }
    false
}

/// Local TCP port of the `net.Conn` interface stored at `holder + conn_offset`, following
/// `*tls.Conn` to the connection under it. 0 when the chain is not what we know (e.g. a unix socket).
/// `bias`: the executable's load bias, added to the link-time itab addresses.
#[inline(always)]
pub fn local_port(holder: u64, conn_offset: u64, offsets: &GoOffsets, bias: u64) -> u16 {
    let (Some(mut itab), Some(mut data)) = (
        read_u64(holder, conn_offset),
        read_u64(holder, field(conn_offset, 8)),
    ) else {
        return 0;
    };
    let tls_conn_itab = offsets.tls_conn_itab.wrapping_add(bias);
    let tcp_conn_itab = offsets.tcp_conn_itab.wrapping_add(bias);
    if offsets.tls_conn_itab != ABSENT && itab == tls_conn_itab {
        let (Some(inner_itab), Some(inner_data)) = (
            read_u64(data, offsets.tls_conn_conn),
            read_u64(data, field(offsets.tls_conn_conn, 8)),
        ) else {
            return 0;
        };
        itab = inner_itab;
        data = inner_data;
    }
    if offsets.tcp_conn_itab == ABSENT || itab != tcp_conn_itab {
        return 0;
    }
    let fd = read_u64(data, offsets.tcp_conn_fd).unwrap_or(0);
    // netFD.laddr is a net.Addr interface: its data word is the *TCPAddr.
    let addr = read_u64(fd, field(offsets.net_fd_laddr, 8)).unwrap_or(0);
    match read_u64(addr, offsets.tcp_addr_port) {
        Some(port) if port <= u16::MAX as u64 => port as u16,
        _ => 0,
    }
}
