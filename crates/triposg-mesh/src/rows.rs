//! Items grouped by row in two flat arrays (row `r` holds `items[starts[r]..starts[r + 1]]`),
//! built in two passes over the entries, count then place, rather than a list per row: the
//! rows are a mesh's vertices or a fine grid's cells, millions of them, most with a handful of
//! items or none.

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
