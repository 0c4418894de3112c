//! The emulator runs real rendered designs and their data ends up where the kernel's maths
//! says it must.

mod support;

use support::*;

/// Y = X · Wᵀ through the emulated design equals the same sums computed directly, bit for bit
/// (bf16 inputs, f32 sums in k order, one bf16 rounding).
#[test]
fn plain_matmul_matches_the_direct_product_bit_exactly() {
    let spec = spec("matmul", PLAIN_MATMUL);
    let emu = emulator(&spec, &design(&spec)).expect("the design loads");
    let (m, k, n) = (64, 128, 64);
    let x: Vec<f32> = noise(m * k, 1).iter().map(|v| f32_of(bf16(*v))).collect();
    let wt: Vec<f32> = noise(k * n, 2).iter().map(|v| f32_of(bf16(*v))).collect();
    let mut host = zero_host(&emu);
    let names: Vec<&str> = emu.host_args().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["x", "w", "y"]);
    put_bf16(&mut host[0], &x);
    put_bf16(&mut host[1], &wt);
    let report = run(&emu, &mut host).expect("runs");
    let y = get_bf16(&host[2]);
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for kk in 0..k {
                acc += x[i * k + kk] * wt[kk * n + j];
            }
            let want = f32_of(bf16(acc));
            assert_eq!(y[i * n + j].to_bits(), want.to_bits(), "y[{i},{j}]");
        }
    }
    assert!(report.estimate_us > 0.0);
    assert!(report.calls > 0);
}

/// Every entry of the project's kernel specs loads: parsed, its functions known, its
/// memories, FIFOs, links and transfers within the device's limits.
#[test]
fn every_kernel_spec_entry_loads() {
    let specs = kernel_spec::load_dir(&workspace().join("kernel-specs")).expect("specs");
    for s in &specs {
        if let Err(e) = emulator(s, &design(s)) {
            panic!("{}: {e}", s.name);
        }
    }
}

/// Every entry of the project's kernel specs runs one invocation to the end on zeros: no
/// deadlock, every transfer complete, every core back at the start of a call.
#[test]
fn every_kernel_spec_entry_runs_to_rest() {
    let specs = kernel_spec::load_dir(&workspace().join("kernel-specs")).expect("specs");
    let mut failures = Vec::new();
    for s in &specs {
        let t = std::time::Instant::now();
        let emu = emulator(s, &design(s)).expect("loads");
        let mut host = zero_host(&emu);
        match run(&emu, &mut host) {
            Ok(r) => eprintln!(
                "{:<32} {:>8.1} us estimated, {:>8} calls, queue {} ({:.2} s)",
                s.name,
                r.estimate_us,
                r.calls,
                r.max_queued_tasks,
                t.elapsed().as_secs_f64()
            ),
            Err(e) => failures.push(format!("{}: {e}", s.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
