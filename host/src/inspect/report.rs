//! `http-autoinstrument inspect BINARY`: what the agent finds in a binary, for users who want to
//! know why a service is or is not traced.
use std::fmt::Write as _;
use std::path::Path;

use http_autoinstrument_common::{GoOffsets, ABSENT};

use super::{dwarf_layouts, inspect_binary, Function, GoBinary, RequestEnd};

fn function(out: &mut String, label: &str, f: &Function) {
    let _ = write!(
        out,
        "{label}: {} at {:#x} ({} bytes, file offset {:#x}), probe at +{:#x}",
        f.name, f.address, f.size, f.file_offset, f.entry_offset,
    );
    let returns: Vec<String> = f
        .return_offsets
        .iter()
        .map(|o| format!("+{o:#x}"))
        .collect();
    if !returns.is_empty() {
        let _ = write!(out, ", RET at {}", returns.join(" "));
    }
    out.push('\n');
}

fn offsets(out: &mut String, o: &GoOffsets) {
    // Debug output lists every field by name; absent ones are spelled out.
    let text = format!("{o:#?}");
    for line in text.lines().skip(1) {
        let line = line.trim().trim_end_matches(',');
        let Some((name, value)) = line.split_once(": ") else {
            continue;
        };
        let value: u64 = value.parse().unwrap_or(0);
        if value == ABSENT {
            let _ = writeln!(out, "  {name:<28} absent");
        } else {
            let _ = writeln!(out, "  {name:<28} {value:#x}");
        }
    }
}

pub fn report(binary: &GoBinary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} ({})",
        binary.path.display(),
        binary.go_version,
        if binary.is_pie {
            "PIE"
        } else {
            "fixed address"
        }
    );
    let sources = &binary.sources;
    let _ = writeln!(out, "go version from: {}", sources.version);
    let _ = writeln!(out, "functions from: {}", sources.functions);
    let _ = writeln!(out, "struct offsets from: {}", sources.layouts);
    for (name, source) in [
        "response writer",
        "HTTP/2 writer",
        "*tls.Conn",
        "*net.TCPConn",
    ]
    .iter()
    .zip(&sources.itabs)
    {
        let _ = writeln!(out, "itab of {name} from: {source}");
    }
    function(&mut out, "entry probe", &binary.serve_http);
    match &binary.request_end {
        RequestEnd::AfterHandler(functions) => {
            for f in functions {
                function(&mut out, "request-end probe", f);
            }
        }
        RequestEnd::ServeHttpReturns { reason } => {
            let _ = writeln!(out, "request-end probes: on ServeHTTP's RETs ({reason})");
        }
    }
    match &binary.gopanic {
        Some(f) => function(&mut out, "panic probe", f),
        None => out.push_str("panic probe: runtime.gopanic not found\n"),
    }
    match &binary.round_trip {
        Some(f) => function(&mut out, "client call probes", f),
        None => out.push_str("client call probes: none (no net/http client in the program)\n"),
    }
    if let Some(f) = &binary.x_net_round_trip {
        function(&mut out, "client call probes", f);
    }
    match &binary.header_write {
        Some(f) => {
            let _ = writeln!(
                out,
                "traceparent probe (traces.propagation): {}+{:#x}, its call of Header.writeSubset",
                f.name, f.entry_offset
            );
        }
        None => out.push_str("traceparent probe: none (no HTTP/1.x request writer found)\n"),
    }
    match &binary.h2_header_write {
        Some(f) => h2_write_line(&mut out, f),
        None => out.push_str("HTTP/2 traceparent probe: none (no HTTP/2 request writer found)\n"),
    }
    if let Some(f) = &binary.x_net_h2_header_write {
        h2_write_line(&mut out, f);
    }
    out.push_str("offsets and addresses read by the probes:\n");
    offsets(&mut out, &binary.offsets);
    out
}

fn h2_write_line(out: &mut String, f: &Function) {
    let _ = writeln!(
        out,
        "HTTP/2 traceparent probe (traces.propagation): {}+{:#x}, its call of bufio.(*Writer).Flush",
        f.name, f.entry_offset
    );
}

/// Prints the report of `path`, or returns why the agent cannot trace it.
pub fn print_report(path: &Path) -> anyhow::Result<()> {
    let binary = inspect_binary(path)?;
    print!("{}", report(&binary));
    Ok(())
}

/// Prints the layouts the probes read from the binary's DWARF, one JSON object
/// (`{"struct": {"field": offset}}`), as `scripts/gen-go-layouts.py` reads them.
pub fn print_layouts(path: &Path) -> anyhow::Result<()> {
    let data =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let layouts = dwarf_layouts(path, &data)?;
    let object: serde_json::Map<String, serde_json::Value> = layouts
        .into_iter()
        .map(|(name, fields)| {
            let fields: serde_json::Map<String, serde_json::Value> =
                fields.into_iter().map(|(f, o)| (f, o.into())).collect();
            (name, fields.into())
        })
        .collect();
    println!("{}", serde_json::Value::Object(object));
    Ok(())
}
