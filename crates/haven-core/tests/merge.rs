//! The merge rule, scenario by scenario and as properties.

use haven_core::merge::{apply, Hlc, Instruction, ObjectState, Overruled, Writer};
use haven_core::Value;
use proptest::prelude::*;

const L: u64 = 1;
const R: u64 = 2;

fn writer(version: u64, base_version: u64, millis: u64, replica: u64) -> Writer {
    Writer { version, base_version, hlc: Hlc { millis, counter: 0 }, replica }
}

fn create(fields: &[(&str, Value)]) -> Instruction {
    Instruction::Create {
        object_type: "Dog".into(),
        pk: 1.into(),
        fields: fields.iter().map(|(n, v)| (n.to_string(), v.clone())).collect(),
    }
}

fn set(field: &str, value: impl Into<Value>) -> Instruction {
    Instruction::Set { object_type: "Dog".into(), pk: 1.into(), field: field.into(), value: value.into() }
}

fn increment(field: &str, delta: i64) -> Instruction {
    Instruction::Increment { object_type: "Dog".into(), pk: 1.into(), field: field.into(), delta: delta.into() }
}

fn delete() -> Instruction {
    Instruction::Delete { object_type: "Dog".into(), pk: 1.into() }
}

/// Applies instructions in server order; returns the state and every drop reason.
fn integrate(steps: &[(Instruction, Writer)]) -> (Option<ObjectState>, Vec<Overruled>) {
    let mut state = None;
    let mut reasons = vec![];
    for (i, w) in steps {
        let applied = apply(state.as_ref(), i, w);
        state = applied.state;
        reasons.extend(applied.dropped.iter().map(|d| d.reason));
    }
    (state, reasons)
}

fn field(state: &Option<ObjectState>, name: &str) -> Option<Value> {
    match state {
        Some(ObjectState::Live { fields, .. }) => fields.get(name).map(|f| f.value.clone()),
        _ => None,
    }
}

/// Rex created by L at version 1 (clock 1), seen by everyone.
fn baseline() -> (Instruction, Writer) {
    (create(&[("name", "Rex".into()), ("age", 1.into())]), writer(1, 0, 1, L))
}

#[test]
fn concurrent_sets_later_clock_wins_in_either_order() {
    // R's write is later in wall-clock time.
    for r_first in [true, false] {
        let l = set("age", 4);
        let r = set("age", 6);
        let steps = if r_first {
            vec![baseline(), (r, writer(2, 1, 30, R)), (l, writer(3, 1, 20, L))]
        } else {
            vec![baseline(), (l, writer(2, 1, 20, L)), (r, writer(3, 1, 30, R))]
        };
        let (state, dropped) = integrate(&steps);
        assert_eq!(field(&state, "age"), Some(6.into()));
        if r_first {
            assert_eq!(dropped, vec![Overruled::OlderThanServer]);
        }
    }
    // L's write is the later one.
    let (state, _) =
        integrate(&[baseline(), (set("age", 6), writer(2, 1, 20, R)), (set("age", 4), writer(3, 1, 30, L))]);
    assert_eq!(field(&state, "age"), Some(4.into()));
}

#[test]
fn a_writer_who_saw_the_value_wins_whatever_its_clock() {
    let (state, _) =
        integrate(&[baseline(), (set("age", 6), writer(2, 1, 900, R)), (set("age", 4), writer(3, 2, 5, L))]);
    assert_eq!(field(&state, "age"), Some(4.into()), "causality before clocks");
}

#[test]
fn fields_merge_one_by_one() {
    let (state, dropped) =
        integrate(&[baseline(), (set("name", "Max"), writer(2, 1, 30, R)), (set("age", 4), writer(3, 1, 20, L))]);
    assert_eq!((field(&state, "name"), field(&state, "age")), (Some("Max".into()), Some(4.into())));
    assert!(dropped.is_empty());
}

#[test]
fn delete_wins() {
    // L deletes while R sets, in both orders, and R deletes while L sets.
    for steps in [
        vec![baseline(), (delete(), writer(2, 1, 10, L)), (set("age", 6), writer(3, 1, 20, R))],
        vec![baseline(), (set("age", 6), writer(2, 1, 20, R)), (delete(), writer(3, 1, 10, L))],
    ] {
        let (state, _) = integrate(&steps);
        assert!(matches!(state, Some(ObjectState::Deleted { .. })), "{state:?}");
    }
    let (_, dropped) = integrate(&[baseline(), (delete(), writer(2, 1, 10, R)), (set("age", 4), writer(3, 1, 20, L))]);
    assert_eq!(dropped, vec![Overruled::DeletedOnServer]);
}

#[test]
fn created_again_after_a_seen_delete() {
    let recreate = create(&[("name", "Rex II".into()), ("age", 0.into())]);
    let (state, dropped) = integrate(&[
        baseline(),
        (delete(), writer(2, 1, 10, R)),
        (recreate, writer(3, 2, 20, R)),
        // L never saw the delete: its write was about the deleted Rex.
        (set("age", 4), writer(4, 1, 30, L)),
        // A writer who saw the new Rex writes to it.
        (set("age", 2), writer(5, 3, 40, L)),
    ]);
    assert_eq!((field(&state, "name"), field(&state, "age")), (Some("Rex II".into()), Some(2.into())));
    assert_eq!(dropped, vec![Overruled::DeletedOnServer]);
    // Without having seen the delete, a create does not bring it back.
    let (state, dropped) =
        integrate(&[baseline(), (delete(), writer(2, 1, 10, R)), (create(&[("age", 9.into())]), writer(3, 1, 20, L))]);
    assert!(matches!(state, Some(ObjectState::Deleted { .. })));
    assert_eq!(dropped, vec![Overruled::DeletedOnServer]);
}

#[test]
fn increments_add_up() {
    // L +10 and R +5 on age 1.
    let (state, _) = integrate(&[
        baseline(),
        (increment("age", 5), writer(2, 1, 20, R)),
        (increment("age", 10), writer(3, 1, 10, L)),
    ]);
    assert_eq!(field(&state, "age"), Some(16.into()));
    let (_, dropped) = integrate(&[baseline(), (increment("name", 1), writer(2, 1, 20, R))]);
    assert_eq!(dropped, vec![Overruled::NotANumber]);
}

#[test]
fn same_primary_key_same_object() {
    // Both create Dog 3; fields follow the later write.
    let (state, dropped) = integrate(&[
        (create(&[("name", "R's".into()), ("age", 2.into())]), writer(1, 0, 20, R)),
        (create(&[("name", "L's".into()), ("age", 1.into()), ("tags", Value::List(vec![]))]), writer(2, 0, 10, L)),
    ]);
    assert_eq!((field(&state, "name"), field(&state, "age")), (Some("R's".into()), Some(2.into())));
    assert_eq!(field(&state, "tags"), Some(Value::List(vec![])), "a field only L wrote is kept");
    assert_eq!(dropped.len(), 2);
}

#[test]
fn nothing_to_change() {
    let (state, dropped) = integrate(&[(set("age", 1), writer(1, 0, 1, L)), (delete(), writer(2, 0, 1, L))]);
    assert_eq!(state, None);
    assert_eq!(dropped, vec![Overruled::NotFound]);
}

fn any_concurrent_write() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        4 => (prop_oneof![Just("a"), Just("b")], -5i64..5).prop_map(|(f, v)| set(f, v)),
        1 => Just(delete()),
    ]
}

proptest! {
    /// Writes made concurrently (all on top of version 1) end the same
    /// whatever order the server receives them in: sets by clock, deletes win.
    #[test]
    fn concurrent_sets_and_deletes_do_not_depend_on_arrival_order(
        writes in proptest::collection::vec(any_concurrent_write(), 1..8),
        order in Just(()).prop_perturb(|_, mut rng| { let mut v: Vec<usize> = (0..8).collect(); for i in (1..8).rev() { v.swap(i, rng.random_range(0..=i)); } v }),
    ) {
        let start = (create(&[("a", 0.into()), ("b", 0.into())]), writer(1, 0, 1, 9));
        // Distinct clocks: write i is made at time 10 + i by replica i.
        let run = |idx: Vec<usize>| {
            let mut steps = vec![start.clone()];
            for (n, i) in idx.into_iter().enumerate() {
                steps.push((writes[i].clone(), writer(2 + n as u64, 1, 10 + i as u64, 100 + i as u64)));
            }
            let (state, _) = integrate(&steps);
            match state {
                Some(ObjectState::Live { fields, .. }) => Some((fields["a"].value.clone(), fields["b"].value.clone())),
                _ => None,
            }
        };
        let in_order = run((0..writes.len()).collect());
        let shuffled = run(order.into_iter().filter(|i| *i < writes.len()).collect());
        prop_assert_eq!(in_order, shuffled);
    }

    /// Concurrent increments all count, in any order.
    #[test]
    fn concurrent_increments_all_count(deltas in proptest::collection::vec(-100i64..100, 1..10)) {
        let mut steps = vec![(create(&[("n", 0.into())]), writer(1, 0, 1, 9))];
        for (i, d) in deltas.iter().enumerate().rev() {
            steps.push((increment("n", *d), writer(2 + i as u64, 1, 5, i as u64)));
        }
        let (state, _) = integrate(&steps);
        prop_assert_eq!(field(&state, "n"), Some(Value::Int(deltas.iter().sum())));
    }
}

#[test]
fn instructions_of_one_changeset_build_on_each_other() {
    // Create then set in one write; delete then create in one write.
    let w = writer(1, 0, 5, L);
    let (state, dropped) = integrate(&[(create(&[("age", 1.into())]), w), (set("age", 2), w)]);
    assert_eq!((field(&state, "age"), dropped), (Some(2.into()), vec![]));
    let w = writer(2, 1, 6, R);
    let (state, dropped) = integrate(&[baseline(), (delete(), w), (create(&[("age", 7.into())]), w)]);
    assert_eq!((field(&state, "age"), dropped), (Some(7.into()), vec![]));
}

#[test]
fn a_replica_has_seen_its_own_earlier_changesets() {
    // L, offline, deletes Dog 1 and in a later transaction creates it again.
    let (state, dropped) = integrate(&[
        baseline(),
        (delete(), writer(2, 1, 10, L)),
        (create(&[("age", 3.into())]), writer(3, 1, 11, L)),
        (set("age", 4), writer(4, 1, 12, L)),
    ]);
    assert_eq!((field(&state, "age"), dropped), (Some(4.into()), vec![]));
    // Its own later set wins even if its clock was bounded to a tie.
    let (state, _) =
        integrate(&[baseline(), (set("age", 5), writer(2, 1, 50, L)), (set("age", 6), writer(3, 1, 50, L))]);
    assert_eq!(field(&state, "age"), Some(6.into()));
}

#[test]
fn an_increment_does_not_lower_the_field_clock() {
    // R sets at 10:05; L's concurrent increment is from 9:00; M's concurrent set from 9:30 must still lose to R's.
    let (state, dropped) = integrate(&[
        baseline(),
        (set("age", 6), writer(2, 1, 1005, R)),
        (increment("age", 1), writer(3, 1, 900, L)),
        (set("age", 0), writer(4, 1, 930, 3)),
    ]);
    assert_eq!(field(&state, "age"), Some(7.into()));
    assert_eq!(dropped, vec![Overruled::OlderThanServer]);
}
