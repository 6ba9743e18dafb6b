//! Where in a function's code the probes go.
//!
//! Returns: Go code must not be traced with uretprobes (goroutine stacks move). A uprobe on a RET
//! works but costs a single step per hit, so a request's end is normally probed elsewhere
//! (`request_end`); ServeHTTP's RETs are the fallback.
//!
//! Entry: a uprobe on an instruction the kernel cannot emulate makes it single-step the original
//! instruction out of line, a second trap. Go functions open with a stack-bound check (`cmp rsp,
//! [r14+0x10]` then `jbe` to the stack-growth path) and then `push rbp`; the kernel emulates both
//! conditional jumps and `push` (Linux 6.1 and later). The check runs twice for a call whose
//! goroutine's stack must grow (the growth path starts the function again from its first byte),
//! the `push` once. So the entry probe goes on that `push`: one trap per call, and nothing before
//! it changes a register the probe reads.

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

/// Offset, relative to the function start, for the entry probe: the `push rbp` that follows Go's
/// stack-bound check when the function opens with one (else the check's conditional jump, or 0,
/// the first byte, without a check). The kernel emulates both `push` and `jcc` (no single step),
/// but only the instruction after the check runs once per call: when the goroutine's stack must
/// grow, Go runs the check, grows the stack and starts the function again from the top.
pub fn entry_offset(address: u64, code: &[u8]) -> u64 {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut checks_stack = false;
    // The check is at most three instructions (`lea r12, [rsp-N]; cmp r12, [r14+0x10]; jbe`).
    for _ in 0..3 {
        if !decoder.can_decode() {
            break;
        }
        let instruction = decoder.decode();
        if is_conditional_jump(&instruction) {
            if !checks_stack {
                return 0;
            }
            let next = decoder.can_decode().then(|| decoder.decode());
            return match next {
                Some(push) if is_push_of_frame_pointer(&push) => push.ip() - address,
                _ => instruction.ip() - address,
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

/// `push rbp`: Go's frame setup, first after the stack check in a function with a frame.
fn is_push_of_frame_pointer(instruction: &Instruction) -> bool {
    instruction.mnemonic() == Mnemonic::Push
        && instruction.op0_kind() == OpKind::Register
        && instruction.op0_register() == Register::RBP
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
    fn entry_goes_after_the_stack_check() {
        // Go 1.24's ServeHTTP: cmp rsp, [r14+0x10] ; jbe +0x8a ; push rbp
        let small_frame = [
            0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x8a, 0x00, 0x00, 0x00, 0x55,
        ];
        assert_eq!(entry_offset(0x63f060, &small_frame), 10);
        // lea r12, [rsp-0x58] ; cmp r12, [r14+0x10] ; jbe +0x100 ; push rbp
        let larger_frame = [
            0x4c, 0x8d, 0x64, 0x24, 0xa8, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x00, 0x01, 0x00,
            0x00, 0x55,
        ];
        assert_eq!(entry_offset(0x401000, &larger_frame), 15);
        // Without the `push rbp` after it (code cut short, or another instruction): the jump.
        assert_eq!(entry_offset(0x401000, &larger_frame[..15]), 9);
        let mut other = larger_frame;
        other[15] = 0x53; // push rbx
        assert_eq!(entry_offset(0x401000, &other), 9);
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
