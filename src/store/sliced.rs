//! A run's entries kept in arrival order and sorted a slice at a time as they arrive, then
//! read back in full order by merging the slices.
//!
//! The runs of `keys` and `dedupe` are written in key order once complete. Sorting a whole
//! run of tens of thousands of string keys at that moment stalled the writer for 20 ms
//! and more, which showed in the p99 at a fixed rate. Here each slice of [`SLICE`]
//! entries is sorted when it fills (a fraction of a millisecond, spread over the run), and
//! a chunk in full order is a merge of the slices from where the last one ended. Pure: no
//! I/O, no locks.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Entries per sorted slice.
pub(super) const SLICE: usize = 2048;

/// Entries in arrival order, every complete slice of [`SLICE`] sorted.
#[derive(Debug, Default)]
pub(super) struct Sliced<T> {
    items: Vec<T>,
    /// `items[..sorted]` is sorted slice by slice.
    sorted: usize,
}

impl<T: Ord + Clone> Sliced<T> {
    /// Adds an entry; sorts the last slice when this entry fills it.
    pub(super) fn push(&mut self, item: T) {
        self.items.push(item);
        if self.items.len() % SLICE == 0 {
            let from = self.items.len() - SLICE;
            self.items[from..].sort_unstable();
            self.sorted = self.items.len();
        }
    }

    /// Sorts the last, partial slice: called once the run takes no more entries. (An
    /// entry pushed after all the same joins that slice and leaves it unsorted again, so
    /// searches stay right; call it again before reading in order.)
    pub(super) fn finish(&mut self) {
        let from = self.items.len() / SLICE * SLICE;
        self.items[from..].sort_unstable();
        self.sorted = self.items.len();
    }

    /// How many entries it holds.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Each slice, with whether it is sorted yet (only the last can be unsorted).
    pub(super) fn slices(&self) -> impl Iterator<Item = (&[T], bool)> {
        let sorted = self.sorted;
        self.items
            .chunks(SLICE)
            .enumerate()
            .map(move |(i, s)| (s, (i + 1) * SLICE <= sorted || sorted == self.items.len()))
    }

    /// Up to `n` entries after `after` (all of them when `None`), in full order. Call it
    /// after [`Sliced::finish`]: an unsorted slice would be merged out of order.
    pub(super) fn after(&self, after: Option<&T>, n: usize) -> Vec<T> {
        let slices: Vec<&[T]> = self.items.chunks(SLICE).collect();
        let start = |s: &[T]| after.map_or(0, |a| s.partition_point(|x| x <= a));
        let mut at: Vec<usize> = slices.iter().map(|s| start(s)).collect();
        let mut heap: BinaryHeap<Reverse<(&T, usize)>> = slices
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.get(at[i]).map(|x| Reverse((x, i))))
            .collect();
        let mut out = Vec::with_capacity(n.min(self.items.len()));
        while out.len() < n {
            let Some(Reverse((x, i))) = heap.pop() else {
                break;
            };
            out.push(x.clone());
            at[i] += 1;
            if let Some(next) = slices[i].get(at[i]) {
                heap.push(Reverse((next, i)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic scramble of 0..n.
    fn scrambled(n: u64) -> Vec<u64> {
        (0..n).map(|i| (i * 7919 + 13) % n).collect()
    }

    #[test]
    fn chunks_after_any_point_come_in_full_order() {
        for n in [
            0,
            1,
            5,
            SLICE as u64,
            SLICE as u64 + 1,
            5 * SLICE as u64 + 77,
        ] {
            let mut run = Sliced::default();
            for x in scrambled(n) {
                run.push(x);
            }
            assert!(
                run.slices()
                    .take(run.len() / SLICE)
                    .all(|(_, sorted)| sorted)
            );
            run.finish();
            assert!(run.slices().all(|(s, sorted)| sorted && s.is_sorted()));
            // Read back in chunks of 100, each starting after the last one's end.
            let mut read = Vec::new();
            let mut last = None;
            loop {
                let chunk = run.after(last.as_ref(), 100);
                if chunk.is_empty() {
                    break;
                }
                last = chunk.last().copied();
                read.extend(chunk);
            }
            assert_eq!(read, (0..n).collect::<Vec<_>>(), "{n} entries");
        }
    }

    #[test]
    fn a_slice_is_sorted_when_it_fills_not_before() {
        let mut run = Sliced::default();
        for x in (0..SLICE as u64 + 3).rev() {
            run.push(x);
        }
        let slices: Vec<(Vec<u64>, bool)> = run.slices().map(|(s, o)| (s.to_vec(), o)).collect();
        assert_eq!(slices.len(), 2);
        assert!(slices[0].1 && slices[0].0.is_sorted());
        assert_eq!(slices[1], (vec![2, 1, 0], false));
        run.finish();
        assert_eq!(run.after(Some(&2), 2), [3, 4]);
        assert_eq!(run.after(None, 4), [0, 1, 2, 3]);
        // A late entry joins the last slice, which is unsorted until finished again.
        run.push(1);
        let last = run.slices().last().map(|(s, o)| (s.to_vec(), o));
        assert_eq!(last, Some((vec![0, 1, 2, 1], false)));
        run.finish();
        assert_eq!(run.after(Some(&0), 3), [1, 1, 2]);
    }
}
