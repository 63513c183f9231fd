//! Unit tests of the state machine: commands, limits, retries and dead letters, topic
//! fan-out with filters and retained-log reference counting, snapshot round trips.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use cloudware_bus::{BusConfig, QueueId, QueuePolicy};
use cloudware_raft::StateMachine;

use crate::command::{
    Body, Command, Outcome, QueueKey, Rejection, WirePolicy, WireSubscription, decode, encode,
};
use crate::machine::BusMachine;

fn machine() -> BusMachine {
    machine_holding(1 << 20)
}

fn machine_holding(max_stored_bytes: u64) -> BusMachine {
    BusMachine::new(
        &BusConfig {
            max_payload_bytes: 64,
            default_policy: QueuePolicy {
                max_depth: 3,
                max_attempts: 2,
                backoff_initial: Duration::from_millis(100),
                backoff_max: Duration::from_secs(1),
                lease_timeout: Duration::from_secs(1),
            },
        },
        max_stored_bytes,
    )
}

fn queue() -> QueueKey {
    QueueKey::from(&QueueId::queue("t", "jobs"))
}

fn body(payload: &str) -> Body {
    Body {
        payload: payload.as_bytes().to_vec(),
        attributes: Vec::new(),
    }
}

fn send(m: &BusMachine, payload: &str, at_ms: u64) -> Outcome {
    m.apply_command(&Command::Send {
        queue: queue(),
        msg: body(payload),
        at_ms,
    })
}

/// Applies through the raft entry point (encoded), as a member would.
fn apply_encoded(m: &mut BusMachine, command: &Command) -> Outcome {
    decode(&m.apply(1, &encode(command))).unwrap()
}

#[test]
fn send_assigns_ids_and_enforces_limits() {
    let mut m = machine();
    assert_eq!(send(&m, "a", 1), Outcome::Sent { id: 1 });
    assert_eq!(
        apply_encoded(
            &mut m,
            &Command::Send {
                queue: queue(),
                msg: body("b"),
                at_ms: 2
            }
        ),
        Outcome::Sent { id: 2 }
    );
    assert_eq!(send(&m, "c", 3), Outcome::Sent { id: 3 });
    assert!(matches!(
        send(&m, "d", 4),
        Outcome::Rejected(Rejection::Full {
            depth: 3,
            limit: 3,
            ..
        })
    ));
    let big = "x".repeat(65);
    assert!(matches!(
        send(&m, &big, 5),
        Outcome::Rejected(Rejection::TooLarge {
            size: 65,
            limit: 64
        })
    ));
    let sub = QueueKey::from(&QueueId::subscription("t", "topic", "s"));
    assert!(matches!(
        m.apply_command(&Command::Send {
            queue: sub,
            msg: body("x"),
            at_ms: 6
        }),
        Outcome::Rejected(Rejection::NotAQueue { .. })
    ));
    assert!(matches!(
        decode::<Outcome>(&m.apply(9, b"garbage")).unwrap(),
        Outcome::Rejected(Rejection::Malformed(_))
    ));
    // Ack frees room; ids are never reused.
    assert_eq!(
        m.apply_command(&Command::Ack {
            queue: queue(),
            id: 2
        }),
        Outcome::Acked { removed: true }
    );
    assert_eq!(
        m.apply_command(&Command::Ack {
            queue: queue(),
            id: 2
        }),
        Outcome::Acked { removed: false }
    );
    assert_eq!(send(&m, "e", 7), Outcome::Sent { id: 4 });
    let stats = m.shared.read().stats(&queue(), 10, &HashSet::from([1]));
    assert_eq!((stats.depth, stats.in_flight, stats.ready), (3, 1, 2));
    assert_eq!(
        (stats.sent_total, stats.acked_total, stats.last_id),
        (4, 1, 4)
    );
}

#[test]
fn failures_back_off_then_dead_letter_and_replay_resets() {
    let m = machine();
    send(&m, "a", 1000);
    let fail = |attempt, at_ms| {
        m.apply_command(&Command::Fail {
            queue: queue(),
            id: 1,
            attempt,
            error: format!("boom {attempt}"),
            at_ms,
        })
    };
    // A stale report (wrong attempt) does not count.
    assert_eq!(
        fail(2, 1000),
        Outcome::Failed {
            counted: false,
            dead: false
        }
    );
    assert_eq!(
        fail(1, 1000),
        Outcome::Failed {
            counted: true,
            dead: false
        }
    );
    let none = HashSet::new();
    let (due, next) = m.shared.read().due(&queue(), 1050, &none, 10);
    assert!(due.is_empty(), "backing off");
    assert_eq!(next, Some(1100));
    let (due, _) = m.shared.read().due(&queue(), 1100, &none, 10);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].attempt, 2);
    assert_eq!(due[0].source, "jobs");
    assert_eq!(
        fail(2, 1200),
        Outcome::Failed {
            counted: true,
            dead: true
        }
    );
    let dead = m.shared.read().dead_letters(&queue(), None, 10);
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (1, 2));
    assert_eq!(dead[0].last_error, "boom 2");
    assert_eq!(dead[0].dead_at_ms, 1200);
    assert_eq!(m.shared.read().stats(&queue(), 0, &none).depth, 0);

    assert_eq!(
        m.apply_command(&Command::Replay {
            queue: queue(),
            ids: Some(vec![1, 9])
        }),
        Outcome::Count { count: 1 }
    );
    let (due, _) = m.shared.read().due(&queue(), 0, &none, 10);
    assert_eq!((due[0].id, due[0].attempt), (1, 1));
    assert!(m.shared.read().dead_letters(&queue(), None, 10).is_empty());

    // A policy set for the queue wins over the default.
    let policy = WirePolicy {
        max_attempts: 1,
        ..WirePolicy::from(&QueuePolicy::default())
    };
    m.apply_command(&Command::SetPolicy {
        queue: queue(),
        policy,
    });
    assert_eq!(
        fail(1, 2000),
        Outcome::Failed {
            counted: true,
            dead: true
        }
    );
    assert_eq!(
        m.apply_command(&Command::PurgeDead {
            queue: queue(),
            ids: None
        }),
        Outcome::Count { count: 1 }
    );
}

fn subscription(subscriber: &str, filter: &[(&str, &str)]) -> WireSubscription {
    WireSubscription {
        tenant: "t".into(),
        topic: "orders".into(),
        subscriber: subscriber.into(),
        filter: filter
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn publish(m: &BusMachine, region: &str) -> Outcome {
    m.apply_command(&Command::Publish {
        tenant: "t".into(),
        topic: "orders".into(),
        msg: Body {
            payload: b"o".to_vec(),
            attributes: vec![("region".into(), region.into())],
        },
        at_ms: 1,
    })
}

#[test]
fn publish_fans_out_by_filter_and_releases_the_log() {
    let m = machine();
    assert_eq!(
        publish(&m, "eu"),
        Outcome::Published {
            id: 1,
            delivered_to: 0
        }
    );
    m.apply_command(&Command::SetSubscriptions {
        subscriptions: vec![
            subscription("all", &[]),
            subscription("eu", &[("region", "eu")]),
        ],
    });
    assert_eq!(
        publish(&m, "eu"),
        Outcome::Published {
            id: 2,
            delivered_to: 2
        }
    );
    assert_eq!(
        publish(&m, "us"),
        Outcome::Published {
            id: 3,
            delivered_to: 1
        }
    );
    let all = QueueKey::from(&QueueId::subscription("t", "orders", "all"));
    let eu = QueueKey::from(&QueueId::subscription("t", "orders", "eu"));
    let none = HashSet::new();
    let ids = |q: &QueueKey| -> Vec<u64> {
        m.shared
            .read()
            .due(q, 0, &none, 10)
            .0
            .iter()
            .map(|d| d.id)
            .collect()
    };
    assert_eq!(ids(&all), vec![2, 3]);
    assert_eq!(ids(&eu), vec![2]);
    assert_eq!(m.shared.read().retained_count(), 2);
    m.apply_command(&Command::Ack {
        queue: all.clone(),
        id: 2,
    });
    assert_eq!(m.shared.read().retained_count(), 2, "eu still holds 2");
    m.apply_command(&Command::Ack {
        queue: eu.clone(),
        id: 2,
    });
    m.apply_command(&Command::Ack {
        queue: all.clone(),
        id: 3,
    });
    assert_eq!(m.shared.read().retained_count(), 0);

    // A dead-lettered publication keeps its body after the log drops it; replay restores it.
    publish(&m, "eu");
    for attempt in 1..=2 {
        m.apply_command(&Command::Fail {
            queue: eu.clone(),
            id: 4,
            attempt,
            error: "x".into(),
            at_ms: 0,
        });
    }
    m.apply_command(&Command::Ack {
        queue: all.clone(),
        id: 4,
    });
    assert_eq!(m.shared.read().retained_count(), 0);
    assert_eq!(m.shared.read().dead_letters(&eu, None, 10)[0].payload, b"o");
    m.apply_command(&Command::Replay {
        queue: eu.clone(),
        ids: None,
    });
    let due = m.shared.read().due(&eu, 0, &none, 10).0;
    assert_eq!((due[0].id, due[0].payload.as_slice()), (4, &b"o"[..]));

    // All or nothing: a full subscription refuses the publication for everyone.
    for _ in 0..3 {
        publish(&m, "us");
    }
    assert!(matches!(
        publish(&m, "us"),
        Outcome::Rejected(Rejection::Full { .. })
    ));
    assert_eq!(ids(&all).len(), 3);
    // Removing a subscription keeps its backlog but stops new publications.
    m.apply_command(&Command::SetSubscriptions {
        subscriptions: vec![subscription("eu", &[])],
    });
    assert_eq!(
        publish(&m, "eu"),
        Outcome::Published {
            id: 8,
            delivered_to: 1
        }
    );
    assert_eq!(ids(&all).len(), 3);
    assert_eq!(m.shared.read().subscriptions().len(), 1);
}

#[test]
fn snapshot_restores_the_whole_machine() {
    let mut m = machine();
    send(&m, "a", 1);
    m.apply_command(&Command::SetSubscriptions {
        subscriptions: vec![subscription("all", &[])],
    });
    publish(&m, "eu");
    let snapshot = m.snapshot();
    let mut other = machine();
    other.restore(&snapshot).unwrap();
    assert_eq!(*other.shared.read(), *m.shared.read());
    assert!(other.restore(b"\xff\xff\xff").is_err());
    other.restore(&[]).unwrap();
    assert_eq!(other.shared.read().queue_keys(None).len(), 0);
    // Ids continue after a restore.
    m.restore(&snapshot).unwrap();
    assert_eq!(send(&m, "b", 2), Outcome::Sent { id: 2 });
}

#[test]
fn stored_bytes_are_accounted_and_bounded() {
    let m = machine_holding(10);
    assert_eq!(send(&m, "abcd", 1), Outcome::Sent { id: 1 });
    m.apply_command(&Command::SetSubscriptions {
        subscriptions: vec![subscription("a", &[]), subscription("b", &[])],
    });
    // Stored once for both subscriptions: "o" plus "region"/"eu" = 9 bytes would exceed 10.
    assert!(matches!(
        publish(&m, "eu"),
        Outcome::Rejected(Rejection::OverCapacity {
            stored: 4,
            limit: 10
        })
    ));
    assert_eq!(m.shared.read().stored_bytes(), 4);
    m.apply_command(&Command::Ack {
        queue: queue(),
        id: 1,
    });
    assert_eq!(m.shared.read().stored_bytes(), 0);
    assert_eq!(
        publish(&m, "eu"),
        Outcome::Published {
            id: 1,
            delivered_to: 2
        }
    );
    assert_eq!(m.shared.read().stored_bytes(), 9);
    let a = QueueKey::from(&QueueId::subscription("t", "orders", "a"));
    let b = QueueKey::from(&QueueId::subscription("t", "orders", "b"));
    // A dead letter keeps its own copy while the other subscription still holds the log entry.
    m.apply_command(&Command::Fail {
        queue: a.clone(),
        id: 1,
        attempt: 1,
        error: "x".into(),
        at_ms: 0,
    });
    m.apply_command(&Command::Fail {
        queue: a.clone(),
        id: 1,
        attempt: 2,
        error: "x".into(),
        at_ms: 0,
    });
    assert_eq!(m.shared.read().stored_bytes(), 18);
    m.apply_command(&Command::Ack { queue: b, id: 1 });
    assert_eq!(m.shared.read().stored_bytes(), 9);
    m.apply_command(&Command::Replay {
        queue: a.clone(),
        ids: None,
    });
    assert_eq!(m.shared.read().stored_bytes(), 9);
    m.apply_command(&Command::Ack { queue: a, id: 1 });
    assert_eq!(m.shared.read().stored_bytes(), 0);
}
