//! Reading Go values out of the traced process.
use aya_ebpf::helpers::generated::bpf_probe_read_user;
use http_autoinstrument_common::{BoundedStr, GoOffsets, ABSENT};

/// Reads the 8-byte word at `base + offset`; `None` for a nil base, an absent field or a fault.
#[inline(always)]
pub fn read_u64(base: u64, offset: u64) -> Option<u64> {
    if base == 0 || offset == ABSENT {
        return None;
    }
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

/// `offset + extra`, or `ABSENT` when the field itself is absent.
#[inline(always)]
pub fn field(offset: u64, extra: u64) -> u64 {
    if offset == ABSENT {
        ABSENT
    } else {
        offset + extra
    }
}

/// Copies the Go string whose header (`ptr`, `len`) is at `base + offset` into `dst`, at most
/// `N` bytes of it. `dst.len` keeps the full length so the agent can mark a truncated value.
#[inline(always)]
pub fn read_go_string<const N: usize>(dst: &mut BoundedStr<N>, base: u64, offset: u64) {
    dst.len = 0;
    let (Some(ptr), Some(len)) = (read_u64(base, offset), read_u64(base, field(offset, 8))) else {
        return;
    };
    read_bytes(dst, ptr, len);
}

/// Copies `len` bytes at `ptr` (at most `N`) into `dst`.
#[inline(always)]
pub fn read_bytes<const N: usize>(dst: &mut BoundedStr<N>, ptr: u64, len: u64) {
    dst.len = 0;
    if ptr == 0 || len == 0 {
        return;
    }
    // Written so the verifier sees a size in [1, N].
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

/// Local TCP port of the `net.Conn` interface stored at `holder + conn_offset`, following
/// `*tls.Conn` to the connection under it. 0 when the chain is not what we know (e.g. a unix socket).
#[inline(always)]
pub fn local_port(holder: u64, conn_offset: u64, offsets: &GoOffsets) -> u16 {
    let (Some(mut itab), Some(mut data)) = (
        read_u64(holder, conn_offset),
        read_u64(holder, field(conn_offset, 8)),
    ) else {
        return 0;
    };
    if itab == offsets.tls_conn_itab {
        let (Some(inner_itab), Some(inner_data)) = (
            read_u64(data, offsets.tls_conn_conn),
            read_u64(data, field(offsets.tls_conn_conn, 8)),
        ) else {
            return 0;
        };
        itab = inner_itab;
        data = inner_data;
    }
    if itab != offsets.tcp_conn_itab {
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
