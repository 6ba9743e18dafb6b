//! RET instructions of a function: Go code must not be traced with uretprobes (goroutine stacks
//! move), so the agent puts a uprobe on every RET instead.

use iced_x86::{Decoder, DecoderOptions, Mnemonic};

/// Offsets, relative to the function start, of every `ret` in `code` (the function's bytes,
/// starting at virtual address `address`). Decoding follows instruction boundaries from the
/// start, so bytes that merely equal 0xC3 inside other instructions are not reported.
pub fn return_offsets(address: u64, code: &[u8]) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut offsets = Vec::new();
    for instruction in &mut decoder {
        if instruction.mnemonic() == Mnemonic::Ret {
            offsets.push(instruction.ip() - address);
        }
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rets_and_ignores_c3_inside_instructions() {
        // mov eax, 0xc3c3c3c3 ; ret ; int3 ; ret 8
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xcc, 0xc2, 0x08, 0x00];
        assert_eq!(return_offsets(0x401000, &code), vec![5, 7]);
    }

    #[test]
    fn no_ret_gives_empty() {
        assert!(return_offsets(0, &[0x90, 0x90, 0xcc]).is_empty());
        assert!(return_offsets(0, &[]).is_empty());
    }
}
