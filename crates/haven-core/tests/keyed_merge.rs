//! The merge rule for sets and dictionaries, with the examples of
//! `docs/conflicts.md`: each element of a set, and each key of a
//! dictionary, merges like a field (causality first, then the clock).

use haven_core::merge::{apply, Hlc, Instruction, ObjectState, Overruled, Writer};
use haven_core::Value;
use proptest::prelude::*;
use std::collections::BTreeMap;

const L: u64 = 1;
const R: u64 = 2;

fn writer(version: u64, base_version: u64, millis: u64, replica: u64) -> Writer {
    Writer { version, base_version, hlc: Hlc { millis, counter: 0 }, replica }
}

fn create() -> Instruction {
    Instruction::Create { object_type: "Dog".into(), pk: 1.into(), fields: vec![("_id".into(), 1.into())] }
}

fn whole(field: &str, value: Value) -> Instruction {
    Instruction::Set { object_type: "Dog".into(), pk: 1.into(), field: field.into(), value }
}

fn add(color: &str) -> Instruction {
    Instruction::SetAdd { object_type: "Dog".into(), pk: 1.into(), field: "colors".into(), value: color.into() }
}

fn remove(color: &str) -> Instruction {
    Instruction::SetRemove { object_type: "Dog".into(), pk: 1.into(), field: "colors".into(), value: color.into() }
}

fn put(key: &str, value: i64) -> Instruction {
    Instruction::DictionaryPut {
        object_type: "Dog".into(),
        pk: 1.into(),
        field: "scores".into(),
        key: key.into(),
        value: value.into(),
    }
}

fn unput(key: &str) -> Instruction {
    Instruction::DictionaryRemove { object_type: "Dog".into(), pk: 1.into(), field: "scores".into(), key: key.into() }
}

fn colors(items: &[&str]) -> Value {
    Value::Set(haven_core::canonical_set(items.iter().map(|c| Value::from(*c))))
}

fn scores(entries: &[(&str, i64)]) -> Value {
    Value::Dictionary(entries.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect())
}

/// Dog 1 with colors {brown} and scores {agility: 5}, written by L at
/// version 1 (clock 1).
fn baseline() -> Vec<(Instruction, Writer)> {
    vec![
        (create(), writer(1, 0, 1, L)),
        (whole("colors", colors(&["brown"])), writer(1, 0, 1, L)),
        (whole("scores", scores(&[("agility", 5)])), writer(1, 0, 1, L)),
    ]
}

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

/// The field's value after the baseline and `then`.
fn after(field: &str, then: Vec<(Instruction, Writer)>) -> (Value, Vec<Overruled>) {
    let steps: Vec<_> = baseline().into_iter().chain(then).collect();
    let (state, reasons) = integrate(&steps);
    let Some(ObjectState::Live { fields, .. }) = state else { panic!("no live object") };
    (fields[field].value.clone(), reasons)
}

#[test]
fn concurrent_adds_are_all_kept() {
    let (value, dropped) =
        after("colors", vec![(add("white"), writer(2, 1, 20, L)), (add("black"), writer(3, 1, 10, R))]);
    assert_eq!(value, colors(&["black", "brown", "white"]));
    assert!(dropped.is_empty());
}

#[test]
fn concurrent_add_and_remove_of_one_element_go_to_the_later_clock() {
    // R removes brown at 30 while L, not having seen it, adds brown at 20: the removal is later.
    let (value, dropped) =
        after("colors", vec![(remove("brown"), writer(2, 1, 30, R)), (add("brown"), writer(3, 1, 20, L))]);
    assert_eq!(value, colors(&[]));
    assert_eq!(dropped, [Overruled::OlderThanServer]);
    // In the other order of arrival the result is the same.
    let (value, _) = after("colors", vec![(add("brown"), writer(2, 1, 20, L)), (remove("brown"), writer(3, 1, 30, R))]);
    assert_eq!(value, colors(&[]));
    // With the add later, the add wins.
    let (value, _) = after("colors", vec![(remove("brown"), writer(2, 1, 30, R)), (add("brown"), writer(3, 1, 40, L))]);
    assert_eq!(value, colors(&["brown"]));
}

#[test]
fn a_removal_after_seeing_the_add_wins_whatever_the_clocks() {
    // R's clock runs behind, but R had seen L's add (version 2) when it removed.
    let (value, dropped) =
        after("colors", vec![(add("white"), writer(2, 1, 50, L)), (remove("white"), writer(3, 2, 10, R))]);
    assert_eq!(value, colors(&["brown"]));
    assert!(dropped.is_empty());
}

#[test]
fn dictionary_keys_merge_one_by_one() {
    let (value, dropped) = after(
        "scores",
        vec![
            (put("speed", 3), writer(2, 1, 20, L)),
            (put("agility", 7), writer(3, 1, 30, L)),
            (put("agility", 6), writer(4, 1, 10, R)), // older than L's 7
            (put("stamina", 2), writer(5, 1, 15, R)),
        ],
    );
    assert_eq!(value, scores(&[("agility", 7), ("speed", 3), ("stamina", 2)]));
    assert_eq!(dropped, [Overruled::OlderThanServer]);
}

#[test]
fn a_dictionary_removal_is_a_write_of_its_key() {
    // R removes agility later than L's concurrent put: the key is gone.
    let (value, _) =
        after("scores", vec![(put("agility", 9), writer(2, 1, 20, L)), (unput("agility"), writer(3, 1, 30, R))]);
    assert_eq!(value, scores(&[]));
    // An older concurrent removal loses to the put.
    let (value, dropped) =
        after("scores", vec![(put("agility", 9), writer(2, 1, 20, L)), (unput("agility"), writer(3, 1, 10, R))]);
    assert_eq!((value, dropped), (scores(&[("agility", 9)]), vec![Overruled::OlderThanServer]));
}

#[test]
fn a_whole_write_replaces_what_its_writer_saw_and_keeps_concurrent_additions() {
    // R adds white; L, not having seen it, writes colors whole as {black}.
    let (value, _) = after(
        "colors",
        vec![(add("white"), writer(2, 1, 20, R)), (whole("colors", colors(&["black"])), writer(3, 1, 30, L))],
    );
    assert_eq!(value, colors(&["black", "white"]), "brown, which L had seen, is gone; R's white stays");
    // The same for a dictionary, and for a clear (a whole write of nothing).
    let (value, _) = after(
        "scores",
        vec![(put("speed", 3), writer(2, 1, 20, R)), (whole("scores", scores(&[])), writer(3, 1, 30, L))],
    );
    assert_eq!(value, scores(&[("speed", 3)]));
}

#[test]
fn concurrent_whole_writes_keep_the_entries_of_both() {
    let (value, dropped) = after(
        "colors",
        vec![
            (whole("colors", colors(&["black"])), writer(2, 1, 20, R)),
            (whole("colors", colors(&["white"])), writer(3, 1, 30, L)),
        ],
    );
    assert_eq!(value, colors(&["black", "white"]), "brown, which both had seen, is gone");
    assert!(dropped.is_empty());
}

#[test]
fn a_losing_whole_write_keeps_the_fields_later_stamp() {
    // L writes scores whole at 30, R at 10, X sets it to null at 20, all
    // concurrent: L's write is the latest, in either order of R and X.
    let l = (whole("scores", scores(&[("a", 1)])), writer(2, 1, 30, L));
    let r = (whole("scores", scores(&[("b", 2)])), writer(3, 1, 10, R));
    let x = (whole("scores", Value::Null), writer(4, 1, 20, 9));
    let (one, _) = after("scores", vec![l.clone(), r.clone(), x.clone()]);
    let (two, _) = after("scores", vec![l, x, r]);
    assert_eq!(one, two);
}

#[test]
fn an_entry_operation_on_another_kind_of_property_is_dropped() {
    let (value, dropped) = after("scores", vec![(add("white"), writer(2, 1, 20, L))]);
    assert_eq!(value, scores(&[("agility", 5)]));
    let (_, dropped_on_set) = after("colors", vec![(put("x", 1), writer(2, 1, 20, L))]);
    assert_eq!(dropped, dropped_on_set);
    let (_, dropped) = {
        let steps = vec![(
            Instruction::SetAdd { object_type: "Dog".into(), pk: 1.into(), field: "_id".into(), value: 1.into() },
            writer(2, 1, 20, L),
        )];
        after("_id", steps)
    };
    assert_eq!(dropped, [Overruled::NotAList]);
}

/// One random edit: (replica, element or key, add/put or remove, value).
fn any_edit() -> impl Strategy<Value = (u64, u8, bool, i64)> {
    (1u64..4, 0u8..4, any::<bool>(), 0i64..5)
}

proptest! {
    /// Concurrent edits (every writer had seen only the baseline) give the
    /// same set and dictionary whatever order the server integrates
    /// different replicas' edits in: each entry goes to the latest clock.
    #[test]
    fn concurrent_edits_converge_in_any_order(
        edits in proptest::collection::vec(any_edit(), 1..12),
        order in any::<u64>(),
    ) {
        let instructions: Vec<(Instruction, u64, u64)> = edits
            .iter()
            .enumerate()
            .flat_map(|(n, (replica, k, present, v))| {
                let key = format!("k{k}");
                let millis = 10 + n as u64;
                let set = if *present { add(&key) } else { remove(&key) };
                let dictionary = if *present { put(&key, *v) } else { unput(&key) };
                [(set, *replica, millis), (dictionary, *replica, millis)]
            })
            .collect();
        let run = |shuffled: &[(Instruction, u64, u64)]| {
            let steps: Vec<_> = shuffled
                .iter()
                .enumerate()
                .map(|(n, (i, replica, millis))| (i.clone(), writer(2 + n as u64, 1, *millis, *replica)))
                .collect();
            let (state, _) = integrate(&baseline().into_iter().chain(steps).collect::<Vec<_>>());
            let Some(ObjectState::Live { fields, .. }) = state else { panic!() };
            (fields["colors"].value.clone(), fields["scores"].value.clone())
        };
        let mut shuffled = instructions.clone();
        let mut seed = order;
        for i in (1..shuffled.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (seed >> 33) as usize % (i + 1));
        }
        // The server integrates one replica's changesets in its order:
        // only different replicas' edits interleave differently.
        for replica in 1..4 {
            let mut own = instructions.iter().filter(|(_, r, _)| *r == replica);
            for slot in shuffled.iter_mut().filter(|(_, r, _)| *r == replica) {
                *slot = own.next().expect("as many").clone();
            }
        }
        let in_order = run(&instructions);
        prop_assert_eq!(&in_order, &run(&shuffled));
        // And each entry is what its latest write made it.
        let mut latest: BTreeMap<String, (bool, i64)> = BTreeMap::new();
        for (_, k, present, v) in &edits {
            latest.insert(format!("k{k}"), (*present, *v));
        }
        let (set, dictionary) = in_order;
        for (key, (present, v)) in latest {
            prop_assert_eq!(set.as_set().unwrap().contains(&Value::from(key.as_str())), present);
            prop_assert_eq!(dictionary.as_dictionary().unwrap().get(&key).cloned(), present.then_some(Value::from(v)));
        }
    }
}
