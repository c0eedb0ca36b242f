//! Generated legacy event streams shaped like a real store's (tests and benchmarks).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tenancy_core::event::NewEvent;

/// A legacy event as a ZITADEL writer would push it.
pub fn event(
    instance: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    event_type: &str,
    payload: Value,
) -> NewEvent {
    NewEvent::legacy(
        instance,
        aggregate_type,
        aggregate_id,
        event_type,
        payload,
        "legacy",
    )
}

/// An event of instance aggregate `i`.
pub fn inst(i: &str, t: &str, p: Value) -> NewEvent {
    event(i, "instance", i, t, p)
}

/// An event of org aggregate `o` in instance `i`.
pub fn org(i: &str, o: &str, t: &str, p: Value) -> NewEvent {
    event(i, "org", o, t, p)
}

/// A deterministic pseudo-random generator (xorshift), so failures reproduce.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);
impl Rng {
    /// The next number below `n`.
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A churning stream over several instances: orgs and domains added, verified, primary
/// switched back and forth, removed and re-added; orgs deactivated, reactivated, removed
/// and re-added; one instance removed and its primary custom domain re-used by another
/// (and with [`Shape::moves`], custom domains moving between instances all along). Like a
/// real store's, every event is valid for the write model that emitted it.
pub fn churn(instances: usize, rounds: usize, seed: u64) -> Vec<Vec<NewEvent>> {
    churn_shaped(
        Shape {
            instances,
            orgs: 3,
            moves: false,
        },
        rounds,
        seed,
    )
}

/// The shape of a [`churn_shaped`] stream.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Instances in the stream.
    pub instances: usize,
    /// Organizations per instance (a ZITADEL instance serving many customers has dozens).
    pub orgs: u64,
    /// Custom domains released by one instance and taken by another all along the stream
    /// (not only once at its end): instances projected at different paces meet them in
    /// an order the store did not have.
    pub moves: bool,
}

/// [`churn`] of the given shape.
pub fn churn_shaped(shape: Shape, rounds: usize, seed: u64) -> Vec<Vec<NewEvent>> {
    let Shape {
        instances,
        orgs,
        moves,
    } = shape;
    let orgs = orgs.max(1);
    let mut rng = Rng(seed);
    let mut pushes = Vec::new();
    // org -> domain -> verified
    let mut domains: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    let mut primary: BTreeMap<String, String> = BTreeMap::new();
    let mut active: BTreeMap<String, bool> = BTreeMap::new();
    let mut trusted: BTreeSet<(String, u64)> = BTreeSet::new();
    // instance -> its non-primary custom domains; domains released and free to take
    let mut custom: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut released: Vec<String> = Vec::new();
    for n in 0..instances {
        let i = format!("inst{n}");
        pushes.push(vec![
            inst(
                &i,
                "instance.added",
                json!({"name": format!("Instance {n}")}),
            ),
            inst(
                &i,
                "instance.domain.added",
                json!({"domain": format!("{i}.example"), "generated": true}),
            ),
            inst(
                &i,
                "instance.domain.primary.set",
                json!({"domain": format!("{i}.example")}),
            ),
        ]);
        for o in 0..orgs {
            let o = format!("{i}-o{o}");
            pushes.push(vec![org(
                &i,
                &o,
                "org.added",
                json!({"name": format!("Org {o}")}),
            )]);
            active.insert(o, true);
        }
    }
    for round in 0..rounds {
        let n = rng.next(instances as u64) as usize;
        let i = format!("inst{n}");
        let o = format!("{i}-o{}", rng.next(orgs));
        let d = format!("d{}.{o}.example", rng.next(3));
        let own = domains.entry(o.clone()).or_default();
        let push = match rng.next(10) {
            0 | 1 if !own.contains_key(&d) => {
                own.insert(d.clone(), false);
                vec![org(&i, &o, "org.domain.added", json!({"domain": d}))]
            }
            2 if own.get(&d) == Some(&false) => {
                vec![org(
                    &i,
                    &o,
                    "org.domain.verification.added",
                    json!({"domain": d, "validationType": 1 + rng.next(2)}),
                )]
            }
            3 if own.get(&d) == Some(&false) => {
                own.insert(d.clone(), true);
                vec![org(&i, &o, "org.domain.verified", json!({"domain": d}))]
            }
            4 if own.get(&d) == Some(&true) => {
                primary.insert(o.clone(), d.clone());
                vec![org(&i, &o, "org.domain.primary.set", json!({"domain": d}))]
            }
            5 if own.contains_key(&d) && primary.get(&o) != Some(&d) => {
                own.remove(&d);
                vec![org(&i, &o, "org.domain.removed", json!({"domain": d}))]
            }
            6 => {
                let now = !active[&o];
                active.insert(o.clone(), now);
                vec![org(
                    &i,
                    &o,
                    if now {
                        "org.reactivated"
                    } else {
                        "org.deactivated"
                    },
                    json!({}),
                )]
            }
            7 => vec![org(
                &i,
                &o,
                "org.changed",
                json!({"name": format!("Org {o} r{round}")}),
            )],
            8 if rng.next(4) == 0 => {
                own.clear();
                primary.remove(&o);
                active.insert(o.clone(), true);
                vec![
                    org(&i, &o, "org.removed", json!({})),
                    org(
                        &i,
                        &o,
                        "org.added",
                        json!({"name": format!("Org {o} again {round}")}),
                    ),
                ]
            }
            8 => {
                let t = rng.next(3);
                if trusted.insert((i.clone(), t)) {
                    vec![inst(
                        &i,
                        "instance.trusted_domains.added",
                        json!({"domain": format!("t{t}.example")}),
                    )]
                } else {
                    trusted.remove(&(i.clone(), t));
                    vec![inst(
                        &i,
                        "instance.trusted_domains.removed",
                        json!({"domain": format!("t{t}.example")}),
                    )]
                }
            }
            // Custom instance domains: added, released by one instance and taken by
            // another later on (a domain moving between tenants).
            _ => match if moves { rng.next(4) } else { 2 } {
                0 if !released.is_empty() => {
                    let d = released.swap_remove(rng.next(released.len() as u64) as usize);
                    custom.entry(i.clone()).or_default().push(d.clone());
                    vec![inst(&i, "instance.domain.added", json!({"domain": d}))]
                }
                1 if custom.get(&i).is_some_and(|c| !c.is_empty()) => {
                    let own = custom.entry(i.clone()).or_default();
                    let d = own.swap_remove(rng.next(own.len() as u64) as usize);
                    released.push(d.clone());
                    vec![inst(&i, "instance.domain.removed", json!({"domain": d}))]
                }
                _ => {
                    let d = format!("c{round}.{i}.example");
                    custom.entry(i.clone()).or_default().push(d.clone());
                    vec![inst(&i, "instance.domain.added", json!({"domain": d}))]
                }
            },
        };
        pushes.push(push);
    }
    pushes.push(vec![inst("inst0", "instance.removed", json!({}))]);
    pushes.push(vec![inst(
        "inst1",
        "instance.domain.added",
        json!({"domain": "inst0.example"}),
    )]);
    pushes.push(vec![inst(
        "inst1",
        "instance.domain.primary.set",
        json!({"domain": "inst0.example"}),
    )]);
    pushes
}
