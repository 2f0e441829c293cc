//! The merge rule for embedded objects in a list (`docs/conflicts.md`,
//! "Embedded objects"): each element merges field by field, as an
//! embedded object outside a list does, and a field edit follows its
//! element wherever concurrent edits move it.

mod common;

use haven_core::merge::{apply, ElementId, Hlc, Instruction, ObjectState, Overruled, Writer};
use haven_core::recovery::DropReason;
use haven_core::{Schema, Value};
use serde_json::json;

const L: u64 = 1;
const R: u64 = 2;

fn writer(version: u64, base_version: u64, millis: u64, replica: u64) -> Writer {
    Writer { version, base_version, hlc: Hlc { millis, counter: 0 }, replica }
}

/// An address from JSON with string and integer fields.
fn home(fields: serde_json::Value) -> Value {
    let value = |v: &serde_json::Value| match v.as_i64() {
        Some(n) => Value::Int(n),
        None => Value::from(v.as_str().unwrap()),
    };
    Value::Dictionary(fields.as_object().unwrap().iter().map(|(k, v)| (k.clone(), value(v))).collect())
}

/// The baseline's homes 1 (Oslo) and 2 (Rome).
fn e(n: u32) -> ElementId {
    ElementId { origin: 0xfeed, hlc: Hlc { millis: 1, counter: 0 }, seq: n - 1 }
}

/// Ann with `homes` [{city: Oslo}, {city: Rome}], written by L at version 1.
fn baseline() -> Vec<(Instruction, Writer)> {
    let create = Instruction::Create { object_type: "Person".into(), pk: "ann".into(), fields: vec![] };
    let homes = vec![(e(1), home(json!({"city": "Oslo"}))), (e(2), home(json!({"city": "Rome"})))];
    let assign = Instruction::ListAssign {
        object_type: "Person".into(),
        pk: "ann".into(),
        field: "homes".into(),
        elements: homes,
    };
    vec![(create, writer(1, 0, 1, L)), (assign, writer(1, 0, 1, L))]
}

fn put(id: ElementId, key: &str, value: impl Into<Value>) -> Instruction {
    let (object_type, pk, field) = ("Person".into(), "ann".into(), "homes".into());
    Instruction::ListElementPut { object_type, pk, field, id, key: key.into(), value: value.into() }
}

fn set(id: ElementId, fields: serde_json::Value) -> Instruction {
    Instruction::ListSet {
        object_type: "Person".into(),
        pk: "ann".into(),
        field: "homes".into(),
        id,
        value: home(fields),
    }
}

fn moved(id: ElementId, after: Option<ElementId>) -> Instruction {
    Instruction::ListMove { object_type: "Person".into(), pk: "ann".into(), field: "homes".into(), id, after }
}

fn remove(id: ElementId) -> Instruction {
    Instruction::ListRemove { object_type: "Person".into(), pk: "ann".into(), field: "homes".into(), id }
}

fn integrate(steps: &[(Instruction, Writer)]) -> (Option<ObjectState>, Vec<Overruled>) {
    let mut state = None;
    let mut reasons = vec![];
    for (i, w) in baseline().iter().chain(steps) {
        let applied = apply(state.as_ref(), i, w);
        state = applied.state;
        reasons.extend(applied.dropped.iter().map(|d| d.reason));
    }
    (state, reasons)
}

fn homes(state: &Option<ObjectState>) -> serde_json::Value {
    let Some(ObjectState::Live { fields, .. }) = state else { panic!("no live object: {state:?}") };
    fields["homes"].value.to_json()
}

/// Both orders of two concurrent steps give the same list.
fn either_order(a: (Instruction, Writer), b: (Instruction, Writer)) -> serde_json::Value {
    let (a_first, _) = integrate(&[a.clone(), b.clone()]);
    let (b_first, _) = integrate(&[(b.0, Writer { version: 2, ..b.1 }), (a.0, Writer { version: 3, ..a.1 })]);
    assert_eq!(homes(&a_first), homes(&b_first), "the same in either order");
    homes(&a_first)
}

#[test]
fn concurrent_edits_of_different_fields_of_one_element_both_stay() {
    let l = (put(e(1), "street", "Main 1"), writer(2, 1, 10, L));
    let r = (put(e(1), "zip", 150), writer(3, 1, 20, R));
    assert_eq!(either_order(l, r), json!([{"city": "Oslo", "street": "Main 1", "zip": 150}, {"city": "Rome"}]));
}

#[test]
fn concurrent_edits_of_one_field_of_one_element_the_later_clock_wins() {
    let l = (put(e(1), "city", "Bergen"), writer(2, 1, 30, L));
    let r = (put(e(1), "city", "Tromsø"), writer(3, 1, 20, R));
    assert_eq!(either_order(l, r), json!([{"city": "Bergen"}, {"city": "Rome"}]));
}

#[test]
fn a_field_edit_follows_its_element_through_a_concurrent_move() {
    let l = (put(e(1), "street", "Main 1"), writer(2, 1, 10, L));
    let r = (moved(e(1), Some(e(2))), writer(3, 1, 20, R));
    assert_eq!(either_order(l, r), json!([{"city": "Rome"}, {"city": "Oslo", "street": "Main 1"}]));
}

#[test]
fn a_field_edit_of_a_removed_element_is_dropped() {
    let (state, dropped) =
        integrate(&[(remove(e(1)), writer(2, 1, 20, R)), (put(e(1), "street", "Main 1"), writer(3, 1, 10, L))]);
    assert_eq!(homes(&state), json!([{"city": "Rome"}]));
    assert_eq!(dropped, [Overruled::ElementRemoved]);
}

#[test]
fn a_list_set_of_an_element_replaces_it_whole_fields_and_their_stamps_with_it() {
    // `ListSet` is the whole write of one element, by the rule of a field
    // (apps write embedded elements field by field instead; older apps
    // sent this): it replaces the fields set one by one before it.
    let (state, _) = integrate(&[
        (put(e(1), "street", "Main 1"), writer(2, 1, 20, R)),
        (set(e(1), json!({"city": "Bergen"})), writer(3, 2, 30, L)),
        (put(e(1), "zip", 150), writer(4, 3, 40, R)),
    ]);
    assert_eq!(homes(&state), json!([{"city": "Bergen", "zip": 150}, {"city": "Rome"}]));
    let (state, dropped) = integrate(&[
        (set(e(1), json!({"city": "Bergen"})), writer(2, 1, 30, L)),
        (set(e(1), json!({"city": "Tromsø"})), writer(3, 1, 20, R)),
    ]);
    assert_eq!(homes(&state), json!([{"city": "Bergen"}, {"city": "Rome"}]), "the later clock wins the element");
    assert_eq!(dropped, [Overruled::OlderThanServer]);
}

#[test]
fn a_list_set_must_beat_the_fields_written_since_in_either_order() {
    // R writes Oslo's city at 10:05 field by field; L, concurrently, at
    // 10:03, writes the element whole (as an older app does).
    let r = (put(e(1), "city", "Bergen"), writer(2, 1, 30, R));
    let l = (set(e(1), json!({"city": "Tromsø"})), writer(3, 1, 20, L));
    assert_eq!(either_order(r, l), json!([{"city": "Bergen"}, {"city": "Rome"}]));
}

#[test]
fn a_field_edit_that_loses_leaves_no_stamps_behind() {
    let (state, dropped) = integrate(&[
        (set(e(1), json!({"city": "Bergen"})), writer(2, 1, 30, L)),
        (put(e(1), "city", "Tromsø"), writer(3, 1, 20, R)),
    ]);
    assert_eq!(dropped, [Overruled::OlderThanServer]);
    let Some(ObjectState::Live { lists, .. }) = &state else { panic!() };
    assert!(lists["homes"].element_fields.is_empty(), "the state encodes as one without field edits");
}

#[test]
fn a_state_with_element_fields_round_trips_and_one_without_encodes_as_before() {
    let (plain, _) = integrate(&[]);
    let (edited, _) = integrate(&[(put(e(2), "zip", 100), writer(2, 1, 10, L))]);
    let Some(ObjectState::Live { lists, .. }) = &edited else { panic!() };
    assert_eq!(lists["homes"].element_fields.len(), 1, "home 2's fields have stamps");
    let bytes = postcard::to_allocvec(edited.as_ref().unwrap()).unwrap();
    assert_eq!(postcard::from_bytes::<ObjectState>(&bytes).unwrap(), edited.unwrap());
    // Without field edits, the variant of states with list identities (2).
    let plain_bytes = postcard::to_allocvec(plain.as_ref().unwrap()).unwrap();
    assert_eq!(plain_bytes[0], 2);
    assert_eq!(bytes[0], 4, "a variant of its own, after LiveWithCollections");
}

/// Recovers `local` (made offline on the baseline) onto the server's state
/// after `remote`, as a client reset does.
fn recover(remote: Vec<(Instruction, Writer)>, local: Vec<Instruction>) -> (serde_json::Value, Vec<DropReason>) {
    let schema = Schema::from_json(
        r#"[{"name":"Person","primaryKey":"_id","properties":{"_id":"string","homes":"Address[]"}},
            {"name":"Address","embedded":true,"properties":{"city":"string","street":"string?","zip":"int?"}}]"#,
    )
    .unwrap();
    let (server, _) = integrate(&remote);
    let (state, dropped) = common::recover_onto(&schema, server, local);
    (homes(&state), dropped)
}

#[test]
fn reset_recovery_applies_a_field_edit_to_its_element_wherever_the_server_moved_it() {
    let remote = vec![(moved(e(2), None), writer(2, 1, 20, R))];
    let (list, dropped) = recover(remote, vec![put(e(1), "zip", 150)]);
    assert_eq!(list, json!([{"city": "Rome"}, {"city": "Oslo", "zip": 150}]));
    assert!(dropped.is_empty(), "{dropped:?}");
}

#[test]
fn reset_recovery_reports_a_field_edit_of_an_element_the_server_removed() {
    let remote = vec![(remove(e(1)), writer(2, 1, 20, R))];
    let (list, dropped) = recover(remote, vec![put(e(1), "zip", 150), put(e(2), "zip", 100)]);
    assert_eq!(list, json!([{"city": "Rome", "zip": 100}]));
    assert_eq!(dropped, [DropReason::ElementRemoved]);
}
