//! Shards of a scenario's plan, with cargo-nextest's `--partition`
//! meaning, so that a CI matrix can split one scenario across runners.
//!
//! - `hash:k/n` puts a cell in shard `k` (1-based) of `n` when the 64-bit
//!   FNV-1a hash of its identity ([`cell_id`], `workload/strategy/fault`)
//!   is `k - 1` modulo `n`. The assignment depends on the cell alone, so
//!   adding cells to a scenario never moves an existing cell to another
//!   shard; shards may be uneven.
//! - `slice:k/n` deals the runnable cells out in plan order, round-robin:
//!   the cell at position `i` (0-based, `n/a` cells not counted) goes to
//!   shard `i mod n + 1`. Shards are as even as they can be, but adding a
//!   cell moves every later one.
//!
//! FNV-1a is written out here rather than taken from `std`, whose
//! `DefaultHasher` may change between Rust releases: a shard must keep its
//! cells when the runners of one CI pipeline were built by different
//! toolchains.

use std::fmt;
use std::str::FromStr;

/// The identity of a cell across runs and shards.
pub fn cell_id(workload: &str, strategy: &str, fault: &str) -> String {
    format!("{workload}/{strategy}/{fault}")
}

/// How cells are assigned to shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Hash,
    Slice,
}

/// One shard: `hash:k/n` or `slice:k/n`, `1 <= k <= n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    pub scheme: Scheme,
    /// 1-based.
    pub shard: u32,
    pub count: u32,
}

/// Why a partition does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("unknown partition scheme `{0}` (expected `hash:K/N` or `slice:K/N`)")]
    Scheme(String),
    #[error("invalid partition `{0}`: expected `hash:K/N` or `slice:K/N` with whole numbers")]
    Syntax(String),
    #[error("invalid partition `{0}`: the shard must be between 1 and the count, and the count at least 1")]
    Range(String),
}

impl FromStr for Partition {
    type Err = PartitionError;

    fn from_str(s: &str) -> Result<Partition, PartitionError> {
        let (scheme, rest) = s.split_once(':').ok_or_else(|| PartitionError::Syntax(s.to_owned()))?;
        let scheme = match scheme {
            "hash" => Scheme::Hash,
            "slice" => Scheme::Slice,
            other => return Err(PartitionError::Scheme(other.to_owned())),
        };
        let (shard, count) = rest.split_once('/').ok_or_else(|| PartitionError::Syntax(s.to_owned()))?;
        let number = |n: &str| n.parse::<u32>().map_err(|_| PartitionError::Syntax(s.to_owned()));
        let (shard, count) = (number(shard)?, number(count)?);
        if count == 0 || shard == 0 || shard > count {
            return Err(PartitionError::Range(s.to_owned()));
        }
        Ok(Partition { scheme, shard, count })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Hash => "hash",
            Scheme::Slice => "slice",
        };
        write!(f, "{scheme}:{}/{}", self.shard, self.count)
    }
}

impl Partition {
    /// Whether the runnable cell at `position` (plan order, `n/a` cells not
    /// counted) with identity `id` belongs to this shard.
    pub fn contains(&self, position: usize, id: &str) -> bool {
        self.shard_of(position, id) == self.shard
    }

    /// The shard (1-based) the cell belongs to under this scheme and count.
    pub fn shard_of(&self, position: usize, id: &str) -> u32 {
        let n = u64::from(self.count);
        let slot = match self.scheme {
            Scheme::Hash => fnv1a(id.as_bytes()) % n,
            Scheme::Slice => position as u64 % n,
        };
        slot as u32 + 1
    }
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partitions_parse_and_print_back() {
        for text in ["hash:1/3", "slice:2/2", "hash:1/1"] {
            assert_eq!(text.parse::<Partition>().unwrap().to_string(), text);
        }
        let cases = [
            ("count:1/2", PartitionError::Scheme("count".into())),
            ("hash1/2", PartitionError::Syntax("hash1/2".into())),
            ("hash:1-2", PartitionError::Syntax("hash:1-2".into())),
            ("hash:x/2", PartitionError::Syntax("hash:x/2".into())),
            ("hash:0/2", PartitionError::Range("hash:0/2".into())),
            ("slice:3/2", PartitionError::Range("slice:3/2".into())),
            ("slice:1/0", PartitionError::Range("slice:1/0".into())),
        ];
        for (text, error) in cases {
            assert_eq!(text.parse::<Partition>(), Err(error), "{text}");
        }
    }

    #[test]
    fn fnv1a_matches_its_reference_values() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn slice_deals_cells_round_robin() {
        let p = |k| Partition { scheme: Scheme::Slice, shard: k, count: 3 };
        let shards: Vec<u32> = (0..7).map(|i| p(1).shard_of(i, "ignored")).collect();
        assert_eq!(shards, [1, 2, 3, 1, 2, 3, 1]);
        assert!(p(2).contains(4, "x") && !p(2).contains(5, "x"));
    }

    #[test]
    fn the_smoke_plan_splits_into_three_hash_shards() {
        // The identities of scenarios/smoke.toml's 15 cells: every shard
        // gets some, so `hash:k/3` is a sensible CI split of it.
        let strategies = ["container-layer", "anonymous-volume", "named-volume", "bind-mount", "tmpfs"];
        let faults = ["process-kill", "restart", "recreate"];
        let mut sizes = [0; 3];
        for s in strategies {
            for f in faults {
                let p = Partition { scheme: Scheme::Hash, shard: 1, count: 3 };
                sizes[p.shard_of(0, &cell_id("mariadb", s, f)) as usize - 1] += 1;
            }
        }
        assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<i32>(), 15);
    }

    fn ids() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::btree_set("[a-z]{1,6}/[a-z-]{1,12}/[a-z-]{1,10}", 0..40)
            .prop_map(|set| set.into_iter().collect())
    }

    proptest! {
        #[test]
        fn every_cell_is_in_exactly_one_shard(ids in ids(), count in 1u32..8, hash in any::<bool>()) {
            let scheme = if hash { Scheme::Hash } else { Scheme::Slice };
            for (i, id) in ids.iter().enumerate() {
                let owners = (1..=count)
                    .filter(|&k| Partition { scheme, shard: k, count }.contains(i, id))
                    .count();
                prop_assert_eq!(owners, 1);
            }
        }

        #[test]
        fn adding_cells_never_moves_a_cell_under_hash(
            ids in ids(),
            added in ids(),
            at in any::<proptest::sample::Index>(),
            count in 1u32..8,
        ) {
            let p = Partition { scheme: Scheme::Hash, shard: 1, count };
            let before: Vec<u32> = ids.iter().enumerate().map(|(i, id)| p.shard_of(i, id)).collect();
            // New cells go anywhere in the plan, shifting positions.
            let mut grown = ids.clone();
            let cut = at.index(ids.len() + 1);
            for id in added {
                if !ids.contains(&id) {
                    grown.insert(cut, id);
                }
            }
            for (id, shard) in ids.iter().zip(before) {
                let i = grown.iter().position(|g| g == id).unwrap();
                prop_assert_eq!(p.shard_of(i, id), shard, "{} moved", id);
            }
        }
    }
}
