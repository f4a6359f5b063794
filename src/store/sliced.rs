//! A run's entries kept in arrival order and sorted a slice at a time as they arrive, then
//! read back in full order by merging the slices.
//!
//! The runs of `keys` and `dedupe` are written in key order once complete. Sorting a whole
//! run of tens of thousands of string keys at that moment stalled the writer for 20 ms
//! and more, which showed in the p99 at a fixed rate. Here each slice of [`SLICE`]
//! entries is sorted when it fills (a fraction of a millisecond, spread over the run), and
//! a chunk in full order is a merge of the slices from where the last one ended. The merge
//! remembers where it stopped in each slice, so the next chunk goes on from there instead
//! of searching every slice again (those searches were 5 % of the writer's time while a
//! run was being written, BENCHMARKS.md). Pure: no I/O, no locks.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Entries per sorted slice.
pub(super) const SLICE: usize = 2048;

/// Entries in arrival order, every complete slice of [`SLICE`] sorted.
#[derive(Debug)]
pub(super) struct Sliced<T> {
    items: Vec<T>,
    /// `items[..sorted]` is sorted slice by slice.
    sorted: usize,
    /// Where the last chunk ended: its last entry, and for each slice the position of its
    /// first entry after that one. Cleared when an entry is added or a slice sorted.
    resume: Option<(T, Vec<usize>)>,
}

impl<T> Default for Sliced<T> {
    fn default() -> Self {
        Sliced {
            items: Vec::new(),
            sorted: 0,
            resume: None,
        }
    }
}

impl<T: Ord + Clone> Sliced<T> {
    /// Adds an entry; sorts the last slice when this entry fills it.
    pub(super) fn push(&mut self, item: T) {
        self.resume = None;
        self.items.push(item);
        if self.items.len().is_multiple_of(SLICE) {
            let from = self.items.len() - SLICE;
            self.items[from..].sort_unstable();
            self.sorted = self.items.len();
        }
    }

    /// Sorts the last, partial slice: called once the run takes no more entries. (An
    /// entry pushed after all the same joins that slice and leaves it unsorted again, so
    /// searches stay right; call it again before reading in order.)
    pub(super) fn finish(&mut self) {
        self.resume = None;
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

    /// Up to `n` entries after `after` (from the first when `None`), in full order, and
    /// whether any are left after them. Call it after [`Sliced::finish`]: an unsorted slice
    /// would be merged out of order. When `after` is the last entry of the chunk before,
    /// the merge goes on where that one stopped; any other `after` (a chunk asked again,
    /// after a group that did not commit) is found by a search in each slice.
    pub(super) fn after(&mut self, after: Option<&T>, n: usize) -> (Vec<T>, bool) {
        let slices: Vec<&[T]> = self.items.chunks(SLICE).collect();
        let mut at: Vec<usize> = match (self.resume.take(), after) {
            (Some((last, at)), Some(a)) if last == *a => at,
            _ => {
                let start = |s: &[T]| after.map_or(0, |a| s.partition_point(|x| x <= a));
                slices.iter().map(|s| start(s)).collect()
            }
        };
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
            // What comes next from the same slice, before the heap's least, is taken
            // without the heap: a kind with one key for most rows (the account, the event
            // type) has its entries in seq order, slice after slice.
            while out.len() < n
                && let Some(next) = slices[i].get(at[i])
                && heap.peek().is_none_or(|Reverse(top)| (next, i) < *top)
            {
                out.push(next.clone());
                at[i] += 1;
            }
            if let Some(next) = slices[i].get(at[i]) {
                heap.push(Reverse((next, i)));
            }
        }
        let last = out.last().cloned();
        if let Some(last) = &last {
            // As a search would: past every entry equal to the last one, output or not.
            for (i, s) in slices.iter().enumerate() {
                while s.get(at[i]).is_some_and(|x| x == last) {
                    at[i] += 1;
                }
            }
        }
        let more = slices.iter().zip(&at).any(|(s, i)| *i < s.len());
        self.resume = last.map(|last| (last, at));
        (out, more)
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
                let (chunk, more) = run.after(last.as_ref(), 100);
                assert_eq!(more, read.len() + chunk.len() < n as usize);
                if chunk.is_empty() {
                    break;
                }
                last = chunk.last().copied();
                read.extend(chunk);
            }
            assert_eq!(read, (0..n).collect::<Vec<_>>(), "{n} entries");
        }
    }

    /// The first `n` entries after `after` in full order, and whether more follow: the
    /// way `after` must answer.
    fn expected(all: &[u64], after: Option<u64>, n: usize) -> (Vec<u64>, bool) {
        let mut sorted = all.to_vec();
        sorted.sort_unstable();
        let rest: Vec<u64> = sorted
            .into_iter()
            .filter(|x| after.is_none_or(|a| *x > a))
            .collect();
        (rest.iter().take(n).copied().collect(), rest.len() > n)
    }

    #[test]
    fn a_chunk_asked_again_or_from_anywhere_matches_a_search() {
        // Entries with repeats, over several slices; chunks asked in an order that mixes
        // going on from the last chunk, asking the same chunk again (a group that did not
        // commit), jumping back, and entries added and sorted between chunks.
        let mut all: Vec<u64> = (0..3 * SLICE as u64 + 500)
            .map(|i| (i * 7919 + 13) % 4000)
            .collect();
        let mut run = Sliced::default();
        for x in &all {
            run.push(*x);
        }
        run.finish();
        let mut last: Option<u64> = None;
        let mut state = 12345u64;
        for step in 0..400 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = 1 + (state >> 33) as usize % 300;
            let from = match step % 7 {
                // Jump back to an earlier point, or to the start.
                3 => last.map(|l| l.saturating_sub((state >> 40) % 500)),
                5 => None,
                _ => last,
            };
            if step % 50 == 49 {
                let x = (state >> 20) % 4000;
                run.push(x);
                all.push(x);
                run.finish();
            }
            let answer = run.after(from.as_ref(), n);
            assert_eq!(
                answer,
                expected(&all, from, n),
                "step {step}, after {from:?}, {n}"
            );
            // Asked again from the same point, the same chunk comes back.
            if step % 4 == 0 {
                assert_eq!(run.after(from.as_ref(), n), answer, "step {step} again");
            }
            let chunk = answer.0;
            last = chunk.last().copied().or(from);
            if last.is_some_and(|l| l >= 3999) {
                last = None;
            }
        }
    }

    #[test]
    fn a_key_most_entries_share_comes_out_in_order_between_the_others() {
        // As a run of keys holds them: each row adds a random key and a shared one (an
        // account), so the shared key's entries lie in seq order slice after slice.
        let mut all = Vec::new();
        let mut run = Sliced::default();
        for seq in 0..5 * SLICE as u64 + 300 {
            for entry in [(0u8, (seq * 7919) % 3001, seq), (2, 42, seq)] {
                run.push(entry);
                all.push(entry);
            }
        }
        run.finish();
        all.sort_unstable();
        let mut read = Vec::new();
        let mut last = None;
        loop {
            let (chunk, more) = run.after(last.as_ref(), 777);
            read.extend(chunk.iter().copied());
            last = chunk.last().copied();
            if !more {
                break;
            }
        }
        assert_eq!(read, all);
    }

    #[test]
    fn entries_equal_to_a_chunks_last_are_behind_it_as_a_search_from_it_finds() {
        // 7 ends both slices; a chunk that ends on one 7 leaves nothing after it.
        let mut run = Sliced::default();
        run.push(7u64);
        for _ in 1..SLICE {
            run.push(0);
        }
        run.push(7);
        run.finish();
        assert_eq!(run.after(Some(&0), 1), (vec![7], false));
        assert_eq!(run.after(Some(&7), 1), (vec![], false));
        assert_eq!(run.after(None, 2), (vec![0, 0], true));
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
        assert_eq!(run.after(Some(&2), 2), (vec![3, 4], true));
        assert_eq!(run.after(None, 4), (vec![0, 1, 2, 3], true));
        // A late entry joins the last slice, which is unsorted until finished again.
        run.push(1);
        let last = run.slices().last().map(|(s, o)| (s.to_vec(), o));
        assert_eq!(last, Some((vec![0, 1, 2, 1], false)));
        run.finish();
        assert_eq!(run.after(Some(&0), 3), (vec![1, 1, 2], true));
        let top = SLICE as u64;
        assert_eq!(run.after(Some(&top), 9), (vec![top + 1, top + 2], false));
    }
}
