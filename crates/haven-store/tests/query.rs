//! Queries: the language end to end, plans, errors with columns, and the
//! same answers from indexed and unindexed plans.

mod common;

use common::open;
use haven_store::{Config, Database, Error, Schema, UpdateMode, Value};
use serde_json::json;

fn fixture(db: &Database) {
    db.write(|tx| {
        tx.create("Person", json!({"_id": "ann", "name": "Ann"}), UpdateMode::Never)?;
        tx.create("Person", json!({"_id": "bob", "name": "Bob"}), UpdateMode::Never)?;
        let dogs = [
            json!({"_id": 1, "name": "Rex", "age": 3, "lastUpdated": 10, "score": 1.5, "owner": "ann", "tags": ["good", "big"], "friends": [2, 3], "ranks": [0, 20]}),
            json!({"_id": 2, "name": "Ace", "age": 7, "lastUpdated": 20, "score": 9.0, "owner": "bob", "tags": ["good"], "nick": "A", "ranks": [5]}),
            json!({"_id": 3, "name": "rover", "lastUpdated": 30, "tags": []}),
            json!({"_id": 4, "name": "Bo\u{e9}", "age": 1, "lastUpdated": 40, "owner": "ann", "friends": [1]}),
        ];
        for d in dogs {
            tx.create("Dog", d, UpdateMode::Never)?;
        }
        Ok(())
    })
    .unwrap();
}

fn ids(db: &Database, query: &str, args: &[Value]) -> Vec<i64> {
    let results = db.objects("Dog").unwrap().filtered(query, args).unwrap_or_else(|e| panic!("{query}: {e}"));
    results.iter().unwrap().map(|d| d.primary_key().as_int().unwrap()).collect()
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort();
    v
}

#[test]
fn the_language() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    fixture(&db);
    let cases: &[(&str, &[i64])] = &[
        ("age == 3", &[1]),
        ("age = 3", &[1]),
        ("age != 3", &[2, 3, 4]),
        ("age > 2 AND age <= 7", &[1, 2]),
        ("age > 2 && NOT age == 7", &[1]),
        ("age < 2 OR name == 'Ace'", &[2, 4]),
        ("!(age >= 2)", &[3, 4]),
        ("age == nil", &[3]),
        ("age != NULL", &[1, 2, 4]),
        ("name BEGINSWITH 'R'", &[1]),
        ("name BEGINSWITH[c] 'r'", &[1, 3]),
        ("name ENDSWITH 'ver'", &[3]),
        ("name CONTAINS[c] 'O'", &[3, 4]),
        ("name LIKE 'R?x'", &[1]),
        ("name LIKE[c] 'r*'", &[1, 3]),
        ("name ==[c] 'ROVER'", &[3]),
        ("age IN {1, 7}", &[2, 4]),
        ("age BETWEEN {2, 7}", &[1, 2]),
        ("score > 2", &[2]),
        ("score > 1.4 AND score < 1.6", &[1]),
        ("owner.name == 'Ann'", &[1, 4]),
        ("owner == 'bob'", &[2]),
        ("owner == nil", &[3]),
        ("tags.@count > 1", &[1]),
        ("tags.@size == 0", &[3, 4]),
        ("ANY tags == 'good'", &[1, 2]),
        ("tags == 'big'", &[1]),
        ("ALL tags == 'good'", &[2, 3, 4]),
        ("NONE tags == 'good'", &[3, 4]),
        ("friends.name == 'Rex'", &[4]),
        ("friends.@count == 2", &[1]),
        ("TRUEPREDICATE", &[1, 2, 3, 4]),
        ("FALSEPREDICATE", &[]),
        ("3 < age", &[2]),
        ("nick == 'A'", &[2]),
        ("_id IN {2, 4, 9}", &[2, 4]),
        ("_id IN {4, 2, 2}", &[2, 4]),
        ("ALL tags IN {'good', 'big'}", &[1, 2, 3, 4]),
        ("ANY tags IN {'big'}", &[1]),
        ("NONE tags IN {'big', 'x'}", &[2, 3, 4]),
        ("ANY ranks BETWEEN {1, 10}", &[2]),
        ("ranks BETWEEN {0, 0}", &[1]),
        ("ALL ranks BETWEEN {0, 30}", &[1, 2, 3, 4]),
        ("name IN[c] {'REX', 'ace'}", &[1, 2]),
        ("age IN {}", &[]),
    ];
    for (query, expected) in cases {
        assert_eq!(sorted(ids(&db, query, &[])), expected.to_vec(), "{query}");
    }
}

#[test]
fn arguments_sort_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    fixture(&db);
    assert_eq!(ids(&db, "lastUpdated > $0 AND name BEGINSWITH[c] $1", &[15.into(), "r".into()]), vec![3]);
    assert_eq!(ids(&db, "age IN $0", &[Value::List(vec![3.into(), 7.into()])]), vec![1, 2]);
    assert_eq!(
        ids(&db, "TRUEPREDICATE SORT(age DESC)", &[]),
        vec![2, 1, 4, 3],
        "null sorts first ascending, last descending"
    );
    assert_eq!(ids(&db, "TRUEPREDICATE SORT(owner.name ASC, age DESC) LIMIT(3)", &[]), vec![3, 1, 4]);
    let r = db.objects("Dog").unwrap().filtered("age > 0", &[]).unwrap().sorted("lastUpdated", false).unwrap();
    assert_eq!(r.iter().unwrap().map(|d| d.primary_key().as_int().unwrap()).collect::<Vec<_>>(), vec![4, 2, 1]);
    assert_eq!(r.len().unwrap(), 3);
    assert_eq!(r.get(1).unwrap().unwrap().primary_key(), Value::Int(2));
    assert!(r.get(3).unwrap().is_none());
    let limited = r.filtered("TRUEPREDICATE LIMIT(2)", &[]).unwrap();
    assert_eq!(limited.len().unwrap(), 2);
    assert_eq!(limited.to_json().unwrap().as_array().unwrap().len(), 2);
    // Refining narrows: both filters apply.
    assert_eq!(r.filtered("age < 5", &[]).unwrap().len().unwrap(), 2);
    assert!(db.objects("Dog").unwrap().filtered("age > 100", &[]).unwrap().is_empty().unwrap());
}

#[test]
fn plans_use_keys_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    fixture(&db);
    let plan = |q: &str| db.objects("Dog").unwrap().filtered(q, &[]).unwrap().explain().unwrap();
    assert_eq!(plan("_id == 2"), "primary key Dog._id (1 range)");
    assert_eq!(plan("_id IN {1, 2}"), "primary key Dog._id (2 ranges)");
    assert_eq!(plan("lastUpdated > 15 AND lastUpdated < 35"), "index Dog.lastUpdated (1 range)");
    assert_eq!(plan("lastUpdated > 15 AND name == 'Ace'"), "index Dog.lastUpdated (1 range), then filter on name");
    assert_eq!(plan("nick BEGINSWITH 'A'"), "index Dog.nick (1 range)");
    assert_eq!(plan("nick BEGINSWITH[c] 'a'"), "scan Dog, then filter on nick");
    assert_eq!(plan("age == 3"), "scan Dog, then filter on age");
    assert_eq!(plan("lastUpdated > 1 OR age == 3"), "scan Dog, then filter on lastUpdated, age");
    assert_eq!(plan("TRUEPREDICATE"), "scan Dog");
    assert_eq!(plan("_id == 1 AND lastUpdated == 10"), "primary key Dog._id (1 range), then filter on lastUpdated");
}

#[test]
fn errors_say_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let cases: &[(&str, usize, &str)] = &[
        ("age >", 6, "expected a property"),
        ("age > 'x'", 7, "type mismatch"),
        ("color == 1", 1, "no property 'color'"),
        ("age == 1 AND", 13, "expected a property"),
        ("age == $1", 8, "$1"),
        ("name BEGINSWITH 3", 17, "BEGINSWITH"),
        ("(age == 1", 10, "expected ')'"),
        ("age === 1", 7, "expected a property"),
        ("name.first == 'a'", 1, "not a link"),
        ("age.@count > 1", 1, "@count needs a collection"),
        ("owner.nope == 1", 7, "no property 'nope'"),
        ("age == 'three' SORT(name)", 8, "type mismatch"),
        ("age == 1 LIMIT(-1)", 16, "LIMIT"),
        ("name == \"open", 9, "unterminated string"),
        ("NONE age == 3", 6, "ALL and NONE need a collection"),
        ("age IN name", 8, "IN takes a list"),
        ("age == {1, 2}", 8, "only after IN or BETWEEN"),
        ("age IN {1, name}", 12, "holds values"),
        ("age BETWEEN {1}", 13, "two bounds"),
    ];
    for (query, column, fragment) in cases {
        let err = db.objects("Dog").unwrap().filtered(query, &[3.into()]).unwrap_err();
        let Error::Query(q) = &err else { panic!("{query}: not a query error: {err}") };
        assert_eq!(q.column, *column, "{query}: {err}");
        assert!(q.message.contains(fragment), "{query}: {err}");
        assert!(err.to_string().contains(query), "the message quotes the query: {err}");
    }
    let err = db.objects("Dog").unwrap().filtered("age == $0", &[Value::List(vec![1.into()])]).unwrap_err();
    assert!(err.to_string().contains("compare with a list using IN"), "{err}");
    let err = db.objects("Dog").unwrap().sorted("nope", true).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(matches!(db.objects("Cat").unwrap_err(), Error::UnknownType(_)));
}

/// The same random data in two files, one with indexes and one without:
/// every query answers the same, and the first uses its indexes.
#[test]
fn indexed_and_unindexed_plans_agree() {
    let dir = tempfile::tempdir().unwrap();
    let indexed = Database::open(Config::new(dir.path().join("i.haven")).schema(
        Schema::from_json(r#"[{"name":"T","primaryKey":"_id","properties":{"_id":"int",
            "n":{"type":"int","optional":true,"indexed":true},"s":{"type":"string","indexed":true},"d":{"type":"double","indexed":true},"b":{"type":"bool","indexed":true},"tags":"string<>","m":"int{}"}}]"#).unwrap(),
    ))
    .unwrap();
    let plain = Database::open(Config::new(dir.path().join("p.haven")).schema(
        Schema::from_json(r#"[{"name":"T","primaryKey":"_id","properties":{"_id":"int","n":"int?","s":"string","d":"double","b":"bool","tags":"string<>","m":"int{}"}}]"#).unwrap(),
    ))
    .unwrap();
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as i64
    };
    let rows: Vec<serde_json::Value> = (0..600)
        .map(|i| {
            let n = if next() % 7 == 0 { serde_json::Value::Null } else { json!(next() % 50 - 25) };
            let tags: Vec<String> = (0..next() % 3).map(|_| format!("k{}", next() % 5)).collect();
            let m = if next() % 2 == 0 { json!({"a": next() % 5}) } else { json!({}) };
            json!({"_id": i, "n": n, "s": format!("k{}", next() % 40), "d": (next() % 100) as f64 / 4.0 - 10.0, "b": next() % 3 == 0,
                   "tags": tags, "m": m})
        })
        .collect();
    for db in [&indexed, &plain] {
        db.write(|tx| rows.iter().try_for_each(|r| tx.create("T", r.clone(), UpdateMode::Never))).unwrap();
        // Updates and deletes must keep the indexes right too.
        db.write(|tx| {
            for i in (0..600).step_by(5) {
                tx.set("T", i, "n", Value::Int(i % 13))?;
            }
            for i in (0..600).step_by(11) {
                tx.delete("T", i)?;
            }
            Ok(())
        })
        .unwrap();
    }
    let queries = [
        "n == 3",
        "n == nil",
        "n != nil",
        "n > 10",
        "n >= -3 AND n < 4",
        "n <= -20",
        "n < 0 AND n > -5",
        "n BETWEEN {-2, 2}",
        "n IN {1, 5, 99}",
        "s == 'k7'",
        "s > 'k3'",
        "s BEGINSWITH 'k1'",
        "s BEGINSWITH 'k'",
        "d > 0",
        "d <= -9.5",
        "d == 2.5",
        "d > 1 AND d < 1",
        "n > 3 AND s BEGINSWITH 'k2'",
        "_id > 100 AND _id <= 120",
        "_id < 0",
        "n > 2.5",
        "n == 3 SORT(s DESC) LIMIT(5)",
        "b == true",
        "b > false",
        "b < true",
        "b >= false",
        "b <= true",
        "n IN {3, 1, 3}",
        "n BETWEEN {5, 2}",
        "n > 3 AND tags == 'k1'",
        "s BEGINSWITH 'k1' AND ALL tags != 'k2'",
        "n == 3 AND m['a'] > 1",
        "n < 0 AND m.@count == 0",
        "s BEGINSWITH 'k1' DISTINCT(n)",
        "n > 0 SORT(n ASC) DISTINCT(s) LIMIT(7)",
        "_id > 50 AND _id < 300 DISTINCT(b, n)",
    ];
    let mut used_index = 0;
    for q in queries {
        let a = indexed.objects("T").unwrap().filtered(q, &[]).unwrap();
        let b = plain.objects("T").unwrap().filtered(q, &[]).unwrap();
        let keys = |r: &haven_store::Results| {
            let mut v: Vec<String> = r.iter().unwrap().map(|o| o.to_json().to_string()).collect();
            if !q.contains("SORT") {
                v.sort();
            }
            v
        };
        assert_eq!(keys(&a), keys(&b), "{q}: {}", a.explain().unwrap());
        assert_eq!(a.len().unwrap(), b.len().unwrap(), "{q}");
        assert!(!b.explain().unwrap().starts_with("index"), "{q}");
        used_index += a.explain().unwrap().starts_with("index") as usize;
    }
    assert!(used_index >= 15, "only {used_index} queries used an index");
}

#[test]
fn a_query_inside_a_write_sees_the_writes_own_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    fixture(&db);
    let in_write = |query: &str, args: &[Value]| -> Vec<i64> {
        db.write(|tx| Ok(tx.query("Dog", query, args)?.iter().map(|d| d["_id"].as_i64().unwrap()).collect())).unwrap()
    };
    // Before any change, the transaction answers as the committed Results do,
    // by key, by index, by scan and through links.
    for query in
        ["age > 2", "lastUpdated >= 20", "_id IN {1, 4}", "owner.name == 'Ann'", "ANY tags == 'good'", "nick == nil"]
    {
        assert_eq!(sorted(in_write(query, &[])), sorted(ids(&db, query, &[])), "{query}");
    }
    assert_eq!(in_write("TRUEPREDICATE SORT(lastUpdated DESC) LIMIT(2)", &[]), vec![4, 3]);
    db.write(|tx| {
        tx.create(
            "Dog",
            json!({"_id": 5, "name": "New", "age": 9, "lastUpdated": 50, "owner": "bob"}),
            UpdateMode::Never,
        )?;
        tx.set("Dog", 1, "lastUpdated", 60)?;
        tx.delete("Dog", 2)?;
        tx.set("Person", "ann", "name", "Anna")?;
        let ids = |q: &str, tx: &mut haven_store::WriteTransaction<'_>| -> haven_store::Result<Vec<i64>> {
            Ok(tx.query("Dog", q, &[])?.iter().map(|d| d["_id"].as_i64().unwrap()).collect())
        };
        assert_eq!(
            ids("lastUpdated > 35 SORT(lastUpdated ASC)", tx)?,
            vec![4, 5, 1],
            "the index holds this write's values"
        );
        assert_eq!(ids("age > 2 SORT(_id ASC)", tx)?, vec![1, 5], "a created object is there, a deleted one is not");
        assert_eq!(ids("owner.name == 'Anna' SORT(_id ASC)", tx)?, vec![1, 4], "links resolve to this write's objects");
        // Writing after a query works: the query let go of its tables.
        tx.create("Dog", json!({"_id": 6, "name": "Six", "lastUpdated": 70}), UpdateMode::Never)?;
        assert_eq!(ids("lastUpdated >= 70", tx)?, vec![6]);
        Ok(())
    })
    .unwrap();
    assert_eq!(sorted(ids(&db, "TRUEPREDICATE", &[])), vec![1, 3, 4, 5, 6]);
    let refused = db.write(|tx| tx.query("Dog", "age >> 1", &[]).map(|_| ()));
    assert!(matches!(refused, Err(Error::Query(_))), "{refused:?}");
}

#[test]
fn aggregates_over_results_skip_nulls_and_name_a_property_they_cannot_take() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    fixture(&db);
    let dogs = db.objects("Dog").unwrap();
    // Ages 3, 7, 1 and a null; scores 1.5 and 9.0.
    assert_eq!(dogs.min("age").unwrap(), Some(Value::Int(1)));
    assert_eq!(dogs.max("age").unwrap(), Some(Value::Int(7)));
    assert_eq!(dogs.sum("age").unwrap(), Some(Value::Int(11)));
    assert_eq!(dogs.avg("age").unwrap(), Some(Value::Double(11.0 / 3.0)));
    assert_eq!(dogs.sum("score").unwrap(), Some(Value::Double(10.5)));
    let good = dogs.filtered("ANY tags == 'good'", &[]).unwrap();
    assert_eq!(
        (good.min("lastUpdated").unwrap(), good.max("score").unwrap()),
        (Some(Value::Int(10)), Some(Value::Double(9.0)))
    );
    let none = dogs.filtered("age > 100", &[]).unwrap();
    assert_eq!(
        (none.min("age").unwrap(), none.sum("age").unwrap(), none.avg("age").unwrap()),
        (None, Some(Value::Int(0)), None)
    );
    for (result, fragment) in [
        (dogs.sum("name"), "sum works on int and double properties, not 'string'"),
        (dogs.min("tags"), "not 'string[]'"),
        (dogs.avg("colour"), "colour"),
    ] {
        let err = result.unwrap_err();
        assert!(err.to_string().contains(fragment) && err.to_string().contains("Dog"), "{err}");
    }
}

#[test]
fn aggregates_of_lists_in_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    fixture(&db);
    // ranks: Dog 1 [0, 20], Dog 2 [5], Dogs 3 and 4 [].
    assert_eq!(ids(&db, "ranks.@sum > 10", &[]), [1]);
    assert_eq!(ids(&db, "ranks.@sum == 0", &[]), [3, 4], "the sum of no elements is 0");
    assert_eq!(ids(&db, "ranks.@avg == 10", &[]), [1]);
    assert_eq!(ids(&db, "ranks.@avg > $0", &[4.5.into()]), [1, 2]);
    assert_eq!(ids(&db, "ranks.@avg == nil", &[]), [3, 4], "the mean of no elements is null");
    assert_eq!(ids(&db, "ranks.@min == 5", &[]), [2]);
    assert_eq!(ids(&db, "ranks.@max >= 5", &[]), [1, 2]);
    assert_eq!(ids(&db, "ranks.@size == 1", &[]), [2]);
    assert_eq!(ids(&db, "ANY friends.ranks.@max == 20", &[]), [4], "through a link list");
    assert_eq!(ids(&db, "ranks.@sum > age", &[]), [1], "compared with another numeric property");
    for (query, fragment) in [
        ("tags.@sum > 1", "@sum needs a collection of int or double, but 'tags' is string[]"),
        ("age.@max > 1", "@max needs a collection of int, double, date or decimal128, but 'age' is int?"),
        ("ranks.@avg == 'x'", "type mismatch"),
    ] {
        let err = db.objects("Dog").unwrap().filtered(query, &[]).unwrap_err();
        assert!(err.to_string().contains(fragment), "{query}: {err}");
    }
}
