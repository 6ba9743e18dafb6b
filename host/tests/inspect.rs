//! Inspection of real Go binaries: the fixture server built with every installed Go toolchain,
//! and the binaries the inspector must refuse with a clear message.

#[path = "support/go_fixtures.rs"]
mod go_fixtures;
#[path = "support/skip.rs"]
mod skip;

use std::path::Path;

use go_fixtures::{build_go_server, go_versions, require_go, require_x_net, GoToolchain, Variant};
use http_autoinstrument::inspect::{
    dwarf_layouts, inspect_binary, inspect_bytes, itab_addresses_by_scan,
    itab_addresses_from_runtime_data, layouts, probed_functions_by_source, Function,
    FunctionSource, GoBinary, GoVersion, InspectError, LayoutSource, RequestEnd, VersionSource,
};
use http_autoinstrument_common::{map_layout, GoOffsets, ABSENT, WINDOW_WORDS};

/// Checks what the agent relies on in a binary built by `toolchain`.
/// Whether `f`'s entry probe is on the `push rbp` (0x55) right after its stack check's `jbe`
/// (`76 xx` or `0F 86 xx xx xx xx`), in the file's bytes `data`: where it runs once per call.
fn after_stack_check(data: &[u8], f: &Function) -> bool {
    let at = (f.file_offset + f.entry_offset) as usize;
    f.entry_offset >= 2
        && data[at] == 0x55
        && (data[at - 2] == 0x76 || (f.entry_offset >= 6 && data[at - 6..at - 4] == [0x0f, 0x86]))
}

/// The write goes in only where every layout it relies on is known: `write_point` finds none in
/// a copy of `inspected` with any one of them made unknown by `unknowns`.
fn no_write_without_any_of(
    inspected: &GoBinary,
    unknowns: &[fn(&mut GoOffsets)],
    write_points: fn(&GoBinary) -> usize,
    v: &str,
) {
    for (i, unknown) in unknowns.iter().enumerate() {
        let mut unverified = inspected.clone();
        unknown(&mut unverified.offsets);
        assert_eq!(
            write_points(&unverified),
            0,
            "Go {v}: layout {i} unknown, yet a traceparent write"
        );
    }
}

/// How many probes would write `traceparent` into HTTP/1.x requests, and into HTTP/2 requests.
fn h1_writes(b: &GoBinary) -> usize {
    b.traceparent_write_point().iter().count()
}
fn h2_writes(b: &GoBinary) -> usize {
    b.h2_traceparent_write_points().count()
}

fn check_binary(toolchain: &GoToolchain, binary: &Path) -> GoBinary {
    let data = std::fs::read(binary).unwrap();
    let inspected = inspect_binary(binary)
        .unwrap_or_else(|e| panic!("Go {}: inspect failed: {e}", toolchain.version));
    let v = &toolchain.version;
    let (major, minor, patch) = toolchain.numbers();
    assert_eq!(
        inspected.go_version,
        GoVersion::new(major, minor, patch),
        "Go {v}"
    );
    assert_eq!(inspected.go_version.to_string(), format!("go{v}"));

    let serve = &inspected.serve_http;
    assert_eq!(serve.name, "net/http.serverHandler.ServeHTTP");
    assert!(serve.size > 0, "Go {v}: ServeHTTP has no size");
    assert!(
        !serve.return_offsets.is_empty(),
        "Go {v}: no RET in ServeHTTP"
    );
    for &ret in &serve.return_offsets {
        assert!(
            ret < serve.size,
            "Go {v}: RET at +{ret:#x} outside the function"
        );
        assert_eq!(
            data[(serve.file_offset + ret) as usize],
            0xc3,
            "Go {v}: RET at +{ret:#x} is not a 0xC3 byte in the file"
        );
    }
    // Requests end on entry to HTTP/1's finishRequest, HTTP/2's handlerDone and Hijack (the
    // fixture hijacks), each probe on the `push rbp` after the stack check, which the kernel
    // emulates: on a RET every request would cost the service a single step.
    let RequestEnd::AfterHandler(ends) = &inspected.request_end else {
        panic!("Go {v}: requests end at {}", inspected.request_end);
    };
    let names: Vec<&str> = ends.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names.len(), 3, "Go {v}: {names:?}");
    assert_eq!(names[0], "net/http.(*response).finishRequest", "Go {v}");
    assert!(
        names[1].ends_with(".(*http2responseWriter).handlerDone")
            || names[1].ends_with("http2.(*responseWriter).handlerDone"),
        "Go {v}: {names:?}"
    );
    assert_eq!(names[2], "net/http.(*response).Hijack", "Go {v}");
    for f in ends.iter().chain([&inspected.serve_http]) {
        assert!(
            after_stack_check(&data, f),
            "Go {v}: {} probe at +{:#x} is not on the push after the stack check",
            f.name,
            f.entry_offset
        );
    }
    assert_eq!(
        inspected.request_end_offsets(),
        ends.iter()
            .map(|f| f.file_offset + f.entry_offset)
            .collect::<Vec<_>>()
    );
    // No golang.org/x/net in the fixture: no probes on its Transport.
    assert!(inspected.x_net_round_trip.is_none(), "Go {v}");
    let gopanic = inspected.gopanic.as_ref().expect("runtime.gopanic");
    assert!(gopanic.size > 0 && gopanic.file_offset > 0);

    let o = &inspected.offsets;
    assert_eq!(o.request_method, 0, "Go {v}");
    for (name, value) in [
        ("Request.ProtoMajor", o.request_proto_major),
        ("Request.ProtoMinor", o.request_proto_minor),
        ("Request.Header", o.request_header),
        ("Request.ContentLength", o.request_content_length),
        ("Request.Host", o.request_host),
        ("Request.RemoteAddr", o.request_remote_addr),
        ("Request.TLS", o.request_tls),
        ("Request.RequestURI", o.request_request_uri),
        ("response.status", o.response_status),
        ("response.written", o.response_written),
        ("response.conn", o.response_conn),
        ("conn.rwc", o.conn_rwc),
        ("h2 writer.rws", o.h2_writer_rws),
        ("h2 state.status", o.h2_rws_status),
        ("h2 state.wroteBytes", o.h2_rws_wrote_bytes),
        ("h2 state.stream", o.h2_rws_stream),
        ("h2 stream.sc", o.h2_stream_sc),
        ("h2 serverConn.conn", o.h2_server_conn_conn),
        ("tls.Conn.conn", o.tls_conn_conn),
        ("TCPConn fd", o.tcp_conn_fd),
        ("netFD.laddr", o.net_fd_laddr),
        ("TCPAddr.Port", o.tcp_addr_port),
        ("response itab", o.response_itab),
        ("h2 writer itab", o.h2_writer_itab),
        ("tls.Conn itab", o.tls_conn_itab),
        ("TCPConn itab", o.tcp_conn_itab),
    ] {
        assert_ne!(value, ABSENT, "Go {v}: {name} missing");
        // Offsets are small; itab addresses are not, but no field is anywhere near 4 GiB.
        assert!(value < 1 << 32, "Go {v}: {name} = {value:#x}");
    }
    // Fields that are pointers to other structs, in structs whose first field they are.
    assert_eq!(o.response_conn, 0, "Go {v}: response.conn");
    assert_eq!(o.tls_conn_conn, 0, "Go {v}: tls.Conn.conn");
    assert_eq!(o.tcp_conn_fd, 0, "Go {v}: TCPConn.conn.fd");
    for itab in [
        o.response_itab,
        o.h2_writer_itab,
        o.tls_conn_itab,
        o.tcp_conn_itab,
    ] {
        assert!(itab > 0 && itab % 8 == 0, "Go {v}: itab {itab:#x}");
    }
    let distinct: std::collections::HashSet<u64> = [
        o.response_itab,
        o.h2_writer_itab,
        o.tls_conn_itab,
        o.tcp_conn_itab,
    ]
    .into();
    assert_eq!(distinct.len(), 4, "Go {v}: itabs are not distinct");

    // Request.Pattern appeared in Go 1.23.
    assert_eq!(
        o.request_pattern != ABSENT,
        toolchain.at_least(1, 23),
        "Go {v}: Pattern"
    );
    if toolchain.at_least(1, 24) {
        assert_eq!(o.map_layout, map_layout::SWISS, "Go {v}");
        for value in [
            o.swiss_dir_ptr,
            o.swiss_dir_len,
            o.swiss_table_groups,
            o.swiss_groups_length_mask,
        ] {
            assert_ne!(value, ABSENT, "Go {v}: swiss map field missing");
        }
        assert_eq!((o.hmap_b, o.hmap_buckets), (ABSENT, ABSENT));
    } else {
        assert_eq!(o.map_layout, map_layout::BUCKETS, "Go {v}");
        assert_ne!(o.hmap_b, ABSENT);
        assert_ne!(o.hmap_buckets, ABSENT);
        assert_eq!(o.swiss_dir_ptr, ABSENT);
    }

    // Each struct is copied through the last field the probe reads of it (with one read when
    // that fits the probe's buffer) and no further.
    let covers = |words: u64, fields: &[u64]| {
        let end = fields
            .iter()
            .filter(|&&f| f != ABSENT)
            .map(|f| f + 8)
            .max()
            .unwrap();
        words * 8 >= end.min(WINDOW_WORDS * 8) && words * 8 < end + 8
    };
    assert!(
        covers(
            o.request_window_words,
            &[
                o.request_request_uri + 8,
                o.request_tls,
                o.request_pattern.saturating_add(8),
                o.request_pat,
                o.request_ctx.saturating_add(8),
                o.request_url
            ]
        ),
        "Go {v}: {o:?}"
    );
    assert!(
        covers(
            o.response_window_words,
            &[o.response_status, o.response_written]
        ),
        "Go {v}: {o:?}"
    );
    assert!(
        covers(
            o.h2_rws_window_words,
            &[o.h2_rws_status, o.h2_rws_wrote_bytes]
        ),
        "Go {v}: {o:?}"
    );
    assert!(
        covers(
            o.client_response_window_words,
            &[
                o.client_response_status,
                o.client_response_proto_major,
                o.client_response_proto_minor
            ]
        ),
        "Go {v}: {o:?}"
    );
    assert!(
        covers(
            o.map_window_words,
            &[o.map_count, o.hmap_buckets, o.swiss_dir_len]
        ),
        "Go {v}: {o:?}"
    );

    // The content scan (the only source in Go releases without go:itab symbols) must agree with
    // the symbols where both exist.
    let scanned = itab_addresses_by_scan(binary, &data).unwrap();
    assert_eq!(
        scanned[..4],
        [
            Some(o.response_itab),
            Some(o.h2_writer_itab),
            Some(o.tls_conn_itab),
            Some(o.tcp_conn_itab)
        ],
        "Go {v}: itab scan disagrees"
    );
    // The context types the parent walk follows: every net/http server has cancelCtx and
    // valueCtx behind a context.Context; the others only when the program uses them.
    let contexts = &scanned[4..10];
    assert!(
        contexts[0].is_some() && contexts[1].is_some(),
        "Go {v}: {contexts:?}"
    );
    for (kind, found) in contexts.iter().enumerate() {
        if let Some(itab) = found {
            assert_eq!(o.context_itabs[kind], *itab, "Go {v}: context type {kind}");
        }
    }
    let write = inspected
        .header_write
        .as_ref()
        .unwrap_or_else(|| panic!("Go {v}: no call of Header.writeSubset in (*Request).write"));
    assert!(
        write.entry_offset > 0 && write.entry_offset < write.size,
        "Go {v}: {write:?}"
    );
    // The writer net/http's client writes request headers to (context propagation).
    assert_eq!(
        scanned[10],
        Some(o.bufio_writer_itab),
        "Go {v}: bufio.Writer itab"
    );
    assert!(
        [o.bufio_writer_err, o.bufio_writer_buf, o.bufio_writer_n]
            .iter()
            .all(|&f| f != ABSENT),
        "Go {v}: bufio.Writer layout: {o:?}"
    );
    // The write goes in only where every layout it relies on is known: a binary missing any of
    // them (no DWARF entry, no table row, no itab found) gets no write probe.
    assert_eq!(
        inspected.traceparent_write_point(),
        Some(write),
        "Go {v}: the traceparent write"
    );
    let unknowns: [fn(&mut GoOffsets); 6] = [
        |o| o.request_header = ABSENT,
        |o| o.map_layout = ABSENT,
        |o| o.bufio_writer_itab = ABSENT,
        |o| o.bufio_writer_err = ABSENT,
        |o| o.bufio_writer_buf = ABSENT,
        |o| o.bufio_writer_n = ABSENT,
    ];
    no_write_without_any_of(&inspected, &unknowns, h1_writes, v);
    // HTTP/2 requests: the call of Flush in writeHeaders, and the goroutine ids that lead from
    // the goroutine writing the headers to the call.
    let h2_write = inspected
        .h2_header_write
        .as_ref()
        .unwrap_or_else(|| panic!("Go {v}: no call of Flush in (*ClientConn).writeHeaders"));
    assert!(
        h2_write.name.ends_with("ClientConn).writeHeaders")
            && h2_write.entry_offset > 0
            && h2_write.entry_offset < h2_write.size,
        "Go {v}: {h2_write:?}"
    );
    assert!(
        o.g_goid != ABSENT && o.g_parent_goid != ABSENT && o.g_goid < o.g_parent_goid,
        "Go {v}: runtime.g layout: {o:?}"
    );
    assert_eq!(
        inspected.h2_traceparent_write_points().collect::<Vec<_>>(),
        [h2_write],
        "Go {v}: the HTTP/2 traceparent write (x/net's is not linked)"
    );
    let h2_unknowns: [fn(&mut GoOffsets); 7] = [
        |o| o.request_header = ABSENT,
        |o| o.map_layout = ABSENT,
        |o| o.bufio_writer_err = ABSENT,
        |o| o.bufio_writer_buf = ABSENT,
        |o| o.bufio_writer_n = ABSENT,
        |o| o.g_goid = ABSENT,
        |o| o.g_parent_goid = ABSENT,
    ];
    no_write_without_any_of(&inspected, &h2_unknowns, h2_writes, v);
    // So must the runtime's interface table, which stripped binaries leave as the only source.
    // It may know more: the scan needs DWARF to name a type (context.withoutCancelCtx has no
    // type entry in Go 1.21's DWARF when only its itab is used).
    let runtime = itab_addresses_from_runtime_data(&data);
    for (slot, found) in scanned.iter().enumerate() {
        if found.is_some() {
            assert_eq!(
                runtime[slot], *found,
                "Go {v}: runtime interface table, slot {slot}"
            );
        }
    }
    inspected
}

fn check_version(version: &str) -> Option<GoBinary> {
    let toolchain = require_go(version)?;
    let binary = build_go_server(&toolchain.version, Variant::Default);
    let inspected = check_binary(&toolchain, &binary);
    assert!(!inspected.is_pie, "default go build output is not PIE");
    assert_eq!(inspected.first_load_vaddr, 0x400000);
    Some(inspected)
}

#[test]
fn go1_21() {
    check_version("1.21");
}

#[test]
fn go1_23() {
    check_version("1.23");
}

#[test]
fn go1_24_matches_measured_offsets() {
    let Some(inspected) = check_version("1.24.11") else {
        return;
    };
    // Measured facts (shared notes): ServeHTTP is 198 bytes with one RET at +0x93.
    assert_eq!(inspected.serve_http.size, 198);
    assert_eq!(inspected.serve_http.return_offsets, vec![0x93]);
    // Disassembled by hand: `cmp rsp, [r14+0x10]` (4 bytes), `jbe` (6), then the `push rbp` the
    // probe goes on.
    assert_eq!(inspected.serve_http.entry_offset, 10);
    let o = inspected.offsets;
    assert_eq!(o.request_request_uri, 0xc0);
}

#[test]
fn newest_installed() {
    check_version("newest");
}

#[test]
fn every_installed_version() {
    let versions = go_versions();
    if versions.is_empty() {
        require_go("1.21"); // panics under CI=true, prints the setup note otherwise
        return;
    }
    for toolchain in versions {
        let binary = build_go_server(&toolchain.version, Variant::Default);
        check_binary(&toolchain, &binary);
    }
}

#[test]
fn pie_binary_has_the_same_layout() {
    let Some(toolchain) = require_go("newest") else {
        return;
    };
    let pie = build_go_server(&toolchain.version, Variant::Pie);
    let inspected = check_binary(&toolchain, &pie);
    assert!(inspected.is_pie);
    // Go links PIE executables at the usual base; the agent computes the bias from it.
    assert_eq!(inspected.first_load_vaddr, 0x400000);
    let plain = inspect_binary(&build_go_server(&toolchain.version, Variant::Default)).unwrap();
    assert_eq!(
        inspected.offsets.request_header,
        plain.offsets.request_header
    );
    assert_eq!(inspected.offsets.h2_rws_status, plain.offsets.h2_rws_status);
}

fn message(result: Result<GoBinary, InspectError>) -> (InspectError, String) {
    let error = result.expect_err("inspection should fail");
    let text = error.to_string();
    (error, text)
}

#[test]
fn rejects_a_non_go_elf() {
    let (error, text) = message(inspect_binary(Path::new("/bin/true")));
    assert!(matches!(error, InspectError::NotGo { .. }), "{error:?}");
    assert!(
        text.contains("/bin/true") && text.contains("not a Go program"),
        "{text}"
    );
}

#[test]
fn rejects_a_text_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "just some text\n").unwrap();
    let (error, text) = message(inspect_binary(&path));
    assert!(matches!(error, InspectError::NotElf { .. }), "{error:?}");
    assert!(
        text.contains("notes.txt") && text.contains("not an ELF"),
        "{text}"
    );
}

#[test]
fn rejects_a_missing_file() {
    let (error, text) = message(inspect_binary(Path::new("/nonexistent/server")));
    assert!(matches!(error, InspectError::Read { .. }), "{error:?}");
    assert!(text.contains("/nonexistent/server"), "{text}");
}

/// Release builds: stripped (`-s -w`), and cgo + PIE, plain and stripped. With every installed
/// Go release, a stripped build yields what its unstripped build yields from symbols and DWARF:
/// the same probe points and the same offsets, from the function table and the table of layouts.
#[test]
fn stripped_and_cgo_pie_builds_match_their_unstripped_builds() {
    let versions = go_versions();
    if versions.is_empty() {
        require_go("1.21");
        return;
    }
    for toolchain in versions {
        let v = &toolchain.version;
        for (plain, stripped) in [
            (Variant::Default, Variant::Stripped),
            (Variant::CgoPie, Variant::CgoPieStripped),
        ] {
            let plain_binary = build_go_server(v, plain);
            let full = check_binary(&toolchain, &plain_binary);
            assert_eq!(full.sources.functions, FunctionSource::Symbols, "Go {v}");
            assert_eq!(full.sources.layouts, LayoutSource::Dwarf, "Go {v}");
            let binary = build_go_server(v, stripped);
            let bare =
                inspect_binary(&binary).unwrap_or_else(|e| panic!("Go {v} {stripped:?}: {e}"));
            assert_eq!(bare.sources.functions, FunctionSource::Pclntab, "Go {v}");
            assert_eq!(bare.sources.layouts, LayoutSource::Table, "Go {v}");
            assert_eq!(bare.go_version, full.go_version, "Go {v} {stripped:?}");
            assert_eq!(bare.is_pie, plain == Variant::CgoPie, "Go {v} {stripped:?}");
            // Addresses move a little between the two builds (the build ID's length, say): the
            // itabs are compared to symbols in `check_binary`, on the unstripped build, where the
            // runtime's interface table must agree with them; here, that they were found.
            let without_itabs = |b: &GoBinary| {
                let mut o = b.offsets;
                for itab in [
                    &mut o.response_itab,
                    &mut o.h2_writer_itab,
                    &mut o.tls_conn_itab,
                    &mut o.tcp_conn_itab,
                ] {
                    assert_ne!(*itab, ABSENT, "Go {v} {stripped:?}: an itab was not found");
                    *itab = 0;
                }
                // Found or not alike in both builds.
                for itab in o.context_itabs.iter_mut().chain([&mut o.bufio_writer_itab]) {
                    *itab = u64::from(*itab != ABSENT);
                }
                o
            };
            assert_eq!(
                without_itabs(&bare),
                without_itabs(&full),
                "Go {v} {stripped:?}"
            );
            let points = |b: &GoBinary| -> Vec<(String, u64)> {
                (b.request_end_points())
                    .map(|(f, at)| (f.name.clone(), at))
                    .chain([(b.serve_http.name.clone(), b.serve_http.entry_offset)])
                    .collect()
            };
            assert_eq!(points(&bare), points(&full), "Go {v} {stripped:?}");
            // The HTTP/2 header write, found from Go's function table alone.
            let h2_write = |b: &GoBinary| {
                (b.h2_traceparent_write_points().next()).map(|f| (f.name.clone(), f.entry_offset))
            };
            assert!(
                h2_write(&bare).is_some(),
                "Go {v} {stripped:?}: no HTTP/2 write"
            );
            assert_eq!(h2_write(&bare), h2_write(&full), "Go {v} {stripped:?}");
            assert_eq!(
                bare.serve_http.return_offsets, full.serve_http.return_offsets,
                "Go {v} {stripped:?}"
            );
        }
    }
}

/// golang.org/x/net/http2's `(*Transport).RoundTrip`, where x/net's client calls are probed: its
/// entry probe on the `push rbp` after the stack check, its RETs, from the symbol table and, in
/// the stripped build, from the function table, at the same offsets. net/http's roundTrip is probed too.
fn x_net_transport_is_found(version: &str) {
    let Some(toolchain) = require_go(version) else {
        return;
    };
    if !require_x_net() {
        return;
    }
    let v = &toolchain.version;
    let mut found = Vec::new();
    for variant in [Variant::XNet, Variant::XNetStripped] {
        let path = build_go_server(v, variant);
        let data = std::fs::read(&path).unwrap();
        let binary = inspect_binary(&path).unwrap_or_else(|e| panic!("Go {v} {variant:?}: {e}"));
        let source = match variant {
            Variant::XNet => FunctionSource::Symbols,
            _ => FunctionSource::Pclntab,
        };
        assert_eq!(binary.sources.functions, source, "Go {v} {variant:?}");
        assert!(binary.round_trip.is_some(), "Go {v} {variant:?}: roundTrip");
        let f = (binary.x_net_round_trip.clone())
            .unwrap_or_else(|| panic!("Go {v} {variant:?}: x/net's RoundTrip not found"));
        assert_eq!(f.name, "golang.org/x/net/http2.(*Transport).RoundTrip");
        assert!(
            after_stack_check(&data, &f),
            "Go {v} {variant:?}: entry probe at +{:#x} is not after the stack check",
            f.entry_offset
        );
        assert!(!f.return_offsets.is_empty(), "Go {v} {variant:?}: no RET");
        for &ret in &f.return_offsets {
            assert!(ret < f.size, "Go {v} {variant:?}: RET at +{ret:#x}");
            assert_eq!(
                data[(f.file_offset + ret) as usize],
                0xc3,
                "Go {v} {variant:?}: RET at +{ret:#x} is not a 0xC3 byte in the file"
            );
        }
        // A failed call's error.type is named from the binary's type data.
        assert!(
            binary.error_types.values().any(|t| t == "*net.OpError"),
            "Go {v} {variant:?}"
        );
        // Its HTTP/2 requests get `traceparent` where x/net's writeHeaders flushes them, beside
        // net/http's own HTTP/2 writer.
        let write = (binary.x_net_h2_header_write.clone())
            .unwrap_or_else(|| panic!("Go {v} {variant:?}: no Flush call in x/net's writeHeaders"));
        assert_eq!(
            write.name,
            "golang.org/x/net/http2.(*ClientConn).writeHeaders"
        );
        let call = (write.file_offset + write.entry_offset) as usize;
        assert_eq!(
            data[call], 0xe8,
            "Go {v} {variant:?}: {write:?} is not on a CALL"
        );
        let names: Vec<&str> = (binary.h2_traceparent_write_points())
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names.len(), 2, "Go {v} {variant:?}: {names:?}");
        assert_eq!(names[1], write.name, "Go {v} {variant:?}");
        found.push((f.entry_offset, f.return_offsets, write.entry_offset));
    }
    assert_eq!(found[0], found[1], "Go {v}: stripped and unstripped builds");
}

#[test]
fn x_net_transport_go1_21() {
    x_net_transport_is_found("1.21");
}

#[test]
fn x_net_transport_go1_24() {
    x_net_transport_is_found("1.24");
}

#[test]
fn x_net_transport_newest() {
    x_net_transport_is_found("newest");
}

/// Go's function table names and places the probed functions as the symbol table does. A
/// function's size there runs to the next function, so it includes the padding after it.
#[test]
fn the_function_table_agrees_with_the_symbol_table() {
    let versions = go_versions();
    if versions.is_empty() {
        require_go("1.21");
        return;
    }
    for toolchain in versions {
        let v = &toolchain.version;
        let binary = build_go_server(v, Variant::Default);
        let data = std::fs::read(&binary).unwrap();
        let [symbols, table] = probed_functions_by_source(&binary, &data).unwrap();
        assert!(symbols.len() >= 6, "Go {v}: {symbols:?}");
        assert_eq!(symbols.len(), table.len(), "Go {v}: {symbols:?} {table:?}");
        for (s, t) in symbols.iter().zip(&table) {
            assert_eq!((&s.0, s.1), (&t.0, t.1), "Go {v}");
            assert!(
                t.2 >= s.2 && t.2 < s.2 + 64,
                "Go {v}: {} is {} bytes by symbol, {} by the table",
                s.0,
                s.2,
                t.2
            );
        }
    }
}

type Damage = Box<dyn Fn(&mut [u8])>;

/// A damaged function table or module data is an error or a binary without what it lacks, never
/// a panic.
#[test]
fn corrupt_or_truncated_go_tables_are_errors_not_panics() {
    let Some(toolchain) = require_go("newest") else {
        return;
    };
    let binary = build_go_server(&toolchain.version, Variant::Stripped);
    let data = std::fs::read(&binary).unwrap();
    let section = |name: &str| -> (usize, usize) {
        let out = std::process::Command::new("objdump")
            .args(["-h", binary.to_str().unwrap()])
            .output()
            .expect("objdump (binutils, installed by scripts/setup.sh)");
        let text = String::from_utf8(out.stdout).unwrap();
        let line = (text.lines())
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let size = usize::from_str_radix(fields[2], 16).unwrap();
        let offset = usize::from_str_radix(fields[5], 16).unwrap();
        (offset, size)
    };
    for name in [
        ".gopclntab",
        ".go.module",
        ".itablink",
        ".typelink",
        ".rodata",
    ] {
        let Some((offset, size)) = (std::panic::catch_unwind(|| section(name))).ok() else {
            continue; // not in this release's binaries
        };
        let damage: [(&str, Damage); 4] = [
            (
                "zeroed header",
                Box::new(|s: &mut [u8]| {
                    let n = s.len().min(64);
                    s[..n].fill(0)
                }),
            ),
            ("zeroed", Box::new(|s: &mut [u8]| s.fill(0))),
            ("ones", Box::new(|s: &mut [u8]| s.fill(0xff))),
            (
                "scrambled",
                Box::new(|s: &mut [u8]| {
                    for (i, b) in s.iter_mut().enumerate() {
                        *b = (i as u8).wrapping_mul(151).wrapping_add(*b);
                    }
                }),
            ),
        ];
        for (how, damage) in &damage {
            let mut copy = data.clone();
            damage(&mut copy[offset..offset + size]);
            if let Ok(inspected) = inspect_bytes(&binary, &copy) {
                // Possible only when the damage left nothing the probes need (the interface table's
                // unused part, say).
                assert_eq!(
                    inspected.go_version.minor,
                    toolchain.numbers().1,
                    "{name} {how}"
                );
            }
        }
        // Cut inside the section: the ELF parse reports the file as truncated.
        let cut = offset + size / 2;
        assert!(inspect_bytes(&binary, &data[..cut]).is_err(), "{name} cut");
    }
}

/// Some release builds drop `.go.buildinfo` (seen in the field); the runtime's own version string
/// is still there.
#[test]
fn a_binary_without_build_info_is_recognised_by_its_runtime_data() {
    let Some(toolchain) = require_go("newest") else {
        return;
    };
    for variant in [Variant::Stripped, Variant::CgoPieStripped] {
        let binary = build_go_server(&toolchain.version, variant);
        let dir = tempfile::tempdir().unwrap();
        let without = dir.path().join("server-without-buildinfo");
        let status = std::process::Command::new("objcopy")
            .args(["--remove-section", ".go.buildinfo"])
            .arg(&binary)
            .arg(&without)
            .status()
            .expect("objcopy (binutils, installed by scripts/setup.sh)");
        assert!(status.success());
        let inspected = inspect_binary(&without).unwrap_or_else(|e| panic!("{variant:?}: {e}"));
        assert_eq!(inspected.sources.version, VersionSource::Runtime);
        assert_eq!(
            inspected.go_version.to_string(),
            format!("go{}", toolchain.version)
        );
        assert_eq!(inspected.offsets, inspect_binary(&binary).unwrap().offsets);
    }
}

/// The table of layouts per Go release agrees, field by field, with the DWARF of every Go
/// release installed here (CI installs the newest patch release of every supported series).
#[test]
fn the_layouts_table_agrees_with_dwarf() {
    let versions = go_versions();
    if versions.is_empty() {
        require_go("1.21");
        return;
    }
    let table = layouts::table();
    let mut checked = vec![false; table.len()];
    for toolchain in versions {
        let v = &toolchain.version;
        let (major, minor, patch) = toolchain.numbers();
        let version = GoVersion::new(major, minor, patch);
        let binary = build_go_server(v, Variant::Default);
        let data = std::fs::read(&binary).unwrap();
        let from_dwarf = dwarf_layouts(&binary, &data).unwrap();
        let from_table = layouts::for_version(version).unwrap_or_else(|| {
            panic!("Go {v} is newer than the table: run scripts/gen-go-layouts.py")
        });
        let mut table_structs: Vec<&str> = from_table.structs.keys().copied().collect();
        table_structs.sort();
        let mut dwarf_structs: Vec<&str> = from_dwarf.iter().map(|(n, _)| n.as_str()).collect();
        dwarf_structs.sort();
        assert_eq!(table_structs, dwarf_structs, "Go {v}: structs");
        for (name, fields) in &from_dwarf {
            assert_eq!(&from_table.structs[name.as_str()], fields, "Go {v}: {name}");
        }
        for (i, row) in table.iter().enumerate() {
            checked[i] |= row.covers(version);
        }
    }
    let rows_checked = checked.iter().filter(|c| **c).count();
    eprintln!(
        "layouts table: {rows_checked} of {} rows checked against DWARF here",
        table.len()
    );
}

/// Releases older than the supported range are refused; newer ones are traced from their DWARF,
/// and refused without it, with what to do.
#[test]
fn the_go_release_decides_how_a_binary_is_read() {
    let Some(toolchain) = require_go("newest") else {
        return;
    };
    let rewrite = |variant, fake: &dyn Fn(&str) -> String| {
        let binary = build_go_server(&toolchain.version, variant);
        let mut data = std::fs::read(&binary).unwrap();
        let version = format!("go{}", toolchain.version);
        let fake = fake(&version);
        assert_eq!(fake.len(), version.len());
        // Every copy of the version string: the build info's and the runtime's.
        let starts: Vec<usize> = data
            .windows(version.len())
            .enumerate()
            .filter(|(_, w)| *w == version.as_bytes())
            .map(|(at, _)| at)
            .collect();
        assert!(
            !starts.is_empty(),
            "no version string in {}",
            binary.display()
        );
        for at in starts {
            data[at..at + version.len()].copy_from_slice(fake.as_bytes());
        }
        (binary, fake, data)
    };
    let older = |v: &str| format!("go1.20.{}", "9".repeat(v.len() - 7));
    let (binary, fake, data) = rewrite(Variant::Default, &older);
    let (error, text) = message(inspect_bytes(&binary, &data));
    assert!(
        matches!(error, InspectError::UnsupportedGoVersion { .. }),
        "{error:?}"
    );
    assert!(
        text.contains(&fake) && text.contains("go1.21 through go1.27"),
        "{text}"
    );

    let newer = |v: &str| format!("go1.99.{}", "9".repeat(v.len() - 7));
    let (binary, _, data) = rewrite(Variant::Default, &newer);
    let inspected = inspect_bytes(&binary, &data).expect("a newer release with DWARF is read");
    assert_eq!(inspected.go_version.minor, 99);
    assert_eq!(inspected.sources.layouts, LayoutSource::Dwarf);

    let (binary, _, data) = rewrite(Variant::Stripped, &newer);
    let (error, text) = message(inspect_bytes(&binary, &data));
    assert!(
        matches!(error, InspectError::NewerThanTable { .. }),
        "{error:?}"
    );
    assert!(
        text.contains("go1.99.") && text.contains("upgrade the agent") && text.contains("-w"),
        "{text}"
    );
}

#[test]
fn rejects_a_go_program_without_net_http() {
    let Some(toolchain) = require_go("newest") else {
        return;
    };
    let binary = build_go_server(&toolchain.version, Variant::NoHttp);
    let (error, text) = message(inspect_binary(&binary));
    assert!(
        matches!(error, InspectError::NoHttpServer { .. }),
        "{error:?}"
    );
    assert!(text.contains("net/http.serverHandler.ServeHTTP"), "{text}");
    assert!(text.contains(&format!("go{}", toolchain.version)), "{text}");
}

#[test]
fn truncated_binaries_are_errors_not_panics() {
    let Some(toolchain) = require_go("newest") else {
        return;
    };
    let binary = build_go_server(&toolchain.version, Variant::Default);
    let data = std::fs::read(&binary).unwrap();
    let len = data.len();
    for cut in [0, 3] {
        let result = inspect_bytes(&binary, &data[..cut]);
        assert!(
            matches!(result, Err(InspectError::NotElf { .. })),
            "cut at {cut}: {result:?}"
        );
    }
    for cut in [
        64,
        0x200,
        4096,
        len / 4,
        len / 2,
        len * 3 / 4,
        len - 4096,
        len - 1,
    ] {
        let (error, text) = message(inspect_bytes(&binary, &data[..cut]));
        assert!(
            matches!(error, InspectError::Damaged { .. }),
            "cut at {cut} of {len} bytes: {error:?}"
        );
        assert!(text.contains("damaged or truncated"), "{text}");
    }
}

/// One HTTP/1.1 request over a fresh connection; returns (status, body).
fn http_request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response to {method} {path}: {response:?}"));
    (status, body.to_string())
}

/// The fixture behaves the same with the oldest and the newest Go: the end-to-end tests rely on it.
#[test]
fn fixture_server_serves_its_routes() {
    for version in ["1.21", "newest"] {
        let Some(toolchain) = require_go(version) else {
            continue;
        };
        let binary = build_go_server(&toolchain.version, Variant::Default);
        let server = go_fixtures::GoServer::start(&binary);
        assert!(server.pid > 0 && server.http_port > 0 && server.https_port > 0);
        assert_ne!(server.http_port, server.https_port);
        let v = &toolchain.version;
        let get = |path| http_request(server.http_port, "GET", path, "");
        assert_eq!(get("/"), (200, "hello\n".to_string()), "Go {v}");
        assert_eq!(get("/health"), (200, "ok".to_string()), "Go {v}");
        assert_eq!(
            get("/status/418"),
            (418, "status 418".to_string()),
            "Go {v}"
        );
        assert_eq!(get("/users/42"), (200, "user 42\n".to_string()), "Go {v}");
        assert_eq!(get("/users/4/2"), (200, "hello\n".to_string()), "Go {v}");
        assert_eq!(
            http_request(server.http_port, "POST", "/echo", "ping"),
            (200, "ping".to_string()),
            "Go {v}"
        );
        // A panicking handler: net/http recovers and closes the connection without a response.
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
        std::io::Write::write_all(&mut stream, b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stream, &mut rest);
        assert!(
            rest.is_empty(),
            "Go {v}: /panic answered {:?}",
            String::from_utf8_lossy(&rest)
        );
        // The server survives it.
        assert_eq!(get("/health").0, 200, "Go {v}");
        // The HTTPS listener accepts TCP connections (TLS is exercised by the end-to-end tests).
        std::net::TcpStream::connect(("127.0.0.1", server.https_port)).unwrap();
    }
}

#[test]
fn listening_line_parsing() {
    assert_eq!(
        go_fixtures::parse_listening("LISTENING http=8080 https=8443\n"),
        Some((8080, 8443))
    );
    assert_eq!(go_fixtures::parse_listening("LISTENING http=8080"), None);
    assert_eq!(
        go_fixtures::parse_listening("listening http=1 https=2"),
        None
    );
    assert_eq!(
        go_fixtures::parse_listening("LISTENING http=x https=2"),
        None
    );
}
