//! Where the probes see a request end.
//!
//! A uprobe on a RET costs the traced service two traps: the breakpoint, then a single step of the
//! original instruction out of line, because the kernel does not emulate `ret`. On this project's
//! machines the single step was most of what the probes cost a service (docs/benchmarks.md
//! compares both placements: rows (b′) and (b)).
//!
//! So the request-end probe goes on the entry of the functions net/http calls once a handler has
//! returned, on the `push rbp` after their stack check, which the kernel emulates
//! (`probe_points::entry_offset`): one trap and no single step. They run on the handler's goroutine,
//! where the entry probe keyed the request:
//! - HTTP/1: `(*conn).serve` calls `(*response).finishRequest` after ServeHTTP returns.
//! - HTTP/2: the deferred function of `(*http2serverConn).runHandler` calls
//!   `(*http2responseWriter).handlerDone` after the handler returns (not after a panic: the panic
//!   probe keeps those requests).
//! - A hijacked HTTP/1 connection (a WebSocket upgrade) never reaches `finishRequest`: its request
//!   ends when the handler calls `(*response).Hijack` (even if that call fails, which a handler
//!   that hijacks at all rarely sees: the later finishRequest then counts as an end without entry).
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
/// The stand-alone HTTP/2 server (`http2.ConfigureServer`, h2c): its requests end in its own
/// `handlerDone`, whose writer the probes do not know.
pub const X_NET_H2_RUN_HANDLER_PREFIX: &str = "golang.org/x/net/http2.(*serverConn).runHandler";

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
    let chosen = choose(found, serves_http2, |caller, callee| {
        let code = function_bytes(elf, caller)?;
        Ok(probe_points::calls(caller.address, code, callee.address))
    })?;
    match chosen {
        Choice::AfterHandler(symbols) => Ok(RequestEnd::AfterHandler(
            symbols
                .iter()
                .map(|(name, symbol)| probe_function(elf, name, symbol))
                .collect::<Result<_, _>>()?,
        )),
        Choice::ServeHttpReturns(reason) => Ok(RequestEnd::ServeHttpReturns { reason }),
    }
}

/// `RequestEnd` before the functions are located in the file.
enum Choice {
    AfterHandler(Vec<(&'static str, FunctionSymbol)>),
    ServeHttpReturns(String),
}

/// `calls(caller, callee)`: whether the caller's code calls the callee directly (`Err`:
/// unreadable code).
fn choose(
    found: &FoundSymbols,
    serves_http2: bool,
    calls: impl Fn(&FunctionSymbol, &FunctionSymbol) -> Result<bool, String>,
) -> Result<Choice, String> {
    let (Some(finish), Some(serve)) = (found.finish_request, found.conn_serve) else {
        return Ok(Choice::ServeHttpReturns(format!(
            "{FINISH_REQUEST_SYMBOL} or {CONN_SERVE_SYMBOL} is not in the symbol table"
        )));
    };
    if !calls(&serve, &finish)? {
        return Ok(Choice::ServeHttpReturns(format!(
            "{CONN_SERVE_SYMBOL} does not call {FINISH_REQUEST_SYMBOL}"
        )));
    }
    if found.x_net_h2_server {
        return Ok(Choice::ServeHttpReturns(
            "the program also serves HTTP/2 with golang.org/x/net/http2, whose requests end \
             elsewhere"
                .into(),
        ));
    }
    let mut chosen = vec![(FINISH_REQUEST_SYMBOL, finish)];
    if serves_http2 {
        let Some((name, done)) = found.h2_handler_done else {
            return Ok(Choice::ServeHttpReturns(
                "HTTP/2's responseWriter.handlerDone is not in the symbol table".into(),
            ));
        };
        let mut called = false;
        for caller in &found.h2_run_handler {
            called = called || calls(caller, &done)?;
        }
        if !called {
            return Ok(Choice::ServeHttpReturns(format!(
                "no HTTP/2 runHandler function calls {name}"
            )));
        }
        chosen.push((name, done));
    }
    // Absent when nothing in the program can hijack a connection.
    if let Some(hijack) = found.hijack {
        chosen.push((HIJACK_SYMBOL, hijack));
    }
    Ok(Choice::AfterHandler(chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(address: u64) -> FunctionSymbol {
        FunctionSymbol { address, size: 16 }
    }

    /// A binary with every function.
    fn found() -> FoundSymbols {
        FoundSymbols {
            finish_request: Some(at(0x100)),
            conn_serve: Some(at(0x200)),
            h2_handler_done: Some((H2_HANDLER_DONE_SYMBOLS[0], at(0x300))),
            h2_run_handler: vec![at(0x400), at(0x500)],
            hijack: Some(at(0x600)),
            ..FoundSymbols::default()
        }
    }

    /// The names chosen, or why not; `calls` lists the (caller, callee) direct calls.
    fn decide(
        found: &FoundSymbols,
        serves_http2: bool,
        calls: &[(u64, u64)],
    ) -> Result<Vec<&'static str>, String> {
        let choice = choose(found, serves_http2, |caller, callee| {
            Ok(calls.contains(&(caller.address, callee.address)))
        });
        match choice.unwrap() {
            Choice::AfterHandler(chosen) => Ok(chosen.into_iter().map(|(name, _)| name).collect()),
            Choice::ServeHttpReturns(reason) => Err(reason),
        }
    }

    /// conn.serve calls finishRequest; the second runHandler function calls handlerDone.
    const CALLED: [(u64, u64); 2] = [(0x200, 0x100), (0x500, 0x300)];

    #[test]
    fn every_end_when_each_is_called_by_its_caller() {
        assert_eq!(
            decide(&found(), true, &CALLED).unwrap(),
            [
                FINISH_REQUEST_SYMBOL,
                H2_HANDLER_DONE_SYMBOLS[0],
                HIJACK_SYMBOL
            ]
        );
        // No HTTP/2 server: handlerDone is not needed, whether or not it is there.
        assert_eq!(
            decide(&found(), false, &CALLED[..1]).unwrap(),
            [FINISH_REQUEST_SYMBOL, HIJACK_SYMBOL]
        );
        let no_hijack = FoundSymbols {
            hijack: None,
            ..found()
        };
        assert_eq!(
            decide(&no_hijack, true, &CALLED).unwrap(),
            [FINISH_REQUEST_SYMBOL, H2_HANDLER_DONE_SYMBOLS[0]]
        );
    }

    #[test]
    fn rets_when_a_request_could_end_unseen() {
        // finishRequest inlined into conn.serve (its symbol kept for another caller).
        let reason = decide(&found(), true, &CALLED[1..]).unwrap_err();
        assert!(reason.contains("does not call"), "{reason}");
        // HTTP/2 served, but handlerDone inlined or renamed.
        let reason = decide(&found(), true, &CALLED[..1]).unwrap_err();
        assert!(reason.contains("runHandler"), "{reason}");
        let renamed = FoundSymbols {
            h2_handler_done: None,
            ..found()
        };
        assert!(decide(&renamed, true, &CALLED).is_err());
        let no_finish = FoundSymbols {
            finish_request: None,
            ..found()
        };
        assert!(decide(&no_finish, true, &CALLED).is_err());
        // HTTP/2 requests may be served by golang.org/x/net/http2 instead: only ServeHTTP's end
        // is common to all.
        let x_net = FoundSymbols {
            x_net_h2_server: true,
            ..found()
        };
        let reason = decide(&x_net, true, &CALLED).unwrap_err();
        assert!(reason.contains("golang.org/x/net/http2"), "{reason}");
    }
}
