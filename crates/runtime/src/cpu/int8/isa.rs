//! The instruction sets of the int8 microkernels, detected once at run time, and the portable
//! kernel every other one must agree with bit for bit.

use std::sync::OnceLock;

/// An i32 tile as the microkernels write it: up to 8 rows × 32 columns (two panels).
pub(crate) type Acc = [[i32; 32]; MAX_ROWS];

/// Most rows of any microkernel.
pub(crate) const MAX_ROWS: usize = 8;

/// Channels per weight panel, and k values per group (one i32 lane of a dot-product
/// instruction).
pub(crate) const PANEL: usize = 16;
pub(crate) const GROUP: usize = 4;

/// Operands of one microkernel call: `rows` activation rows (stride `lda` bytes) against
/// `panels` consecutive weight panels (stride `panel_stride` bytes), over `groups` groups of 4.
#[derive(Clone, Copy)]
pub(crate) struct Operands {
    pub a: *const u8,
    pub lda: usize,
    pub w: *const i8,
    pub panel_stride: usize,
    pub groups: usize,
}

/// An instruction set of the int8 kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust (any CPU).
    Scalar,
    /// `vpmaddubsw` + `vpmaddwd` on 256-bit vectors, with the sign trick
    /// (|a| × sign(a)·w: pair sums stay below i16 saturation).
    Avx2,
    /// `vpdpbusd` on 256-bit vectors (VEX encoding: Alder Lake, Zen 5 and later).
    AvxVnni,
    /// `vpdpbusd` on 512-bit vectors.
    Avx512Vnni,
}

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx-vnni",
            Isa::Avx512Vnni => "avx512-vnni",
        }
    }

    /// Whether this CPU runs the kernels of `self`.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Isa::Scalar => true,
                Isa::Avx2 => has!("avx2"),
                Isa::AvxVnni => has!("avx2") && has!("avxvnni"),
                Isa::Avx512Vnni => has!("avx512f") && has!("avx512bw") && has!("avx512vnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Isa::Scalar
        }
    }

    /// The fastest instruction set of this CPU (detected once).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            Isa::ALL
                .into_iter()
                .rev()
                .find(|i| i.available())
                .unwrap_or(Isa::Scalar)
        })
    }

    /// Every instruction set this CPU runs, slowest first.
    pub fn all_available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.available()).collect()
    }

    /// Rows per microkernel call.
    pub(crate) fn rows(self) -> usize {
        match self {
            Isa::Avx512Vnni => 8,
            Isa::AvxVnni => 6,
            Isa::Avx2 | Isa::Scalar => 4,
        }
    }

    /// Weight panels per microkernel call.
    pub(crate) fn panels(self) -> usize {
        match self {
            Isa::Avx512Vnni => 2,
            _ => 1,
        }
    }

    /// Activations are stored offset by +128 (unsigned, as `vpdpbusd` reads them); the products
    /// are corrected by 128 × the channel's weight sum.
    pub(crate) fn offset(self) -> bool {
        matches!(self, Isa::AvxVnni | Isa::Avx512Vnni)
    }

    /// `acc[r][j]` = Σ a·w over rows `r < rows` and channels `j < 16 · panels` (raw sums: the
    /// caller removes the activation offset).
    ///
    /// # Safety
    /// `self` must be available; `op` must describe valid memory; `rows <= self.rows()`,
    /// `panels <= self.panels()`.
    #[inline]
    pub(crate) unsafe fn kernel(self, rows: usize, panels: usize, op: Operands, acc: &mut Acc) {
        debug_assert!(rows >= 1 && rows <= self.rows() && panels >= 1 && panels <= self.panels());
        match self {
            Isa::Scalar => scalar(rows, panels, op, acc),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => super::x86::avx2(rows, op, acc),
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => super::x86::avx_vnni(rows, op, acc),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => super::x86::avx512_vnni(rows, panels, op, acc),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("only the scalar kernel exists on this architecture"),
        }
    }
}

/// The reference kernel: signed activations, plain i32 arithmetic.
///
/// # Safety
/// As [`Isa::kernel`].
unsafe fn scalar(rows: usize, panels: usize, op: Operands, acc: &mut Acc) {
    for (r, acc_row) in acc.iter_mut().enumerate().take(rows) {
        let a = std::slice::from_raw_parts(op.a.add(r * op.lda), op.groups * GROUP);
        for p in 0..panels {
            let w = std::slice::from_raw_parts(
                op.w.add(p * op.panel_stride),
                op.groups * GROUP * PANEL,
            );
            let mut sums = [0i32; PANEL];
            for (ag, wg) in a.chunks_exact(GROUP).zip(w.chunks_exact(GROUP * PANEL)) {
                for (s, wc) in sums.iter_mut().zip(wg.chunks_exact(GROUP)) {
                    for (&av, &wv) in ag.iter().zip(wc) {
                        *s += i32::from(av as i8) * i32::from(wv);
                    }
                }
            }
            acc_row[p * PANEL..(p + 1) * PANEL].copy_from_slice(&sums);
        }
    }
}
