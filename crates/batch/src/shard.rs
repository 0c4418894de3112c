//! A stable share of the inputs: input `id` belongs to shard `i` of `N` when the first 8 bytes of
//! sha256(id), read as a big-endian integer, are `i` modulo `N`. The hash is the same on every
//! machine and every run (unlike Rust's randomised hasher), the shares are disjoint and cover
//! all inputs, and adding an input never moves another one.

use sha2::{Digest, Sha256};

use crate::error::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// All inputs.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u64, count: u64) -> Result<Shard, Error> {
        let given = format!("{index}/{count}");
        if count == 0 {
            return Err(Error::Shard {
                given,
                message: "N must be at least 1".into(),
            });
        }
        if index >= count {
            return Err(Error::Shard {
                given,
                message: format!("i must be below N ({count})"),
            });
        }
        Ok(Shard { index, count })
    }

    /// The inputs of this shard, in their order.
    pub fn select(&self, inputs: &[crate::Input]) -> Vec<crate::Input> {
        inputs
            .iter()
            .filter(|i| self.contains(&i.id))
            .cloned()
            .collect()
    }

    /// Whether the input `id` is in this shard.
    pub fn contains(&self, id: &str) -> bool {
        shard_hash(id) % self.count == self.index
    }
}

/// The stable 64-bit hash sharding uses.
pub fn shard_hash(id: &str) -> u64 {
    let digest = Sha256::digest(id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
}

impl std::str::FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Shard, Error> {
        let bad = |message: &str| Error::Shard {
            given: s.to_string(),
            message: message.to_string(),
        };
        let (i, n) = s.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let i = i.trim().parse().map_err(|_| bad("i is not a number"))?;
        let n = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        Shard::new(i, n).map_err(|_| {
            bad(if n == 0 {
                "N must be at least 1"
            } else {
                "i must be below N"
            })
        })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        for bad in ["4/4", "0/0", "x/2", "1", "-1/2"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("i/N"), "{e}");
        }
    }

    #[test]
    fn the_hash_is_sha256_not_a_process_random_one() {
        // sha256("") starts e3b0c442 98fc1c14: the shard of "" is fixed by the standard.
        assert_eq!(shard_hash(""), 0xe3b0_c442_98fc_1c14);
    }
}
