//! Host bindings for `wit/plugin.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "span-processor",
});

pub use self::http_autoinstrument::plugin::host::Level;
pub use self::http_autoinstrument::plugin::types;
