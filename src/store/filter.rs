//! A filter in front of the `dedupe` table: a few cache lines that prove most ids absent.
//!
//! Nearly every id a gateway sees is new, and before this filter each new id cost the
//! writer a lookup in the `dedupe` table (a B-tree descent with string comparisons, and the
//! page fetches under it), about a tenth of the gateway's rate at 1 KiB bodies
//! (BENCHMARKS.md). A blocked Bloom filter answers "not there" for all but about one in a
//! hundred new ids from one 64-byte block, and "maybe" for every id that is there.
//!
//! Owns the bits and their arithmetic only: what the filter covers, when it is trusted and
//! where its ids come from is `dedupe`'s. Invariant: no false negatives, ever; an id
//! inserted is reported as possibly present by every later query. It must never be the
//! only word on a "maybe": the table decides those.

use std::hash::{BuildHasher, Hasher};

/// Bits per id: about 1 % of absent ids come back "maybe" from a full segment at this
/// density (the tests measure it), each then a table lookup as before. 8 bits gave 2.4 %.
const BITS_PER_ID: usize = 10;
/// Bits set and tested per id, all inside one block.
const PROBES: u32 = 6;
/// Ids the first segment of a [`Chain`] holds (a run of `keys::RUN_ROWS` seqs, at most).
pub(super) const FIRST_SEGMENT_IDS: usize = 32_768;

/// An id's hash: the same key bytes and seed give the same hash on every thread.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl IdHasher {
    /// A hasher with a random seed, for one process.
    pub(super) fn random() -> IdHasher {
        IdHasher(rand::random())
    }

    /// The hash of a dedupe key (`account`, NUL, event id: `dedupe::key_into`).
    pub(super) fn hash(&self, key: &str) -> u64 {
        let mut h = foldhash::fast::FixedState::with_seed(self.0).build_hasher();
        h.write(key.as_bytes());
        h.finish()
    }
}

/// One blocked Bloom filter of fixed size.
#[derive(Debug)]
struct Bloom {
    /// 512 bits each: one cache line.
    blocks: Vec<[u64; 8]>,
}

impl Bloom {
    fn with_capacity(ids: usize) -> Bloom {
        let blocks = (ids.max(1) * BITS_PER_ID).div_ceil(512);
        Bloom {
            blocks: vec![[0; 8]; blocks],
        }
    }

    fn bytes(&self) -> usize {
        self.blocks.len() * 64
    }

    /// The block an id falls in, and the bits it sets there.
    fn place(&self, hash: u64) -> (usize, [u64; 8]) {
        // The hash's high bits pick the block (a multiply-shift: no division), a second
        // mix of it the bits inside, nine bits per probe.
        let block = ((u128::from(hash) * self.blocks.len() as u128) >> 64) as usize;
        let mut bits = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
        let mut mask = [0u64; 8];
        for _ in 0..PROBES {
            let bit = (bits & 511) as usize;
            mask[bit >> 6] |= 1 << (bit & 63);
            bits >>= 9;
        }
        (block, mask)
    }

    fn insert(&mut self, hash: u64) {
        let (block, mask) = self.place(hash);
        if let Some(b) = self.blocks.get_mut(block) {
            for (word, m) in b.iter_mut().zip(mask) {
                *word |= m;
            }
        }
    }

    fn may_contain(&self, hash: u64) -> bool {
        let (block, mask) = self.place(hash);
        self.blocks
            .get(block)
            .is_some_and(|b| b.iter().zip(mask).all(|(word, m)| word & m == m))
    }
}

/// Filters that grow with the ids put in them: a segment per doubling, so a query tests
/// one block in each of a few segments, and no segment is ever rebuilt. Past its memory
/// budget a chain gives up (and frees its bits): it can no longer prove anything absent.
#[derive(Debug)]
pub(super) struct Chain {
    segments: Vec<(Bloom, usize)>,
    /// Ids the last segment was made for.
    capacity: usize,
    budget: usize,
    given_up: bool,
}

impl Chain {
    /// An empty chain whose first segment holds `first` ids, using at most `budget` bytes.
    pub(super) fn new(first: usize, budget: usize) -> Chain {
        Chain {
            segments: Vec::new(),
            capacity: first.max(1) / 2,
            budget,
            given_up: false,
        }
    }

    /// Adds an id's hash. Returns false once the chain has given up.
    pub(super) fn insert(&mut self, hash: u64) -> bool {
        if self.given_up {
            return false;
        }
        let full = self
            .segments
            .last()
            .is_none_or(|(_, n)| *n >= self.capacity);
        if full {
            let capacity = self.capacity.saturating_mul(2);
            let next = Bloom::with_capacity(capacity);
            if self.bytes() + next.bytes() > self.budget {
                self.give_up();
                return false;
            }
            self.capacity = capacity;
            self.segments.push((next, 0));
        }
        if let Some((bloom, n)) = self.segments.last_mut() {
            bloom.insert(hash);
            *n += 1;
        }
        true
    }

    /// False only if no id with this hash was ever inserted (and the chain has not given
    /// up, when it is always true).
    pub(super) fn may_contain(&self, hash: u64) -> bool {
        self.given_up || self.segments.iter().any(|(b, _)| b.may_contain(hash))
    }

    /// Sets the bytes it may use from here on.
    pub(super) fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
    }

    /// Bytes of bits held.
    pub(super) fn bytes(&self) -> usize {
        self.segments.iter().map(|(b, _)| b.bytes()).sum()
    }

    /// True once the budget ran out.
    pub(super) fn given_up(&self) -> bool {
        self.given_up
    }

    /// Frees the bits; every later query says "maybe".
    pub(super) fn give_up(&mut self) {
        self.given_up = true;
        self.segments = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("acct\0{prefix}_{i}")).collect()
    }

    /// How many of `n` ids never put in come back "maybe", and what share they are.
    fn maybes(h: IdHasher, n: usize, may_contain: impl Fn(u64) -> bool) -> (usize, f64) {
        let maybe = keys("other", n)
            .iter()
            .filter(|k| may_contain(h.hash(k)))
            .count();
        (maybe, maybe as f64 / n as f64)
    }

    #[test]
    fn every_id_put_in_is_found_and_few_absent_ones_are() {
        let h = IdHasher::random();
        let mut chain = Chain::new(1000, usize::MAX);
        let inside = keys("evt", 50_000);
        for k in &inside {
            assert!(chain.insert(h.hash(k)));
        }
        assert!(inside.iter().all(|k| chain.may_contain(h.hash(k))));
        // Six segments (1,000 to 32,000 ids), each at most full: about 1 % each.
        let (maybe, rate) = maybes(h, 100_000, |x| chain.may_contain(x));
        assert!(rate < 0.15, "{maybe} of 100,000 absent ids said maybe");
        assert!(
            maybe > 0,
            "a filter of 10 bits per id that never errs is not one"
        );
    }

    #[test]
    fn one_full_segment_errs_on_about_one_in_a_hundred() {
        let h = IdHasher::random();
        let mut bloom = Bloom::with_capacity(100_000);
        for k in keys("evt", 100_000) {
            bloom.insert(h.hash(&k));
        }
        let (_, rate) = maybes(h, 200_000, |x| bloom.may_contain(x));
        assert!((0.003..0.02).contains(&rate), "false-positive rate {rate}");
    }

    #[test]
    fn a_chain_grows_by_doubling_and_gives_up_at_its_budget() {
        let h = IdHasher::random();
        // Segments of 512, 1,024, 2,048 ids: 640 + 1,280 + 2,560 bytes at 10 bits per id.
        let mut chain = Chain::new(512, 640 + 1280 + 2560);
        for k in keys("evt", 512 + 1024 + 2048) {
            assert!(chain.insert(h.hash(&k)));
        }
        assert_eq!(chain.bytes(), 640 + 1280 + 2560);
        assert!(!chain.given_up());
        // The next id needs a segment of 4,096 ids: over budget.
        assert!(!chain.insert(h.hash("acct\0one more")));
        assert!(chain.given_up());
        assert_eq!(chain.bytes(), 0);
        assert!(chain.may_contain(h.hash("acct\0anything")));
    }

    #[test]
    fn an_empty_chain_proves_everything_absent() {
        let h = IdHasher::random();
        let chain = Chain::new(FIRST_SEGMENT_IDS, 1 << 20);
        assert!(!chain.may_contain(h.hash("acct\0evt_1")));
        assert_eq!(chain.bytes(), 0);
    }

    #[test]
    fn the_same_seed_hashes_alike_and_another_seed_does_not() {
        let a = IdHasher::random();
        let b = a;
        assert_eq!(a.hash("acct\0evt_1"), b.hash("acct\0evt_1"));
        assert_ne!(a.hash("acct\0evt_1"), a.hash("acct\0evt_2"));
        assert_ne!(
            a.hash("acct\0evt_1"),
            IdHasher::random().hash("acct\0evt_1")
        );
    }
}
