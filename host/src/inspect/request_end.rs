//! Where the probes see a request end.
//!
//! A uprobe on a RET costs the traced service two traps: the breakpoint, then a single step of the
//! original instruction out of line, because the kernel does not emulate `ret`. On this project's
//! machines the single step was most of what the probes cost a service: with count-only probes
//! over HTTP, moving the request-end probe from ServeHTTP's RET to the emulated jump below took
//! the service from 40,800 to 52,600 requests/s on one core (17.2 us per request without probes,
//! 24.5 us with them on the RET, 19.0 us with them here).
//!
//! So the request-end probe goes on the entry of the functions net/http calls once a handler has
//! returned, on the conditional jump of their stack check, which the kernel emulates
//! (`probe_points::entry_offset`): one trap and no single step. They run on the handler's goroutine,
//! where the entry probe keyed the request:
//! - HTTP/1: `(*conn).serve` calls `(*response).finishRequest` after ServeHTTP returns.
//! - HTTP/2: the deferred function of `(*http2serverConn).runHandler` calls
//!   `(*http2responseWriter).handlerDone` after the handler returns (not after a panic: the panic
//!   probe keeps those requests).
//! - A hijacked HTTP/1 connection (a WebSocket upgrade) never reaches `finishRequest`: its request
//!   ends when the handler calls `(*response).Hijack`.
//!
//! Go can inline a function into a caller and keep its symbol for other callers, so a function is
//! used only where its caller's code calls it; otherwise the probes go on ServeHTTP's RETs, right
//! for every binary, only slower.
use std::fmt;

use super::symbols::{function_bytes, FoundSymbols, FunctionSymbol};
use super::{probe_function, probe_points, Elf, Function};

pub const FINISH_REQUEST_SYMBOL: &str = "net/http.(*response).finishRequest";
pub const CONN_SERVE_SYMBOL: &str = "net/http.(*conn).serve";
/// HTTP/2's, bundled into net/http up to Go 1.26 and in its own package from Go 1.27.
pub const H2_HANDLER_DONE_SYMBOLS: [&str; 2] = [
    "net/http.(*http2responseWriter).handlerDone",
    "net/http/internal/http2.(*responseWriter).handlerDone",
];
/// `runHandler` itself and its closures (`.func1`, ...), one of which calls `handlerDone`.
pub const H2_RUN_HANDLER_PREFIXES: [&str; 2] = [
    "net/http.(*http2serverConn).runHandler",
    "net/http/internal/http2.(*serverConn).runHandler",
];
pub const HIJACK_SYMBOL: &str = "net/http.(*response).Hijack";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestEnd {
    /// On entry to each of these functions (at their `entry_offset`).
    AfterHandler(Vec<Function>),
    /// On every RET of ServeHTTP, because the functions above cannot be used (`reason`).
    ServeHttpReturns { reason: String },
}

impl fmt::Display for RequestEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestEnd::AfterHandler(functions) => {
                let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
                write!(f, "entry of {}", names.join(", "))
            }
            RequestEnd::ServeHttpReturns { reason } => {
                write!(f, "RETs of ServeHTTP ({reason})")
            }
        }
    }
}

/// Decides where the request-end probe goes. `serves_http2`: the binary has an HTTP/2 response
/// writer (its itab), so HTTP/2 requests need their own end. `Err` only for a damaged file.
pub fn locate(
    elf: &Elf<'_>,
    found: &FoundSymbols,
    serves_http2: bool,
) -> Result<RequestEnd, String> {
    let returns = |reason: String| Ok(RequestEnd::ServeHttpReturns { reason });
    let (Some(finish), Some(serve)) = (found.finish_request, found.conn_serve) else {
        return returns(format!(
            "{FINISH_REQUEST_SYMBOL} or {CONN_SERVE_SYMBOL} is not in the symbol table"
        ));
    };
    if !calls(elf, &serve, &finish)? {
        return returns(format!(
            "{CONN_SERVE_SYMBOL} does not call {FINISH_REQUEST_SYMBOL}"
        ));
    }
    let mut functions = vec![probe_function(elf, FINISH_REQUEST_SYMBOL, &finish)?];
    if serves_http2 {
        let Some((name, done)) = &found.h2_handler_done else {
            return returns(
                "HTTP/2's responseWriter.handlerDone is not in the symbol table".into(),
            );
        };
        let mut called = false;
        for caller in &found.h2_run_handler {
            called = called || calls(elf, caller, done)?;
        }
        if !called {
            return returns(format!("no HTTP/2 runHandler function calls {name}"));
        }
        functions.push(probe_function(elf, name, done)?);
    }
    // Absent when nothing in the program can hijack a connection.
    if let Some(hijack) = found.hijack {
        functions.push(probe_function(elf, HIJACK_SYMBOL, &hijack)?);
    }
    Ok(RequestEnd::AfterHandler(functions))
}

fn calls(elf: &Elf<'_>, caller: &FunctionSymbol, callee: &FunctionSymbol) -> Result<bool, String> {
    let code = function_bytes(elf, caller)?;
    Ok(probe_points::calls(caller.address, code, callee.address))
}
