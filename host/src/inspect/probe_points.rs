//! Where in a function's code the probes go.
//!
//! Returns: Go code must not be traced with uretprobes (goroutine stacks move). A uprobe on a RET
//! works but costs a single step per hit, so a request's end is normally probed elsewhere
//! (`request_end`); ServeHTTP's RETs are the fallback.
//!
//! Entry: a uprobe on an instruction the kernel cannot emulate makes it single-step the original
//! instruction out of line, a second trap. Go functions open with a stack-bound check (`cmp rsp,
//! [r14+0x10]` then `jbe` to the stack-growth path), and the kernel emulates conditional jumps. So
//! the entry probe goes on that jump: nothing before it changes a register the probe reads, every
//! call passes it exactly once (the stack-growth path restarts the function from its first byte,
//! as it would for a probe there), and it costs a traced service less per request
//! (docs/benchmarks.md).

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

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

/// Whether `code` (the bytes of a function at virtual address `address`) calls `target` directly.
pub fn calls(address: u64, code: &[u8], target: u64) -> bool {
    first_call(address, code, target).is_some()
}

/// Offset, relative to the function start, of the first direct call to `target` in `code`.
/// A uprobe there costs one trap: the kernel emulates `call rel32`.
pub fn first_call(address: u64, code: &[u8], target: u64) -> Option<u64> {
    Decoder::with_ip(64, code, address, DecoderOptions::NONE)
        .into_iter()
        .find(|i| {
            i.mnemonic() == Mnemonic::Call
                && i.op0_kind() == OpKind::NearBranch64
                && i.near_branch_target() == target
        })
        .map(|i| i.ip() - address)
}

/// `g.stackguard0`, what Go's prologue compares the stack pointer with (R14 holds `g`).
const STACKGUARD0: u64 = 0x10;

/// Offset, relative to the function start, for the entry probe: the conditional jump of Go's
/// stack-bound check when the function opens with one, else 0 (the first byte).
pub fn entry_offset(address: u64, code: &[u8]) -> u64 {
    let decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut checks_stack = false;
    // The check is at most three instructions (`lea r12, [rsp-N]; cmp r12, [r14+0x10]; jbe`).
    for instruction in decoder.into_iter().take(3) {
        if is_conditional_jump(&instruction) {
            return if checks_stack {
                instruction.ip() - address
            } else {
                0
            };
        }
        if is_stack_bound_compare(&instruction) {
            checks_stack = true;
        } else if !writes_only_r12(&instruction) {
            break;
        }
    }
    0
}

/// `jcc`: branches the kernel emulates (as it does `jmp` and `call`, but not `ret`).
fn is_conditional_jump(instruction: &Instruction) -> bool {
    use Mnemonic::*;
    matches!(
        instruction.mnemonic(),
        Ja | Jae | Jb | Jbe | Je | Jne | Jg | Jge | Jl | Jle | Jo | Jno | Jp | Jnp | Js | Jns
    )
}

/// `cmp REG, [r14+0x10]`: compares with the goroutine's stack guard, changing only flags.
fn is_stack_bound_compare(instruction: &Instruction) -> bool {
    instruction.mnemonic() == Mnemonic::Cmp
        && (0..instruction.op_count()).any(|i| instruction.op_kind(i) == OpKind::Memory)
        && instruction.memory_base() == Register::R14
        && instruction.memory_index() == Register::None
        && instruction.memory_displacement64() == STACKGUARD0
}

/// `lea r12, ...` or `mov r12, rsp`: Go's scratch register for a large frame's bound, which the
/// probe does not read.
fn writes_only_r12(instruction: &Instruction) -> bool {
    matches!(instruction.mnemonic(), Mnemonic::Lea | Mnemonic::Mov)
        && instruction.op0_kind() == OpKind::Register
        && instruction.op0_register() == Register::R12
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
    fn finds_direct_calls_only() {
        // call +0x10 (to 0x1015) ; call rdx ; ret
        let code = [0xe8, 0x10, 0x00, 0x00, 0x00, 0xff, 0xd2, 0xc3];
        assert!(calls(0x1000, &code, 0x1015));
        assert!(!calls(0x1000, &code, 0x1016));
        // jmp +0x10: a jump is not a call
        assert!(!calls(0x1000, &[0xe9, 0x10, 0x00, 0x00, 0x00], 0x1015));
    }

    #[test]
    fn no_ret_gives_empty() {
        assert!(return_offsets(0, &[0x90, 0x90, 0xcc]).is_empty());
        assert!(return_offsets(0, &[]).is_empty());
    }

    #[test]
    fn entry_goes_on_the_stack_checks_jump() {
        // Go 1.24's ServeHTTP: cmp rsp, [r14+0x10] ; jbe +0x8a ; push rbp
        let small_frame = [
            0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x8a, 0x00, 0x00, 0x00, 0x55,
        ];
        assert_eq!(entry_offset(0x63f060, &small_frame), 4);
        // lea r12, [rsp-0x58] ; cmp r12, [r14+0x10] ; jbe +0x100
        let larger_frame = [
            0x4c, 0x8d, 0x64, 0x24, 0xa8, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x00, 0x01, 0x00,
            0x00,
        ];
        assert_eq!(entry_offset(0x401000, &larger_frame), 9);
    }

    #[test]
    fn entry_stays_on_the_first_byte_without_a_stack_check() {
        // push rbp ; mov rbp, rsp ; (no stack check: a NOSPLIT function)
        assert_eq!(entry_offset(0, &[0x55, 0x48, 0x89, 0xe5, 0x74, 0x02]), 0);
        // test rax, rax ; je : a branch, but not the stack check (it may be a loop's head)
        assert_eq!(entry_offset(0, &[0x48, 0x85, 0xc0, 0x74, 0x02, 0xc3]), 0);
        // cmp rsp, [r14+0x18] ; jbe : a different field of g
        assert_eq!(
            entry_offset(
                0,
                &[0x49, 0x3b, 0x66, 0x18, 0x0f, 0x86, 0x00, 0x00, 0x00, 0x00]
            ),
            0
        );
        // mov rax, rbx ; cmp rsp, [r14+0x10] ; jbe : something before the check changes a register
        assert_eq!(
            entry_offset(
                0,
                &[0x48, 0x89, 0xd8, 0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x00, 0x00, 0x00, 0x00]
            ),
            0
        );
        assert_eq!(entry_offset(0, &[]), 0);
    }
}
