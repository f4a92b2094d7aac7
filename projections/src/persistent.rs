//! The persistent collections read models keep their state in, and the few operations `imbl` does not
//! provide. A clone of an `OrdMap`, `OrdSet` or `Vector` shares its nodes with the original, so publishing a
//! snapshot after every batch of events costs a few pointer copies, and a change copies only the path to
//! what it touches.

pub use imbl::{OrdMap, OrdSet, Vector};

/// Keep only the members of `set` for which `keep` holds.
pub fn retain_set<T: Ord + Clone>(set: &mut OrdSet<T>, keep: impl Fn(&T) -> bool) {
    let gone: Vec<T> = set.iter().filter(|x| !keep(x)).cloned().collect();
    for x in gone {
        set.remove(&x);
    }
}

/// Keep only the entries of `map` for which `keep` holds.
pub fn retain_map<K: Ord + Clone, V: Clone>(map: &mut OrdMap<K, V>, keep: impl Fn(&K, &V) -> bool) {
    let gone: Vec<K> = map
        .iter()
        .filter(|(k, v)| !keep(k, v))
        .map(|(k, _)| k.clone())
        .collect();
    for k in gone {
        map.remove(&k);
    }
}

/// The index of the first element for which `pred` is false (`pred` must hold for a prefix of `v`), as
/// `slice::partition_point`.
pub fn partition_point<T: Clone>(v: &Vector<T>, pred: impl Fn(&T) -> bool) -> usize {
    match v.binary_search_by(|x| {
        if pred(x) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        }
    }) {
        Ok(i) | Err(i) => i,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_point_matches_the_slice_one() {
        let xs = [1, 2, 2, 3, 5, 8, 8, 8, 13];
        let v: Vector<i32> = xs.iter().copied().collect();
        for probe in 0..15 {
            assert_eq!(
                partition_point(&v, |x| *x <= probe),
                xs.partition_point(|x| *x <= probe),
                "probe {probe}"
            );
        }
        assert_eq!(partition_point(&Vector::<i32>::new(), |_| true), 0);
    }

    #[test]
    fn retain_keeps_what_matches() {
        let mut s: OrdSet<i32> = (0..10).collect();
        retain_set(&mut s, |x| x % 3 == 0);
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), [0, 3, 6, 9]);
        let mut m: OrdMap<i32, i32> = (0..10).map(|i| (i, i * i)).collect();
        retain_map(&mut m, |_, v| *v > 20);
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [5, 6, 7, 8, 9]);
    }
}
