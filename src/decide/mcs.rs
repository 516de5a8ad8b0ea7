//! Drawing a guest's MCS pair: random, unique among known guests, within the configured categories.

use rand::seq::IndexedRandom;
use rand::{Rng, RngExt};

use crate::decide::context::{CategorySet, Pair};

/// How many random draws are tried before searching the whole space in order.
const RANDOM_TRIES: usize = 64;

/// Picks a pair of two categories from `allowed` for which `taken` is false.
///
/// Random draws first (pairs are then spread and unpredictable); when the space is
/// nearly full, every pair is tried in turn, so `None` means it is really exhausted.
pub fn pick_pair<E>(
    allowed: &CategorySet,
    rng: &mut impl Rng,
    mut taken: impl FnMut(Pair) -> Result<bool, E>,
) -> Result<Option<Pair>, E> {
    let cats: Vec<u16> = allowed.iter().collect();
    if cats.len() < 2 {
        return Ok(None);
    }
    for _ in 0..RANDOM_TRIES {
        let mut two = cats.sample(rng, 2);
        let (a, b) = (*two.next().expect("two"), *two.next().expect("two"));
        let pair = Pair::new(a, b).expect("distinct categories");
        if !taken(pair)? {
            return Ok(Some(pair));
        }
    }
    // Exhaustive search from a random starting category, so that even a nearly full
    // space does not always hand out the lowest free pair.
    let start = rng.random_range(0..cats.len());
    for i in 0..cats.len() {
        let low = cats[(start + i) % cats.len()];
        for &high in cats.iter().filter(|c| **c > low) {
            let pair = Pair::new(low, high).expect("distinct categories");
            if !taken(pair)? {
                return Ok(Some(pair));
            }
        }
    }
    Ok(None)
}

/// The number of distinct pairs `allowed` can form.
pub fn pair_count(allowed: &CategorySet) -> usize {
    let n = allowed.len();
    n * n.saturating_sub(1) / 2
}

/// How many of `total` pairs only root may take: 1 %, and at least 8 (or half of a
/// range smaller than 16 pairs), so that members together, each within its guest quota,
/// can never leave root's domains without a pair.
pub fn root_reserve(total: usize) -> usize {
    (total / 100).max(8.min(total / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fills_a_small_space_then_reports_exhaustion() {
        let allowed = CategorySet::parse("c10.c14").unwrap();
        assert_eq!(pair_count(&allowed), 10);
        let mut rng = rand::rng();
        let mut taken = HashSet::new();
        for _ in 0..10 {
            let pair = pick_pair(&allowed, &mut rng, |p| {
                Ok::<_, std::convert::Infallible>(taken.contains(&p))
            })
            .unwrap()
            .expect("a free pair remains");
            assert!(allowed.contains(pair.low()) && allowed.contains(pair.high()));
            assert!(pair.low() < pair.high());
            assert!(taken.insert(pair), "{pair} handed out twice");
        }
        assert_eq!(
            pick_pair(&allowed, &mut rng, |p| Ok::<_, std::convert::Infallible>(
                taken.contains(&p)
            ))
            .unwrap(),
            None
        );
    }

    #[test]
    fn root_keeps_a_reserve_of_every_range() {
        assert_eq!(root_reserve(45), 8, "c0.c9");
        assert_eq!(root_reserve(523_776), 5_237, "c0.c1023");
        assert_eq!(root_reserve(3), 1);
        assert_eq!(root_reserve(1), 0);
    }
}
