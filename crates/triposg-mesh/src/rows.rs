//! Items grouped by row in two flat arrays (row `r` holds `items[starts[r]..starts[r + 1]]`),
//! built in two passes over the entries, count then place, rather than a list per row: the
//! rows are a mesh's vertices or a fine grid's cells, millions of them, most with a handful of
//! items or none.

use rayon::prelude::*;

/// `(starts, items)` of the `(row, item)` pairs that `entries` yields (the same each call), each
/// row's items in the order they came.
pub(crate) fn compressed_rows<T: Copy + Default, I: Iterator<Item = (usize, T)>>(
    rows: usize,
    entries: impl Fn() -> I,
) -> (Vec<u32>, Vec<T>) {
    let mut starts = vec![0u32; rows + 1];
    for (row, _) in entries() {
        starts[row + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut fill = starts.clone();
    let mut items = vec![T::default(); starts[rows] as usize];
    for (row, item) in entries() {
        items[fill[row] as usize] = item;
        fill[row] += 1;
    }
    (starts, items)
}

/// Sorts each row's items in place, rows in parallel (in blocks of consecutive rows: most rows
/// hold a handful of items, too few to be a task each).
pub(crate) fn sort_rows<T: Ord + Send>(starts: &[u32], items: &mut [T]) {
    const BLOCK: usize = 4096;
    let rows = starts.len() - 1;
    let mut blocks = Vec::with_capacity(rows.div_ceil(BLOCK));
    let mut rest = items;
    for r0 in (0..rows).step_by(BLOCK) {
        let r1 = (r0 + BLOCK).min(rows);
        let (block, tail) =
            std::mem::take(&mut rest).split_at_mut((starts[r1] - starts[r0]) as usize);
        blocks.push((r0..r1, block));
        rest = tail;
    }
    blocks.into_par_iter().for_each(|(rows, block)| {
        let first = starts[rows.start];
        for r in rows {
            block[(starts[r] - first) as usize..(starts[r + 1] - first) as usize].sort_unstable();
        }
    });
}
