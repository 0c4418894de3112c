//! Access patterns: `<size, stride>` dimensions (outermost first, in elements) over a buffer,
//! walked as runs of contiguous elements so that DMA copies move slices, not single values.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// First element.
    pub base: usize,
    /// (size, stride) outermost first; never empty.
    pub dims: Vec<(usize, usize)>,
}

impl Pattern {
    /// All `len` elements in order.
    pub fn linear(base: usize, len: usize) -> Pattern {
        Pattern {
            base,
            dims: vec![(len, 1)],
        }
    }

    /// Elements the pattern visits.
    pub fn len(&self) -> usize {
        self.dims.iter().map(|d| d.0).product()
    }

    /// The highest element index the pattern touches (`None` when it visits nothing).
    pub fn max_index(&self) -> Option<usize> {
        if self.len() == 0 {
            return None;
        }
        Some(self.base + self.dims.iter().map(|&(s, t)| (s - 1) * t).sum::<usize>())
    }

    /// Element address of the `pos`-th visited element and how many elements from there on are
    /// contiguous in memory and in visiting order.
    pub fn run_at(&self, pos: usize) -> (usize, usize) {
        let mut rest = pos;
        let mut addr = self.base;
        let mut run = 1;
        for (i, &(size, stride)) in self.dims.iter().enumerate().rev() {
            let digit = rest % size;
            rest /= size;
            addr += digit * stride;
            if i == self.dims.len() - 1 && stride == 1 {
                run = size - digit;
            }
        }
        (addr, run)
    }

    /// Whether the pattern visits every element of `0..len` exactly once (a pure reordering).
    /// Returns the first element visited twice or never.
    pub fn permutation_defect(&self, len: usize) -> Option<(usize, &'static str)> {
        let mut seen = vec![false; len];
        let mut pos = 0;
        while pos < self.len() {
            let (a, run) = self.run_at(pos);
            if a + run > len {
                return Some((a.max(len), "past the end"));
            }
            if let Some(k) = seen[a..a + run].iter().position(|&s| s) {
                return Some((a + k, "twice"));
            }
            seen[a..a + run].fill(true);
            pos += run;
        }
        seen.iter().position(|s| !s).map(|e| (e, "never"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_follow_the_innermost_dimension() {
        // 2 rows of 3 from a row-major 2x4 buffer starting at column 1.
        let p = Pattern {
            base: 1,
            dims: vec![(2, 4), (3, 1)],
        };
        assert_eq!(p.len(), 6);
        assert_eq!(p.run_at(0), (1, 3));
        assert_eq!(p.run_at(1), (2, 2));
        assert_eq!(p.run_at(3), (5, 3));
        assert_eq!(p.max_index(), Some(7));
    }

    #[test]
    fn strided_innermost_dimension_has_runs_of_one() {
        let p = Pattern {
            base: 0,
            dims: vec![(2, 1), (3, 2)],
        };
        let addrs: Vec<usize> = (0..6).map(|i| p.run_at(i).0).collect();
        assert_eq!(addrs, vec![0, 2, 4, 1, 3, 5]);
        assert_eq!(p.run_at(0).1, 1);
        assert_eq!(p.permutation_defect(6), None);
    }

    #[test]
    fn a_wrong_stride_is_not_a_permutation() {
        let p = Pattern {
            base: 0,
            dims: vec![(2, 2), (3, 2)],
        };
        assert_eq!(p.permutation_defect(6), Some((2, "twice")));
    }
}
