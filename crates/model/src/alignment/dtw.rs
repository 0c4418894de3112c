//! The numeric steps of word alignment: per-head softmax over audio frames, normalisation over
//! tokens, a median filter along time, the mean over heads, and dynamic time warping. Pure
//! functions over row-major matrices, as openai-whisper's `whisper/timing.py` computes them.

/// A row-major `rows × cols` matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Matrix {
        assert_eq!(data.len(), rows * cols, "matrix data must be rows x cols");
        Matrix { rows, cols, data }
    }

    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    fn row_mut(&mut self, r: usize) -> &mut [f32] {
        &mut self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// Softmax of each row, in place.
pub fn softmax_rows(m: &mut Matrix) {
    for r in 0..m.rows {
        let row = m.row_mut(r);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for x in row.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        for x in row.iter_mut() {
            *x /= sum;
        }
    }
}

/// Standardises each column (one audio frame, across tokens) to zero mean and unit variance
/// (population standard deviation), in place.
pub fn standardise_columns(m: &mut Matrix) {
    let n = m.rows as f64;
    for c in 0..m.cols {
        let mean = (0..m.rows)
            .map(|r| m.data[r * m.cols + c] as f64)
            .sum::<f64>()
            / n;
        let var = (0..m.rows)
            .map(|r| (m.data[r * m.cols + c] as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let std = var.sqrt();
        for r in 0..m.rows {
            let x = &mut m.data[r * m.cols + c];
            *x = ((*x as f64 - mean) / std) as f32;
        }
    }
}

/// Median filter of odd `width` along each row, with the rows mirrored at their ends (reflect
/// padding, the edge value not repeated). Rows no longer than `width / 2` are left as they are.
pub fn median_filter_rows(m: &Matrix, width: usize) -> Matrix {
    assert!(width % 2 == 1, "the median filter's width must be odd");
    let pad = width / 2;
    if m.cols <= pad {
        return m.clone();
    }
    let mut out = Vec::with_capacity(m.data.len());
    let mut window = Vec::with_capacity(width);
    for r in 0..m.rows {
        let row = m.row(r);
        let n = row.len() as isize;
        let at = |i: isize| {
            // Reflect: -1 → 1, n → n - 2.
            let j = if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            };
            row[j as usize]
        };
        for c in 0..n {
            window.clear();
            window.extend((c - pad as isize..=c + pad as isize).map(at));
            window.sort_by(f32::total_cmp);
            out.push(window[pad]);
        }
    }
    Matrix::new(m.rows, m.cols, out)
}

/// The cheapest monotonic path through `cost` from its top-left to its bottom-right corner,
/// each step moving one row down, one column right, or both. Returns the path's (row, column)
/// pairs in order. Ties prefer a column step, then a row step, as openai-whisper does.
pub fn dtw(cost: &Matrix) -> Vec<(usize, usize)> {
    let (n, m) = (cost.rows, cost.cols);
    if n == 0 || m == 0 {
        return Vec::new();
    }
    let w = m + 1;
    let mut acc = vec![f64::INFINITY; (n + 1) * w];
    // 0: diagonal, 1: from the row above, 2: from the column to the left.
    let mut trace = vec![0u8; (n + 1) * w];
    acc[0] = 0.0;
    for j in 1..=m {
        for i in 1..=n {
            let c0 = acc[(i - 1) * w + j - 1];
            let c1 = acc[(i - 1) * w + j];
            let c2 = acc[i * w + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            acc[i * w + j] = cost.data[(i - 1) * m + j - 1] as f64 + c;
            trace[i * w + j] = t;
        }
    }
    // The first row can only be left by column steps, the first column by row steps.
    for t in trace.iter_mut().take(w) {
        *t = 2;
    }
    for i in 0..=n {
        trace[i * w] = 1;
    }
    let (mut i, mut j) = (n, m);
    let mut path = Vec::with_capacity(n + m);
    while i > 0 || j > 0 {
        path.push((i - 1, j - 1));
        match trace[i * w + j] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

/// For each row of a DTW path, the column at which the path first enters it: the audio frame
/// at which each token starts.
pub fn row_entry_columns(path: &[(usize, usize)]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut last_row = None;
    for &(r, c) in path {
        if last_row != Some(r) {
            out.push(c);
            last_row = Some(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtw_follows_the_cheap_diagonal_band() {
        // Cheap cells (0) trace a staircase: row 0 over columns 0-1, row 1 over column 2,
        // row 2 over columns 3-4.
        let x = 9.0;
        let cost = Matrix::new(
            3,
            5,
            vec![
                0.0, 0.0, x, x, x, //
                x, x, 0.0, x, x, //
                x, x, x, 0.0, 0.0,
            ],
        );
        let path = dtw(&cost);
        assert_eq!(path, vec![(0, 0), (0, 1), (1, 2), (2, 3), (2, 4)]);
        assert_eq!(row_entry_columns(&path), vec![0, 2, 3]);
    }

    #[test]
    fn dtw_path_is_monotonic_and_covers_the_corners() {
        let cost = Matrix::new(4, 6, (0..24).map(|i| ((i * 7) % 5) as f32 - 2.0).collect());
        let path = dtw(&cost);
        assert_eq!(path.first(), Some(&(0, 0)));
        assert_eq!(path.last(), Some(&(3, 5)));
        for w in path.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(b.0 >= a.0 && b.1 >= a.1 && (b.0 - a.0) + (b.1 - a.1) >= 1);
            assert!(b.0 - a.0 <= 1 && b.1 - a.1 <= 1);
        }
    }

    #[test]
    fn median_filter_reflects_at_the_edges() {
        let m = Matrix::new(1, 5, vec![5.0, 1.0, 4.0, 2.0, 3.0]);
        // Width 3, reflected row: [1, 5, 1, 4, 2, 3, 2].
        assert_eq!(
            median_filter_rows(&m, 3).data,
            vec![1.0, 4.0, 2.0, 3.0, 2.0]
        );
        // Rows too short to pad are unchanged.
        let short = Matrix::new(2, 3, vec![3.0, 1.0, 2.0, 0.0, 9.0, 1.0]);
        assert_eq!(median_filter_rows(&short, 7), short);
    }

    #[test]
    fn median_filter_removes_a_spike() {
        let mut row = vec![1.0; 12];
        row[6] = 100.0;
        let out = median_filter_rows(&Matrix::new(1, 12, row), 7);
        assert!(out.data.iter().all(|&x| x == 1.0), "{:?}", out.data);
    }

    #[test]
    fn columns_are_standardised_and_rows_softmaxed() {
        let mut m = Matrix::new(2, 2, vec![1.0, 0.0, 3.0, 0.0]);
        softmax_rows(&mut m);
        assert!((m.data[0] + m.data[1] - 1.0).abs() < 1e-6);
        assert!((m.data[0] - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
        let mut s = Matrix::new(3, 1, vec![1.0, 2.0, 3.0]);
        standardise_columns(&mut s);
        let want = [-1.224_744_9, 0.0, 1.224_744_9];
        for (g, w) in s.data.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{:?}", s.data);
        }
    }
}
