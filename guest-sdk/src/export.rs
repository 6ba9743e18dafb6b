//! Glue between the WIT exports and a [`Plugin`] value.

use std::cell::{Cell, RefCell};
use std::thread::LocalKey;

use crate::bindings::http_autoinstrument::plugin::types::{Edits as RawEdits, SpanBatch};
use crate::{Batch, Edits, Plugin};

/// Exports `$plugin` (a type implementing [`Plugin`]) as the component's span processor.
///
/// Expands to nothing on native targets, where the plugin's logic is unit-tested (component
/// export names are not valid native symbol names).
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static PLUGIN: ::std::cell::RefCell<Option<$plugin>> =
                    const { ::std::cell::RefCell::new(None) };
            }

            struct Export;

            impl $crate::bindings::exports::http_autoinstrument::plugin::processor::Guest for Export {
                fn init(settings: String) -> Result<(), String> {
                    $crate::__private::init::<$plugin>(&PLUGIN, &settings)
                }

                fn process(
                    batch: $crate::bindings::http_autoinstrument::plugin::types::SpanBatch,
                ) -> Result<$crate::bindings::http_autoinstrument::plugin::types::Edits, String> {
                    $crate::__private::process::<$plugin>(&PLUGIN, batch)
                }
            }

            $crate::bindings::__export_span_processor!(Export with_types_in $crate::bindings);
        };
    };
}

pub fn init<P: Plugin>(
    slot: &'static LocalKey<RefCell<Option<P>>>,
    settings: &str,
) -> Result<(), String> {
    let plugin = P::init(settings)?;
    slot.with(|s| *s.borrow_mut() = Some(plugin));
    Ok(())
}

thread_local! {
    /// Sizes of the last batch's edits: the next batch starts with that much room, so the
    /// edit buffers are allocated once per call instead of growing by doubling.
    static LAST_EDITS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

pub fn process<P: Plugin>(
    slot: &'static LocalKey<RefCell<Option<P>>>,
    batch: SpanBatch,
) -> Result<RawEdits, String> {
    slot.with(|s| {
        let mut guard = s.borrow_mut();
        let plugin = guard
            .as_mut()
            .ok_or_else(|| "process called before init".to_string())?;
        let batch = Batch::from_host(batch);
        let (ops, text) = LAST_EDITS.with(Cell::get);
        let mut edits = Edits::with_capacity(ops, text);
        plugin.process(&batch, &mut edits)?;
        // Capped: one huge batch must not make every later call reserve as much.
        LAST_EDITS.with(|c| c.set((edits.len().min(1 << 16), edits.text_len().min(1 << 20))));
        Ok(edits.into_raw())
    })
}
