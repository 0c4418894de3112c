//! Rendered designs with one mistake each, of the kinds this field is known for. Every one is
//! caught, with the op's line in the error. (aie-opt at mlir-aie c668d2cb accepts several of
//! them: an acquire above the depth, a transfer past its host buffer, link pieces that do not
//! match their FIFOs.)

mod support;

use support::*;

/// The design of the plain matmul with `from` replaced by `to` at its first occurrence, and the
/// line (1-based) of that occurrence.
fn mutated(from: &str, to: &str) -> (kernel_spec::KernelSpec, String, usize) {
    let spec = spec("matmul", PLAIN_MATMUL);
    let text = design(&spec);
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("`{from}` is in the design"));
    let line = text[..at].matches('\n').count() + 1;
    let out = format!("{}{}{}", &text[..at], to, &text[at + from.len()..]);
    (spec, out, line)
}

/// Loads and runs the mutated design on zeros; returns the error.
fn error_of(spec: &kernel_spec::KernelSpec, text: &str) -> aie_emu::EmuError {
    let emu = match emulator(spec, text) {
        Ok(e) => e,
        Err(e) => return e,
    };
    let mut host = zero_host(&emu);
    run(&emu, &mut host).expect_err("the mistake is caught")
}

fn assert_caught(from: &str, to: &str, words: &[&str]) -> aie_emu::EmuError {
    let (spec, text, line) = mutated(from, to);
    let e = error_of(&spec, &text);
    assert_eq!(e.line, Some(line), "the error names the mutated op: {e}");
    for w in words {
        assert!(e.message.contains(w), "`{w}` in: {e}");
    }
    e
}

#[test]
fn unmutated_design_runs() {
    let spec = spec("matmul", PLAIN_MATMUL);
    let emu = emulator(&spec, &design(&spec)).expect("loads");
    let mut host = zero_host(&emu);
    run(&emu, &mut host).expect("runs clean");
}

#[test]
fn wrong_stride_in_a_layout_transform() {
    assert_caught(
        "<size = 4, stride = 8>, <size = 4, stride = 32>",
        "<size = 4, stride = 8>, <size = 4, stride = 16>",
        &["@A_0_0", "dimensionsToStream", "twice"],
    );
}

#[test]
fn swapped_join_offsets() {
    assert_caught("([0, 256] [])", "([256, 0] [])", &["do not increase"]);
}

#[test]
fn link_piece_that_does_not_match_its_fifo() {
    // A buffer one tile too small: the core-side A FIFO holds half a tile. The link that
    // feeds it is named.
    let (spec, text, _) = mutated(
        "{%core_0_0}, 2 : i32) : !aie.objectfifo<memref<16x32xbf16>>",
        "{%core_0_0}, 2 : i32) : !aie.objectfifo<memref<8x32xbf16>>",
    );
    let link = text.find("aie.objectfifo.link [@A_in_0]").expect("present");
    let line = text[..link].matches('\n').count() + 1;
    let e = error_of(&spec, &text);
    assert_eq!(e.line, Some(line), "{e}");
    assert!(e.message.contains("@A_0_0 objects hold 256"), "{e}");
}

#[test]
fn acquire_of_more_objects_than_the_depth() {
    assert_caught(
        "aie.objectfifo.acquire @A_0_0(Consume, 1)",
        "aie.objectfifo.acquire @A_0_0(Consume, 3)",
        &["acquires 3", "@A_0_0", "depth"],
    );
}

#[test]
fn fifo_too_shallow_for_what_the_core_holds() {
    // The core holds 2 objects of B at once, but B was made 1 deep.
    let (spec, text, _) = mutated(
        "aie.objectfifo.acquire @B_0(Consume, 1)",
        "aie.objectfifo.acquire @B_0(Consume, 2)",
    );
    let at = text
        .find("aie.objectfifo.acquire @B_0(Consume, 2)")
        .expect("present");
    let line = text[..at].matches('\n').count() + 1;
    let text = text.replacen(
        "{%core_0_0, %core_0_1}, 2 : i32)",
        "{%core_0_0, %core_0_1}, 1 : i32)",
        1,
    );
    let e = error_of(&spec, &text);
    assert_eq!(e.line, Some(line), "{e}");
    assert!(e.message.contains("holds 1"), "{e}");
}

#[test]
fn missing_release() {
    let (spec, text, _) = mutated(
        "            aie.objectfifo.release @A_0_0(Consume, 1)\n",
        "",
    );
    let acquire = text
        .find("aie.objectfifo.acquire @A_0_0(Consume, 1)")
        .expect("present");
    let line = text[..acquire].matches('\n').count() + 1;
    let e = error_of(&spec, &text);
    assert_eq!(
        e.line,
        Some(line),
        "the error names the acquire that finds the object still held: {e}"
    );
    assert!(e.message.contains("still holding"), "{e}");
}

#[test]
fn runtime_sequence_one_tile_short() {
    // Column 0's A transfer sends 3 of the 4 k-tiles of each row block: the cores wait for the
    // rest while the host waits for their output.
    let (spec, text, _) = mutated(
        "%x[0, 0, 0, 0][2, 4, 32, 32][0, 32, 128, 1]) {id = 1 : i64, metadata = @A_in_0}",
        "%x[0, 0, 0, 0][2, 3, 32, 32][0, 32, 128, 1]) {id = 1 : i64, metadata = @A_in_0}",
    );
    let wait = text
        .find("aiex.npu.dma_wait {symbol = @C_out_0}")
        .expect("present");
    let line = text[..wait].matches('\n').count() + 1;
    let e = error_of(&spec, &text);
    assert_eq!(e.line, Some(line), "{e}");
    assert!(e.message.contains("deadlock"), "{e}");
    assert!(e.message.contains("@A_0_0"), "the stuck core is named: {e}");
}

#[test]
fn transfer_past_the_end_of_its_host_buffer() {
    assert_caught(
        "%y[0, 0, 0, 16][1, 2, 32, 16]",
        "%y[0, 0, 0, 2080][1, 2, 32, 16]",
        &["past the end", "%y"],
    );
}

#[test]
fn reused_buffer_descriptor_while_in_flight() {
    assert_caught(
        "{id = 2 : i64, metadata = @B_in_0}",
        "{id = 1 : i64, metadata = @B_in_0}",
        &["buffer descriptor 1", "still running"],
    );
}

#[test]
fn buffer_descriptor_id_out_of_range() {
    assert_caught(
        "{id = 2 : i64, metadata = @B_in_0}",
        "{id = 16 : i64, metadata = @B_in_0}",
        &["id 16"],
    );
}

#[test]
fn call_of_a_function_the_kernel_does_not_define() {
    assert_caught(
        "func.func private @zero_acc(",
        "func.func private @zero_accumulator(",
        &["@zero_accumulator"],
    );
}

#[test]
fn function_declared_with_the_wrong_types() {
    assert_caught(
        "func.func private @zero_acc(memref<16x16xf32>)",
        "func.func private @zero_acc(memref<16x16xbf16>)",
        &["@zero_acc", "declared"],
    );
}

#[test]
fn wait_on_a_transfer_that_issues_no_token() {
    let (spec, text, _) = mutated(
        "aiex.npu.dma_wait {symbol = @C_out_0}",
        "aiex.npu.dma_wait {symbol = @A_in_0}",
    );
    let e = error_of(&spec, &text);
    assert!(
        e.message.contains("deadlock") && e.message.contains("issue_token"),
        "{e}"
    );
}

#[test]
fn unknown_op_is_an_error_not_a_skip() {
    assert_caught(
        "aiex.npu.dma_wait {symbol = @C_out_0}",
        "aiex.npu.sync {symbol = @C_out_0}",
        &["aiex.npu.sync"],
    );
}

#[test]
fn more_transfers_than_a_shim_task_queue_holds() {
    // Five transfers on column 0's B channel before any wait: the fifth would be dropped.
    let (spec, text, _) = mutated(
        "{id = 2 : i64, metadata = @B_in_0}",
        "{id = 2 : i64, metadata = @B_in_0}",
    );
    let b = "      aiex.npu.dma_memcpy_nd(%w[0, 0, 0, 0][2, 4, 32, 16][32, 2048, 64, 1]) {id = 2 : i64, metadata = @B_in_0} : memref<8192xbf16>\n";
    let extra: String = (3..7)
        .map(|i| b.replace("id = 2", &format!("id = {}", i + 4)))
        .collect();
    let text = text.replacen(b, &format!("{b}{extra}"), 1);
    let at = text.find("id = 10 : i64").expect("the fifth transfer");
    let line = text[..at].matches('\n').count() + 1;
    let e = error_of(&spec, &text);
    assert_eq!(e.line, Some(line), "{e}");
    assert!(e.message.contains("task queue holds 4"), "{e}");
}
