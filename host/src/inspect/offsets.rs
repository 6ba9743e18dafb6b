//! Assembles [`GoOffsets`] from the struct layouts (the binary's DWARF, or the generated table of
//! layouts per Go release) and the itab addresses, choosing the type names each Go release uses.

use http_autoinstrument_common::{map_layout, GoOffsets, ABSENT, CONTEXT_TYPES};

use super::dwarf::GoTypes;
use super::itabs::{self, ItabAddresses};

#[derive(Debug)]
pub enum OffsetError {
    MissingType(String),
    MissingField { type_name: String, field: String },
    UnsupportedLayout(String),
}

const REQUEST: &str = "net/http.Request";
/// Go 1.22's ServeMux pattern, whose text the request points to before `Request.Pattern` exists.
const PATTERN: &str = "net/http.pattern";
/// What a client call reads: its request's URL and the response.
const URL: &str = "net/url.URL";
const CLIENT_RESPONSE: &str = "net/http.Response";
/// The contexts the probes follow to a client call's parent (`itabs::CONTEXTS`).
const CANCEL_CTX: &str = "context.cancelCtx";
const VALUE_CTX: &str = "context.valueCtx";
const TIMER_CTX: &str = "context.timerCtx";
const WITHOUT_CANCEL_CTX: &str = "context.withoutCancelCtx";
const STOP_CTX: &str = "context.stopCtx";
const AFTER_FUNC_CTX: &str = "context.afterFuncCtx";
const BUFIO_WRITER: &str = "bufio.Writer";
const RESPONSE: &str = "net/http.response";
const CONN: &str = "net/http.conn";
const TLS_CONN: &str = "crypto/tls.Conn";
const TCP_CONN: &str = "net.TCPConn";
/// The unexported `net.conn` embedded in `TCPConn` (as a field named `conn`).
const NET_CONN: &str = "net.conn";
const NET_FD: &str = "net.netFD";
const TCP_ADDR: &str = "net.TCPAddr";
/// A goroutine: its id and its creator's (`parentGoid`, Go 1.21+).
const GOROUTINE: &str = "runtime.g";

/// Go <= 1.23 (and 1.24 built with GOEXPERIMENT=noswissmap): bucket maps.
const HMAP: &str = "runtime.hmap";
/// Go >= 1.24: Swiss-table maps.
const SWISS_MAP: &str = "internal/runtime/maps.Map";
const SWISS_TABLE: &str = "internal/runtime/maps.table";
const SWISS_GROUPS: &str = "internal/runtime/maps.groupsReference";

/// The HTTP/2 server's types. Go 1.21-1.24 bundle x/net/http2 into net/http with an `http2`
/// prefix; Go 1.27 has it as the package net/http/internal/http2 (verified on the fixtures).
struct H2Names {
    writer: &'static str,
    writer_state: &'static str,
    stream: &'static str,
    server_conn: &'static str,
}

const H2_BUNDLED: H2Names = H2Names {
    writer: "net/http.http2responseWriter",
    writer_state: "net/http.http2responseWriterState",
    stream: "net/http.http2stream",
    server_conn: "net/http.http2serverConn",
};
const H2_INTERNAL: H2Names = H2Names {
    writer: "net/http/internal/http2.responseWriter",
    writer_state: "net/http/internal/http2.responseWriterState",
    stream: "net/http/internal/http2.stream",
    server_conn: "net/http/internal/http2.serverConn",
};

/// Every struct the probes read, with the fields they read of it: what the DWARF walk keeps and
/// what the table of layouts per Go release records.
pub const WANTED: &[(&str, &[&str])] = &[
    (
        REQUEST,
        &[
            "Method",
            "RequestURI",
            "ProtoMajor",
            "ProtoMinor",
            "Header",
            "ContentLength",
            "Host",
            "RemoteAddr",
            "TLS",
            "Pattern",
            "pat",
            "ctx",
            "URL",
        ],
    ),
    (PATTERN, &["str"]),
    (URL, &["Scheme", "Host", "Path", "RawQuery"]),
    (CLIENT_RESPONSE, &["StatusCode", "ProtoMajor", "ProtoMinor"]),
    (CANCEL_CTX, &["Context"]),
    (VALUE_CTX, &["Context"]),
    (TIMER_CTX, &["cancelCtx"]),
    (WITHOUT_CANCEL_CTX, &["c"]),
    (STOP_CTX, &["Context"]),
    (AFTER_FUNC_CTX, &["cancelCtx"]),
    (BUFIO_WRITER, &["err", "buf", "n"]),
    (RESPONSE, &["status", "written", "conn"]),
    (CONN, &["rwc"]),
    (TLS_CONN, &["conn"]),
    (TCP_CONN, &["conn"]),
    (NET_CONN, &["fd"]),
    (NET_FD, &["laddr"]),
    (TCP_ADDR, &["Port"]),
    (GOROUTINE, &["goid", "parentGoid"]),
    (HMAP, &["count", "B", "buckets"]),
    (SWISS_MAP, &["used", "dirPtr", "dirLen"]),
    (SWISS_TABLE, &["groups"]),
    (SWISS_GROUPS, &["data", "lengthMask"]),
    (H2_BUNDLED.writer, &["rws"]),
    (H2_BUNDLED.writer_state, &["status", "wroteBytes", "stream"]),
    (H2_BUNDLED.stream, &["sc"]),
    (H2_BUNDLED.server_conn, &["conn"]),
    (H2_INTERNAL.writer, &["rws"]),
    (
        H2_INTERNAL.writer_state,
        &["status", "wroteBytes", "stream"],
    ),
    (H2_INTERNAL.stream, &["sc"]),
    (H2_INTERNAL.server_conn, &["conn"]),
];

/// The names of the [`WANTED`] structs.
pub fn wanted_structs() -> impl Iterator<Item = &'static str> {
    WANTED.iter().map(|(name, _)| *name)
}

pub fn assemble(types: &GoTypes, itabs: &ItabAddresses) -> Result<GoOffsets, OffsetError> {
    let required = |type_name: &str, field: &str| -> Result<u64, OffsetError> {
        if !types.structs.contains_key(type_name) {
            return Err(OffsetError::MissingType(type_name.to_string()));
        }
        types
            .field(type_name, field)
            .ok_or_else(|| OffsetError::MissingField {
                type_name: type_name.to_string(),
                field: field.to_string(),
            })
    };
    let optional = |type_name: &str, field: &str| types.field(type_name, field).unwrap_or(ABSENT);
    let sum = |a: u64, b: u64| {
        if a == ABSENT || b == ABSENT {
            ABSENT
        } else {
            a + b
        }
    };

    let h2 = if types.structs.contains_key(H2_INTERNAL.writer) {
        &H2_INTERNAL
    } else {
        &H2_BUNDLED
    };

    let itab = |slot: usize| itabs.0[slot].unwrap_or(ABSENT);

    let mut offsets = GoOffsets {
        request_method: required(REQUEST, "Method")?,
        request_request_uri: required(REQUEST, "RequestURI")?,
        request_proto_major: required(REQUEST, "ProtoMajor")?,
        request_proto_minor: required(REQUEST, "ProtoMinor")?,
        request_header: required(REQUEST, "Header")?,
        request_content_length: required(REQUEST, "ContentLength")?,
        request_host: required(REQUEST, "Host")?,
        request_remote_addr: required(REQUEST, "RemoteAddr")?,
        request_tls: required(REQUEST, "TLS")?,
        // Go 1.23+.
        request_pattern: optional(REQUEST, "Pattern"),
        // Go 1.22 only: later releases have `Pattern`, whose offset the probe reads instead.
        request_pat: ABSENT,
        pattern_str: ABSENT,
        request_ctx: optional(REQUEST, "ctx"),
        request_url: optional(REQUEST, "URL"),
        url_scheme: optional(URL, "Scheme"),
        url_host: optional(URL, "Host"),
        url_path: optional(URL, "Path"),
        url_raw_query: optional(URL, "RawQuery"),
        client_response_status: optional(CLIENT_RESPONSE, "StatusCode"),
        client_response_proto_major: optional(CLIENT_RESPONSE, "ProtoMajor"),
        client_response_proto_minor: optional(CLIENT_RESPONSE, "ProtoMinor"),
        context_itabs: [ABSENT; CONTEXT_TYPES],
        context_parents: [ABSENT; CONTEXT_TYPES],

        response_itab: itab(itabs::RESPONSE),
        response_status: required(RESPONSE, "status")?,
        response_written: required(RESPONSE, "written")?,
        response_conn: required(RESPONSE, "conn")?,
        conn_rwc: required(CONN, "rwc")?,

        h2_writer_itab: itab(itabs::H2_WRITER),
        h2_writer_rws: optional(h2.writer, "rws"),
        h2_rws_status: optional(h2.writer_state, "status"),
        h2_rws_wrote_bytes: optional(h2.writer_state, "wroteBytes"),
        h2_rws_stream: optional(h2.writer_state, "stream"),
        h2_stream_sc: optional(h2.stream, "sc"),
        h2_server_conn_conn: optional(h2.server_conn, "conn"),

        tls_conn_itab: itab(itabs::TLS_CONN),
        tls_conn_conn: optional(TLS_CONN, "conn"),
        tcp_conn_itab: itab(itabs::TCP_CONN),
        tcp_conn_fd: sum(optional(TCP_CONN, "conn"), optional(NET_CONN, "fd")),
        net_fd_laddr: optional(NET_FD, "laddr"),
        bufio_writer_itab: itab(itabs::BUFIO_WRITER),
        bufio_writer_err: optional(BUFIO_WRITER, "err"),
        bufio_writer_buf: optional(BUFIO_WRITER, "buf"),
        bufio_writer_n: optional(BUFIO_WRITER, "n"),
        tcp_addr_port: optional(TCP_ADDR, "Port"),
        g_goid: optional(GOROUTINE, "goid"),
        g_parent_goid: optional(GOROUTINE, "parentGoid"),

        map_layout: ABSENT,
        map_count: ABSENT,
        hmap_b: ABSENT,
        hmap_buckets: ABSENT,
        swiss_dir_ptr: ABSENT,
        swiss_dir_len: ABSENT,
        swiss_table_groups: ABSENT,
        swiss_groups_length_mask: ABSENT,

        request_window_words: 0,
        response_window_words: 0,
        h2_rws_window_words: 0,
        map_window_words: 0,
        url_window_words: 0,
        client_response_window_words: 0,
    };
    // Where each context type keeps its parent: its embedded or named `Context`, through the
    // embedded `cancelCtx` for the two that embed one.
    let cancel_parent = optional(CANCEL_CTX, "Context");
    let parents = [
        cancel_parent,
        optional(VALUE_CTX, "Context"),
        sum(optional(TIMER_CTX, "cancelCtx"), cancel_parent),
        optional(WITHOUT_CANCEL_CTX, "c"),
        optional(STOP_CTX, "Context"),
        sum(optional(AFTER_FUNC_CTX, "cancelCtx"), cancel_parent),
    ];
    for (kind, parent) in parents.into_iter().enumerate() {
        let itab = itab(itabs::CONTEXTS + kind);
        if itab != ABSENT && parent != ABSENT {
            offsets.context_itabs[kind] = itab;
            offsets.context_parents[kind] = parent;
        }
    }

    // Decided by what the binary contains rather than by version alone, so a Go 1.24 binary built
    // with GOEXPERIMENT=noswissmap is read correctly.
    if types.structs.contains_key(SWISS_MAP) {
        offsets.map_layout = map_layout::SWISS;
        offsets.map_count = required(SWISS_MAP, "used")?;
        offsets.swiss_dir_ptr = required(SWISS_MAP, "dirPtr")?;
        offsets.swiss_dir_len = required(SWISS_MAP, "dirLen")?;
        offsets.swiss_table_groups = required(SWISS_TABLE, "groups")?;
        offsets.swiss_groups_length_mask = required(SWISS_GROUPS, "lengthMask")?;
        // The probe reads `table.groups` as the groups' data pointer.
        let data = required(SWISS_GROUPS, "data")?;
        if data != 0 {
            return Err(OffsetError::UnsupportedLayout(format!(
                "{SWISS_GROUPS}.data is at offset {data:#x}, the probes expect 0"
            )));
        }
    } else if types.structs.contains_key(HMAP) {
        offsets.map_layout = map_layout::BUCKETS;
        offsets.map_count = required(HMAP, "count")?;
        offsets.hmap_b = required(HMAP, "B")?;
        offsets.hmap_buckets = required(HMAP, "buckets")?;
    } else {
        return Err(OffsetError::MissingType(format!("{SWISS_MAP} or {HMAP}")));
    }
    if offsets.request_pattern == ABSENT {
        offsets.request_pat = optional(REQUEST, "pat");
        offsets.pattern_str = optional(PATTERN, "str");
    }
    offsets.set_window_words();
    Ok(offsets)
}
