//! The merge rule for lists, with the examples of `docs/conflicts.md`:
//! elements keep their identity, so concurrent edits of one list merge
//! element by element, in sync and in client reset recovery.

mod common;

use haven_core::merge::{apply, ElementId, Hlc, Instruction, ObjectState, Overruled, Writer};
use haven_core::recovery::DropReason;
use haven_core::{Schema, Value};

const L: u64 = 1;
const R: u64 = 2;

fn writer(version: u64, base_version: u64, millis: u64, replica: u64) -> Writer {
    Writer { version, base_version, hlc: Hlc { millis, counter: 0 }, replica }
}

fn hlc(millis: u64) -> Hlc {
    Hlc { millis, counter: 0 }
}

/// The id of the `seq`th element added by the transaction at `millis`
/// (each device's transactions here have clocks of their own).
fn new_id(millis: u64, seq: u32) -> ElementId {
    ElementId { origin: 0xfeed, hlc: hlc(millis), seq }
}

fn create() -> Instruction {
    Instruction::Create { object_type: "Dog".into(), pk: 1.into(), fields: vec![("_id".into(), 1.into())] }
}

fn assign(elements: &[(ElementId, i64)]) -> Instruction {
    Instruction::ListAssign {
        object_type: "Dog".into(),
        pk: 1.into(),
        field: "tags".into(),
        elements: elements.iter().map(|(id, v)| (*id, Value::Int(*v))).collect(),
    }
}

fn insert(after: Option<ElementId>, id: ElementId, value: i64) -> Instruction {
    Instruction::ListInsert {
        object_type: "Dog".into(),
        pk: 1.into(),
        field: "tags".into(),
        after,
        id,
        value: value.into(),
    }
}

fn remove(id: ElementId) -> Instruction {
    Instruction::ListRemove { object_type: "Dog".into(), pk: 1.into(), field: "tags".into(), id }
}

fn moved(id: ElementId, after: Option<ElementId>) -> Instruction {
    Instruction::ListMove { object_type: "Dog".into(), pk: 1.into(), field: "tags".into(), id, after }
}

fn set(id: ElementId, value: i64) -> Instruction {
    Instruction::ListSet { object_type: "Dog".into(), pk: 1.into(), field: "tags".into(), id, value: value.into() }
}

/// Dog 1 with `tags` [1, 2, 3], written by L at version 1 (clock 1).
fn baseline() -> Vec<(Instruction, Writer)> {
    let ids = [(new_id(1, 0), 1), (new_id(1, 1), 2), (new_id(1, 2), 3)];
    vec![(create(), writer(1, 0, 1, L)), (assign(&ids), writer(1, 0, 1, L))]
}

/// The baseline's elements 1, 2 and 3.
fn e(n: u32) -> ElementId {
    new_id(1, n - 1)
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

fn tags(state: &Option<ObjectState>) -> Vec<i64> {
    let Some(ObjectState::Live { fields, .. }) = state else { panic!("no live object: {state:?}") };
    fields["tags"].value.as_list().unwrap().iter().map(|v| v.as_int().unwrap()).collect()
}

fn after_baseline(steps: Vec<(Instruction, Writer)>) -> (Vec<i64>, Vec<Overruled>) {
    let (state, reasons) = integrate(&[baseline(), steps].concat());
    (tags(&state), reasons)
}

#[test]
fn concurrent_appends_are_all_kept_and_runs_do_not_interleave() {
    // Both devices saw [1, 2, 3] and append two elements each, offline.
    let l = writer(3, 1, 10, L);
    let r = writer(2, 1, 20, R);
    let (list, dropped) = after_baseline(vec![
        (insert(Some(e(3)), new_id(20, 0), 21), r),
        (insert(Some(new_id(20, 0)), new_id(20, 1), 22), r),
        (insert(Some(e(3)), new_id(10, 0), 11), l),
        (insert(Some(new_id(10, 0)), new_id(10, 1), 12), l),
    ]);
    assert_eq!(list, [1, 2, 3, 11, 12, 21, 22]);
    assert!(dropped.is_empty());
}

#[test]
fn a_removal_removes_that_element_only() {
    // L removes 2 while R inserts 9 before it and changes 3.
    let (list, dropped) = after_baseline(vec![
        (insert(Some(e(1)), new_id(20, 0), 9), writer(2, 1, 20, R)),
        (set(e(3), 30), writer(2, 1, 20, R)),
        (remove(e(2)), writer(3, 1, 10, L)),
    ]);
    assert_eq!(list, [1, 9, 30]);
    assert!(dropped.is_empty());
}

#[test]
fn a_change_to_a_removed_element_is_dropped() {
    let (list, dropped) =
        after_baseline(vec![(remove(e(2)), writer(2, 1, 20, R)), (set(e(2), 20), writer(3, 1, 30, L))]);
    assert_eq!(list, [1, 3]);
    assert_eq!(dropped, [Overruled::ElementRemoved]);
}

#[test]
fn concurrent_sets_of_one_element_follow_the_field_rule() {
    let (list, dropped) =
        after_baseline(vec![(set(e(2), 20), writer(2, 1, 20, R)), (set(e(2), 10), writer(3, 1, 10, L))]);
    assert_eq!(list, [1, 20, 3]);
    assert_eq!(dropped, [Overruled::OlderThanServer]);
}

#[test]
fn concurrent_moves_of_one_element_the_later_clock_wins_in_either_order() {
    let l = (moved(e(1), Some(e(3))), 10);
    let r = (moved(e(1), Some(e(2))), 20);
    for order in [[l.clone(), r.clone()], [r, l]] {
        let steps = order
            .iter()
            .enumerate()
            .map(|(n, (i, millis))| (i.clone(), writer(2 + n as u64, 1, *millis, 1 + n as u64)));
        let (list, _) = after_baseline(steps.collect());
        assert_eq!(list, [2, 1, 3], "the element moves once and is there once");
    }
}

#[test]
fn a_move_and_a_concurrent_removal_remove_the_element() {
    let (list, dropped) =
        after_baseline(vec![(remove(e(1)), writer(2, 1, 20, R)), (moved(e(1), Some(e(3))), writer(3, 1, 30, L))]);
    assert_eq!(list, [2, 3]);
    assert_eq!(dropped, [Overruled::ElementRemoved]);
}

#[test]
fn a_whole_write_replaces_what_its_writer_saw_and_keeps_concurrent_insertions() {
    let r_insert = (insert(Some(e(3)), new_id(20, 0), 9), writer(2, 1, 20, R));
    let l_assign = (assign(&[(new_id(10, 0), 7), (new_id(10, 1), 8)]), writer(3, 1, 10, L));
    assert_eq!(after_baseline(vec![r_insert.clone(), l_assign.clone()]).0, [7, 8, 9]);
    let (r_insert, l_assign) = ((r_insert.0, writer(3, 1, 20, R)), (l_assign.0, writer(2, 1, 10, L)));
    assert_eq!(after_baseline(vec![l_assign, r_insert]).0, [7, 8, 9]);
}

#[test]
fn concurrent_whole_writes_the_later_clock_wins() {
    let l = assign(&[(new_id(10, 0), 7)]);
    let r = assign(&[(new_id(20, 0), 8)]);
    let (list, _) = after_baseline(vec![(l.clone(), writer(2, 1, 10, L)), (r.clone(), writer(3, 1, 20, R))]);
    assert_eq!(list, [8]);
    let (list, dropped) = after_baseline(vec![(r, writer(2, 1, 20, R)), (l, writer(3, 1, 10, L))]);
    assert_eq!(list, [8]);
    assert_eq!(dropped, [Overruled::OlderThanServer]);
}

#[test]
fn a_list_written_whole_before_element_identity_takes_element_operations() {
    let legacy = Instruction::Create {
        object_type: "Dog".into(),
        pk: 1.into(),
        fields: vec![("_id".into(), 1.into()), ("tags".into(), Value::List(vec![1.into(), 2.into()]))],
    };
    let (state, _) =
        integrate(&[(legacy.clone(), writer(1, 0, 1, L)), (insert(None, new_id(5, 0), 0), writer(2, 1, 5, R))]);
    assert_eq!(tags(&state), [0, 1, 2]);
    // Every replica derives the same ids for the list's first elements.
    let Some(ObjectState::Live { lists, .. }) = &state else { panic!() };
    let two = lists["tags"].live().last().unwrap().id;
    let (state, _) = integrate(&[
        (legacy, writer(1, 0, 1, L)),
        (insert(None, new_id(5, 0), 0), writer(2, 1, 5, R)),
        (remove(two), writer(3, 2, 6, L)),
    ]);
    assert_eq!(tags(&state), [0, 1]);
}

#[test]
fn an_object_state_without_element_identities_encodes_as_before() {
    // The encoding of states from before lists had identities.
    #[derive(serde::Serialize)]
    #[allow(dead_code)]
    enum Before {
        Live { fields: std::collections::BTreeMap<String, haven_core::merge::Field>, deleted_at: Option<(u64, u64)> },
        Deleted { version: u64, replica: u64 },
    }
    let (plain, _) = integrate(&[(create(), writer(1, 0, 1, L))]);
    let Some(ObjectState::Live { fields, .. }) = plain.clone() else { panic!() };
    let old = postcard::to_allocvec(&Before::Live { fields, deleted_at: None }).unwrap();
    assert_eq!(postcard::to_allocvec(&plain.unwrap()).unwrap(), old);
    let (with_lists, _) = integrate(&baseline());
    let bytes = postcard::to_allocvec(with_lists.as_ref().unwrap()).unwrap();
    assert_eq!(postcard::from_bytes::<ObjectState>(&bytes).unwrap(), with_lists.unwrap());
}

/// Recovers `local` (made offline on [1, 2, 3]) onto the server's state
/// after `remote`, as a client reset does; returns the list afterwards.
fn recover(remote: Vec<(Instruction, Writer)>, local: Vec<Instruction>) -> (Vec<i64>, Vec<DropReason>) {
    let schema =
        Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","tags":"int[]"}}]"#).unwrap();
    let (server, _) = integrate(&[baseline(), remote].concat());
    let (state, dropped) = common::recover_onto(&schema, server, local);
    (tags(&state), dropped)
}

#[test]
fn reset_recovery_of_a_removal_keeps_concurrent_server_insertions() {
    // Local: remove 2 from [1, 2, 3]. Server: 4 and 5 appended.
    let r = writer(2, 1, 20, R);
    let remote = vec![(insert(Some(e(3)), new_id(20, 0), 4), r), (insert(Some(new_id(20, 0)), new_id(20, 1), 5), r)];
    assert_eq!(recover(remote, vec![remove(e(2))]), (vec![1, 3, 4, 5], vec![]));
}

#[test]
fn reset_recovery_of_a_move_and_an_append_keeps_the_server_append() {
    // Local: move 1 after 2, then append 5. Server: 4 appended.
    let remote = vec![(insert(Some(e(3)), new_id(20, 0), 4), writer(2, 1, 20, R))];
    let local = vec![moved(e(1), Some(e(2))), insert(Some(e(3)), new_id(10, 0), 5)];
    assert_eq!(recover(remote, local), (vec![2, 1, 3, 5, 4], vec![]));
}

#[test]
fn reset_recovery_reports_a_change_to_an_element_the_server_removed() {
    let remote = vec![(remove(e(2)), writer(2, 1, 20, R))];
    let (list, dropped) = recover(remote, vec![set(e(2), 20), insert(Some(e(2)), new_id(10, 0), 7)]);
    assert_eq!(list, [1, 7, 3], "an insertion after a removed element still lands in place");
    assert_eq!(dropped, [DropReason::ElementRemoved]);
}
