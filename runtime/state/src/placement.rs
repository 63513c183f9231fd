//! Placement: which hosts of a cluster run an app's instances.
//!
//! An app's [`Scale`](crate::Scale) says how many instances run in the whole
//! cluster; its [`Spread`] rules (like wadm's spread scaler) say over which
//! hosts: each rule names label requirements and a weight, and gets that
//! share of the instances, divided evenly among the hosts that match it.
//!
//! [`plan`] is the scheduler's pure core: given the eligible hosts (ready
//! and up, as the leader observes them), the app's current placement, the
//! load each host already carries and where the services the app imports
//! run, it returns the new placement. It is deterministic and stable: a
//! host keeps its instances while it stays eligible and the numbers do not
//! change, so re-planning an unchanged cluster moves nothing. The leader
//! proposes the result as [`Command::Place`](crate::Command::Place).

use crate::error::CommandError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most spread rules one app may have.
pub const MAX_SPREAD_RULES: usize = 16;

/// One spread rule: the hosts whose labels include every requirement get
/// `weight` parts of the app's instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spread {
    /// Labels a host must carry (`zone=a`, …); empty matches every host.
    #[serde(default)]
    pub requirements: BTreeMap<String, String>,
    /// This rule's share, relative to the other rules' weights (> 0).
    pub weight: u32,
}

impl Spread {
    /// Whether a host with `labels` matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    }

    /// Checks a set of rules: at most [`MAX_SPREAD_RULES`], weights > 0,
    /// label keys and values well formed.
    pub fn validate(rules: &[Spread]) -> Result<(), CommandError> {
        let invalid = |reason: String| Err(CommandError::InvalidSpread { reason });
        if rules.len() > MAX_SPREAD_RULES {
            return invalid(format!("at most {MAX_SPREAD_RULES} spread rules"));
        }
        for rule in rules {
            if rule.weight == 0 || rule.weight > 1_000_000 {
                return invalid(format!(
                    "a weight is between 1 and 1000000, not {}",
                    rule.weight
                ));
            }
            for (key, value) in &rule.requirements {
                if let Err(reason) = crate::hosts::check_label(key, value) {
                    return invalid(reason);
                }
            }
        }
        Ok(())
    }
}

/// A host the scheduler may place instances on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Its id.
    pub id: u64,
    /// Its labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Instances of other apps placed on it.
    pub load: u32,
    /// How many of the services the app imports run on it (locality).
    pub affinity: u32,
}

/// The placement of `instances` instances under `spread` (empty: one rule
/// matching every host) over `candidates`, given the `current` placement.
///
/// Instances of a rule no candidate matches are not placed (the rules are
/// constraints, as in wadm); the result may therefore hold fewer than
/// `instances`. With no candidates at all the current placement is kept:
/// there is nowhere better to go.
pub fn plan(
    instances: u32,
    spread: &[Spread],
    candidates: &[Candidate<'_>],
    current: &BTreeMap<u64, u32>,
) -> BTreeMap<u64, u32> {
    if candidates.is_empty() {
        return current.clone();
    }
    let everywhere = [Spread {
        requirements: BTreeMap::new(),
        weight: 1,
    }];
    let rules = if spread.is_empty() {
        &everywhere[..]
    } else {
        spread
    };
    let mut placed: BTreeMap<u64, u32> = BTreeMap::new();
    for (rule, share) in rules.iter().zip(shares(instances, rules)) {
        let mut matching: Vec<&Candidate<'_>> = candidates
            .iter()
            .filter(|candidate| rule.matches(candidate.labels))
            .collect();
        if matching.is_empty() || share == 0 {
            continue;
        }
        // Who gets the instances that do not divide evenly: hosts near the
        // services the app calls, then hosts that run it already (nothing
        // moves needlessly), then the least loaded, then the lowest id.
        matching.sort_by_key(|candidate| {
            (
                std::cmp::Reverse(candidate.affinity),
                std::cmp::Reverse(current.get(&candidate.id).copied().unwrap_or(0)),
                candidate.load + placed.get(&candidate.id).copied().unwrap_or(0),
                candidate.id,
            )
        });
        let count = u32::try_from(matching.len()).unwrap_or(u32::MAX);
        let (each, extra) = (share / count, share % count);
        for (rank, candidate) in matching.iter().enumerate() {
            let n = each + u32::from(u32::try_from(rank).unwrap_or(u32::MAX) < extra);
            if n > 0 {
                *placed.entry(candidate.id).or_default() += n;
            }
        }
    }
    placed
}

/// Each rule's share of `instances`, by weight (largest remainder; ties to
/// the earlier rule), summing to `instances`.
fn shares(instances: u32, rules: &[Spread]) -> Vec<u32> {
    let total: u64 = rules.iter().map(|rule| u64::from(rule.weight)).sum();
    if total == 0 {
        return vec![0; rules.len()];
    }
    let exact: Vec<(u64, u64)> = rules
        .iter()
        .map(|rule| {
            let parts = u64::from(instances) * u64::from(rule.weight);
            (parts / total, parts % total)
        })
        .collect();
    let mut shares: Vec<u32> = exact
        .iter()
        .map(|(whole, _)| u32::try_from(*whole).unwrap_or(u32::MAX))
        .collect();
    let given: u32 = shares.iter().sum();
    let mut order: Vec<usize> = (0..rules.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(exact[i].1), i));
    for &i in order.iter().take(instances.saturating_sub(given) as usize) {
        shares[i] += 1;
    }
    shares
}

/// Serde for placements: a list of `[host, instances]` pairs rather than a
/// map, whose integer keys would become strings that buffered (tagged enum)
/// deserialization cannot turn back into numbers.
pub mod as_pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    /// Writes the map as `[[host, instances], …]`.
    pub fn serialize<S: Serializer>(map: &BTreeMap<u64, u32>, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(u64, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
        pairs.serialize(s)
    }

    /// Reads `[[host, instances], …]`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u64, u32>, D::Error> {
        Ok(Vec::<(u64, u32)>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rule(pairs: &[(&str, &str)], weight: u32) -> Spread {
        Spread {
            requirements: labels(pairs),
            weight,
        }
    }

    fn candidate<'a>(
        id: u64,
        labels: &'a BTreeMap<String, String>,
        load: u32,
        affinity: u32,
    ) -> Candidate<'a> {
        Candidate {
            id,
            labels,
            load,
            affinity,
        }
    }

    fn placement(pairs: &[(u64, u32)]) -> BTreeMap<u64, u32> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn instances_spread_evenly_without_rules() {
        let none = BTreeMap::new();
        let hosts: Vec<Candidate<'_>> = (1..=3)
            .map(|id| Candidate {
                id,
                labels: &none,
                load: 0,
                affinity: 0,
            })
            .collect();
        assert_eq!(
            plan(7, &[], &hosts, &BTreeMap::new()),
            placement(&[(1, 3), (2, 2), (3, 2)])
        );
        assert_eq!(plan(0, &[], &hosts, &placement(&[(1, 1)])), placement(&[]));
    }

    #[test]
    fn weights_split_instances_between_labelled_hosts() {
        let (a, b) = (labels(&[("zone", "a")]), labels(&[("zone", "b")]));
        let hosts = [
            candidate(1, &a, 0, 0),
            candidate(2, &b, 0, 0),
            candidate(3, &b, 0, 0),
        ];
        let rules = [rule(&[("zone", "a")], 3), rule(&[("zone", "b")], 1)];
        assert_eq!(
            plan(8, &rules, &hosts, &BTreeMap::new()),
            placement(&[(1, 6), (2, 1), (3, 1)])
        );
        // A rule no host matches places nothing.
        let rules = [rule(&[("zone", "c")], 1), rule(&[("zone", "a")], 1)];
        assert_eq!(
            plan(4, &rules, &hosts, &BTreeMap::new()),
            placement(&[(1, 2)])
        );
    }

    #[test]
    fn single_instances_go_to_the_least_loaded_host_and_stay() {
        let none = BTreeMap::new();
        let hosts = [
            candidate(1, &none, 4, 0),
            candidate(2, &none, 1, 0),
            candidate(3, &none, 2, 0),
        ];
        assert_eq!(plan(1, &[], &hosts, &BTreeMap::new()), placement(&[(2, 1)]));
        // Already on host 3: stays there although host 2 is less loaded.
        assert_eq!(
            plan(1, &[], &hosts, &placement(&[(3, 1)])),
            placement(&[(3, 1)])
        );
    }

    #[test]
    fn callers_go_where_their_services_run() {
        let none = BTreeMap::new();
        let hosts = [candidate(1, &none, 0, 0), candidate(2, &none, 5, 1)];
        assert_eq!(
            plan(1, &[], &hosts, &placement(&[(1, 1)])),
            placement(&[(2, 1)])
        );
    }

    #[test]
    fn a_lost_host_s_instances_move_and_nothing_else_does() {
        let none = BTreeMap::new();
        let current = placement(&[(1, 1), (2, 1), (3, 1)]);
        let hosts: Vec<Candidate<'_>> = [1, 3]
            .into_iter()
            .map(|id| Candidate {
                id,
                labels: &none,
                load: 0,
                affinity: 0,
            })
            .collect();
        let next = plan(3, &[], &hosts, &current);
        assert_eq!(next.values().sum::<u32>(), 3);
        assert!(!next.contains_key(&2));
        assert!(next[&1] >= 1 && next[&3] >= 1);
        // No candidates at all: keep what there is.
        assert_eq!(plan(3, &[], &[], &current), current);
    }

    #[test]
    fn shares_follow_weights_and_sum_up() {
        let rules = [rule(&[], 1), rule(&[], 1), rule(&[], 1)];
        assert_eq!(shares(10, &rules), vec![4, 3, 3]);
        assert_eq!(shares(2, &rules), vec![1, 1, 0]);
        let rules = [rule(&[], 70), rule(&[], 30)];
        assert_eq!(shares(10, &rules), vec![7, 3]);
        assert_eq!(shares(1, &rules), vec![1, 0]);
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(Spread::validate(&[rule(&[], 0)]).is_err());
        assert!(Spread::validate(&[rule(&[("", "a")], 1)]).is_err());
        assert!(Spread::validate(&vec![rule(&[], 1); MAX_SPREAD_RULES + 1]).is_err());
        assert!(Spread::validate(&[rule(&[("zone", "a")], 2)]).is_ok());
    }
}
