//! One kernel invocation as the family drivers see it: the host buffers of the design's
//! runtime-sequence arguments (bytes), which of them the host wrote, and a way to run.
//!
//! The XRT backend implements it over mapped buffer objects (written buffers are synced to the
//! device), the emulator backend over plain vectors ([`BufferSet`]). Weights are loaded as an
//! [`Image`] packed once per layer: a buffer that still holds the image is not rewritten.

use std::ops::AddAssign;
use std::sync::Arc;
use std::time::Duration;

use super::{HostArg, Image};
use crate::RuntimeError;

/// What running a kernel took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunStats {
    /// Kernel runs (more than one when an int8 output scale is calibrated).
    pub runs: u32,
    /// Device time measured around run and wait (XRT).
    pub device: Duration,
    /// The emulator's estimate of the NPU time, µs (a model, not a measurement).
    pub estimate_us: f64,
}

impl AddAssign for RunStats {
    fn add_assign(&mut self, o: RunStats) {
        self.runs += o.runs;
        self.device += o.device;
        self.estimate_us += o.estimate_us;
    }
}

/// What the host knows about one buffer: the image it starts with and whether it was written
/// since the last run.
#[derive(Debug, Clone, Default)]
pub struct SlotState {
    image: Option<Arc<Image>>,
    dirty: bool,
}

impl SlotState {
    /// Whether the buffer was written since the last call (and forget it).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }
}

/// The buffers of one kernel invocation, in runtime-sequence order.
pub trait Invocation {
    fn args(&self) -> &[HostArg];

    /// Buffer `i` (exactly `args()[i].bytes()` long) and its state.
    fn slot(&mut self, i: usize) -> (&mut [u8], &mut SlotState);

    /// Buffer `i` as it is now (after [`Invocation::run`]: as the kernel left it).
    fn bytes(&self, i: usize) -> &[u8];

    /// Runs the kernel once on the buffers; `outputs` are the arguments the host reads after.
    fn run(&mut self, outputs: &[usize]) -> Result<RunStats, RuntimeError>;

    /// Bytes `from..` of buffer `i` for writing; an image the buffer held past `from` is lost.
    fn write(&mut self, i: usize, from: usize) -> &mut [u8] {
        let (bytes, st) = self.slot(i);
        st.dirty = true;
        if st.image.as_ref().is_some_and(|im| im.bytes.len() > from) {
            st.image = None;
        }
        &mut bytes[from..]
    }

    /// Makes buffer `i` start with `image` (copied unless the buffer already holds it).
    fn load_image(&mut self, i: usize, image: &Arc<Image>) {
        let (bytes, st) = self.slot(i);
        if st.image.as_ref().is_some_and(|im| Arc::ptr_eq(im, image)) {
            return;
        }
        bytes[..image.bytes.len()].copy_from_slice(&image.bytes);
        st.image = Some(image.clone());
        st.dirty = true;
    }
}

/// Host buffers as plain vectors, one per argument (zero-filled when created).
#[derive(Debug, Clone)]
pub struct BufferSet {
    args: Vec<HostArg>,
    bufs: Vec<Vec<u8>>,
    slots: Vec<SlotState>,
}

impl BufferSet {
    pub fn new(args: &[HostArg]) -> BufferSet {
        BufferSet {
            args: args.to_vec(),
            bufs: args.iter().map(|a| vec![0u8; a.bytes()]).collect(),
            slots: vec![SlotState::default(); args.len()],
        }
    }

    pub fn args(&self) -> &[HostArg] {
        &self.args
    }

    pub fn slot(&mut self, i: usize) -> (&mut [u8], &mut SlotState) {
        (&mut self.bufs[i], &mut self.slots[i])
    }

    pub fn bytes(&self, i: usize) -> &[u8] {
        &self.bufs[i]
    }

    /// Every buffer, mutable, in argument order (what `aie_emu::Emulator::run` takes).
    pub fn buffers(&mut self) -> Vec<&mut [u8]> {
        for s in &mut self.slots {
            s.dirty = false;
        }
        self.bufs.iter_mut().map(Vec::as_mut_slice).collect()
    }
}

/// An [`Invocation`] over a [`BufferSet`] that runs `run` on all buffers (e.g. an emulator).
pub struct VecInvocation<'a, F> {
    set: &'a mut BufferSet,
    run: F,
}

impl<'a, F> VecInvocation<'a, F>
where
    F: FnMut(&mut [&mut [u8]]) -> Result<RunStats, RuntimeError>,
{
    pub fn new(set: &'a mut BufferSet, run: F) -> Self {
        VecInvocation { set, run }
    }
}

impl<F> Invocation for VecInvocation<'_, F>
where
    F: FnMut(&mut [&mut [u8]]) -> Result<RunStats, RuntimeError>,
{
    fn args(&self) -> &[HostArg] {
        self.set.args()
    }

    fn slot(&mut self, i: usize) -> (&mut [u8], &mut SlotState) {
        self.set.slot(i)
    }

    fn bytes(&self, i: usize) -> &[u8] {
        self.set.bytes(i)
    }

    fn run(&mut self, _outputs: &[usize]) -> Result<RunStats, RuntimeError> {
        let mut bufs = self.set.buffers();
        (self.run)(&mut bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Elem;

    #[test]
    fn images_are_copied_once_and_lost_when_overwritten() {
        let args = [HostArg {
            name: "w".into(),
            elem: Elem::Bf16,
            len: 4,
        }];
        let mut set = BufferSet::new(&args);
        let mut runs = 0;
        let mut inv = VecInvocation::new(&mut set, |_| {
            runs += 1;
            Ok(RunStats::default())
        });
        let img = Arc::new(Image {
            bytes: vec![1, 2, 3, 4],
            scales: vec![],
        });
        inv.load_image(0, &img);
        assert_eq!(&inv.bytes(0)[..4], &[1, 2, 3, 4]);
        assert!(inv.slot(0).1.take_dirty());
        inv.load_image(0, &img);
        assert!(
            !inv.slot(0).1.take_dirty(),
            "a held image is not copied again"
        );
        // Writing past the image keeps it; writing into it drops it.
        inv.write(0, 4)[0] = 9;
        inv.load_image(0, &img);
        assert!(inv.slot(0).1.take_dirty()); // from the write
        inv.write(0, 2)[0] = 7;
        inv.load_image(0, &img);
        assert_eq!(
            inv.bytes(0)[2],
            3,
            "the image is restored after being overwritten"
        );
        inv.run(&[0]).unwrap();
        inv.run(&[0]).unwrap();
        assert_eq!(runs, 2);
    }
}
