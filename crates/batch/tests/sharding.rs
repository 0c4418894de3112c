//! `--shard i/N` over any list of inputs: the shares are disjoint, cover every input in order,
//! and adding inputs never moves another one.

use proptest::prelude::*;
use whisper_batch::{Input, Location, Overrides, Shard};

fn inputs(ids: &[String]) -> Vec<Input> {
    ids.iter()
        .map(|id| Input {
            id: id.clone(),
            source: Location::Local(id.into()),
            overrides: Overrides::default(),
        })
        .collect()
}

fn ids_of(v: &[Input]) -> Vec<String> {
    v.iter().map(|i| i.id.clone()).collect()
}

fn shares(all: &[Input], n: u64) -> Vec<Vec<String>> {
    (0..n)
        .map(|i| ids_of(&Shard::new(i, n).unwrap().select(all)))
        .collect()
}

proptest! {
    #[test]
    fn shares_are_disjoint_and_cover_all(
        ids in prop::collection::btree_set("[a-z0-9/._-]{0,24}", 0..60), n in 1u64..9,
    ) {
        let ids: Vec<String> = ids.into_iter().collect();
        let all = inputs(&ids);
        let mut union: Vec<String> = shares(&all, n).concat();
        prop_assert_eq!(union.len(), ids.len(), "disjoint");
        union.sort();
        prop_assert_eq!(union, ids, "covering");
    }

    #[test]
    fn adding_inputs_moves_no_other(
        ids in prop::collection::btree_set("[a-z]{1,12}\\.wav", 1..40),
        extra in prop::collection::btree_set("[a-z]{1,12}\\.flac", 1..10),
        n in 1u64..9,
    ) {
        let ids: Vec<String> = ids.into_iter().collect();
        let grown: Vec<String> = ids.iter().chain(&extra).cloned().collect();
        let before = shares(&inputs(&ids), n);
        let after = shares(&inputs(&grown), n);
        for (b, a) in before.iter().zip(&after) {
            let kept: Vec<String> = a.iter().filter(|id| ids.contains(id)).cloned().collect();
            prop_assert_eq!(b, &kept);
        }
    }
}

#[test]
fn shares_are_balanced_on_a_real_looking_archive() {
    // 4000 archive-like names over 4 shards: each share within 10% of a quarter.
    let ids: Vec<String> = (0..4000)
        .map(|i| format!("tapes/{:04}/side-{}.wav", i / 2, i % 2))
        .collect();
    let counts: Vec<usize> = shares(&inputs(&ids), 4).iter().map(Vec::len).collect();
    assert_eq!(counts.iter().sum::<usize>(), 4000);
    assert!(
        counts.iter().all(|c| (900..=1100).contains(c)),
        "{counts:?}"
    );
}
