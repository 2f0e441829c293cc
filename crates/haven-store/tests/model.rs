//! Random sequences of writes (with aborted transactions and reopens)
//! against an in-memory model: the database must always equal the model,
//! through its objects and through its indexes.

mod common;

use haven_store::{Config, Database, Error, UpdateMode, Value};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Create { id: i64, name: String, age: Option<i64>, last: i64, mode: UpdateMode },
    SetLast { id: i64, last: i64 },
    IncrementAge { id: i64, by: i64 },
    Delete { id: i64 },
    DeleteAll,
}

#[derive(Debug, Clone)]
enum Step {
    Transaction { ops: Vec<Op>, abort: bool },
    Reopen,
}

#[derive(Debug, Clone, PartialEq)]
struct Dog {
    name: String,
    age: Option<i64>,
    last: i64,
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0i64..12;
    prop_oneof![
        4 => (id.clone(), "[a-c]{1,3}", proptest::option::of(0i64..4), 0i64..5,
              prop_oneof![Just(UpdateMode::Never), Just(UpdateMode::Modified), Just(UpdateMode::All)])
            .prop_map(|(id, name, age, last, mode)| Op::Create { id, name, age, last, mode }),
        2 => (id.clone(), 0i64..5).prop_map(|(id, last)| Op::SetLast { id, last }),
        2 => (id.clone(), -2i64..3).prop_map(|(id, by)| Op::IncrementAge { id, by }),
        2 => id.prop_map(|id| Op::Delete { id }),
        1 => Just(Op::DeleteAll),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (proptest::collection::vec(op(), 1..6), proptest::bool::weighted(0.25)).prop_map(|(ops, abort)| Step::Transaction { ops, abort }),
        1 => Just(Step::Reopen),
    ]
}

/// Applies `op` to the model the way the database must: a failing
/// operation changes nothing.
fn apply_model(m: &mut BTreeMap<i64, Dog>, op: &Op) -> bool {
    match op {
        Op::Create { id, name, age, last, mode } => match (m.get_mut(id), mode) {
            (Some(_), UpdateMode::Never) => return false,
            (Some(d), _) => {
                d.name = name.clone();
                if age.is_some() {
                    d.age = *age;
                }
                d.last = *last;
            }
            (None, _) => {
                m.insert(*id, Dog { name: name.clone(), age: *age, last: *last });
            }
        },
        Op::SetLast { id, last } => match m.get_mut(id) {
            Some(d) => d.last = *last,
            None => return false,
        },
        Op::IncrementAge { id, by } => match m.get_mut(id).and_then(|d| d.age.as_mut()) {
            Some(a) => *a += by,
            None => return false,
        },
        Op::Delete { id } => return m.remove(id).is_some(),
        Op::DeleteAll => m.clear(),
    }
    true
}

fn apply_db(tx: &mut haven_store::WriteTransaction<'_>, op: &Op) -> Result<bool, Error> {
    match op {
        Op::Create { id, name, age, last, mode } => {
            let mut v = json!({"_id": id, "name": name, "lastUpdated": last});
            if let Some(a) = age {
                v["age"] = json!(a);
            }
            tx.create("Dog", v, *mode).map(|_| true)
        }
        Op::SetLast { id, last } => tx.set("Dog", *id, "lastUpdated", *last).map(|_| true),
        Op::IncrementAge { id, by } => tx.increment("Dog", *id, "age", *by).map(|_| true),
        Op::Delete { id } => tx.delete("Dog", *id),
        Op::DeleteAll => tx.delete_all("Dog").map(|_| true),
    }
}

fn check(db: &Database, model: &BTreeMap<i64, Dog>) {
    let actual: BTreeMap<i64, Dog> = db
        .objects("Dog")
        .unwrap()
        .iter()
        .unwrap()
        .map(|o| {
            let id = o.primary_key().as_int().unwrap();
            let dog = Dog {
                name: o.get("name").unwrap().as_str().unwrap().to_owned(),
                age: o.get("age").unwrap().as_int(),
                last: o.get("lastUpdated").unwrap().as_int().unwrap(),
            };
            (id, dog)
        })
        .collect();
    assert_eq!(&actual, model);
    for last in 0..5 {
        let by_index = db.objects("Dog").unwrap().filtered("lastUpdated == $0", &[Value::Int(last)]).unwrap();
        let ids: Vec<i64> = by_index.iter().unwrap().map(|o| o.primary_key().as_int().unwrap()).collect();
        let expected: Vec<i64> = model.iter().filter(|(_, d)| d.last == last).map(|(id, _)| *id).collect();
        assert_eq!(ids, expected, "index on lastUpdated for {last}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn database_equals_model(steps in proptest::collection::vec(step(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.haven");
        let open = || Database::open(Config::new(&path).schema(common::schema())).unwrap();
        let mut db = open();
        let mut model = BTreeMap::new();
        for step in &steps {
            match step {
                Step::Reopen => {
                    drop(db);
                    db = open();
                }
                Step::Transaction { ops, abort } => {
                    let mut next = model.clone();
                    let result = db.write(|tx| {
                        for op in ops {
                            let db_ok = apply_db(tx, op).unwrap_or(false);
                            let model_ok = apply_model(&mut next, op);
                            assert_eq!(db_ok, model_ok, "{op:?}");
                        }
                        if *abort { Err(Error::Storage("abort".into())) } else { Ok(()) }
                    });
                    if result.is_ok() {
                        model = next;
                    }
                }
            }
            check(&db, &model);
        }
    }
}
