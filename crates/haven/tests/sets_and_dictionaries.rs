//! Set and dictionary properties: edited entry by entry on the device and
//! in sync, so that devices editing one set or dictionary offline keep
//! what each added, entry by entry by the later clock.

use haven::{Collection, Config, Database, Error, Instruction, Schema, UpdateMode, Value};
use haven_testkit::{fold_history, synced, TestPartition};
use serde_json::json;
use std::path::Path;

const SCHEMA: &str = r#"[
  {"name":"Dog","primaryKey":"_id","properties":{"_id":"int","colors":"string<>","scores":"int{}",
   "notes":"string?{}","friends":"Dog<>","pals":"Dog{}"}}
]"#;

fn local(dir: &Path) -> Database {
    Database::open(Config::new(dir.join("local.haven")).schema(Schema::from_json(SCHEMA).unwrap())).unwrap()
}

fn dog(db: &Database, id: i64) -> serde_json::Value {
    db.object_for_primary_key("Dog", id).unwrap().expect("the dog").to_json()
}

#[test]
fn the_schema_forms_of_sets_and_dictionaries() {
    let schema = Schema::from_json(SCHEMA).unwrap();
    let dog = schema.object_type("Dog").unwrap();
    let p = |n| dog.property_named(n).unwrap();
    assert_eq!((p("colors").collection, p("scores").collection), (Collection::Set, Collection::Dictionary));
    assert_eq!(p("notes").type_string(), "string?{}");
    assert_eq!(Schema::from_json(&schema.to_json()).unwrap(), schema);
}

#[test]
fn set_and_dictionary_operations_edit_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let db = local(dir.path());
    db.write(|tx| {
        tx.create(
            "Dog",
            json!({"_id": 1, "colors": ["brown", "white", "brown"], "scores": {"agility": 5}}),
            UpdateMode::Never,
        )
    })
    .unwrap();
    assert_eq!(dog(&db, 1)["colors"], json!(["brown", "white"]), "a set holds each value once");
    db.write(|tx| {
        assert!(tx.set_add("Dog", 1, "colors", "black")?);
        assert!(!tx.set_add("Dog", 1, "colors", "white")?, "already there");
        assert!(tx.set_remove("Dog", 1, "colors", "brown")?);
        assert!(!tx.set_remove("Dog", 1, "colors", "green")?, "was not there");
        tx.dict_put("Dog", 1, "scores", "agility", 7)?;
        tx.dict_put("Dog", 1, "scores", "speed", 3)?;
        assert!(tx.dict_remove("Dog", 1, "scores", "agility")?);
        assert!(!tx.dict_remove("Dog", 1, "scores", "stamina")?);
        tx.dict_put("Dog", 1, "notes", "vet", Value::Null)?;
        tx.create("Dog", json!({"_id": 2}), UpdateMode::Never)?;
        tx.set_add("Dog", 1, "friends", 2)?;
        tx.dict_put("Dog", 1, "pals", "best", 2)
    })
    .unwrap();
    let one = dog(&db, 1);
    assert_eq!(one["colors"], json!(["black", "white"]));
    assert_eq!(one["scores"], json!({"speed": 3}));
    assert_eq!(one["notes"], json!({"vet": null}));
    assert_eq!((&one["friends"], &one["pals"]), (&json!([2]), &json!({"best": 2})));
    // A whole write replaces; an empty one clears.
    db.write(|tx| tx.set("Dog", 1, "scores", Value::Dictionary(Default::default()))).unwrap();
    assert_eq!(dog(&db, 1)["scores"], json!({}));
}

type EntryOperation = dyn Fn(&mut haven::WriteTransaction<'_>) -> haven::Result<()>;

#[test]
fn a_bad_entry_operation_names_type_property_and_entry_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = local(dir.path());
    db.write(|tx| tx.create("Dog", json!({"_id": 1, "colors": ["brown"]}), UpdateMode::Never)).unwrap();
    let version = db.version();
    let cases: Vec<(Box<EntryOperation>, &str)> = vec![
        (Box::new(|tx| tx.set_add("Dog", 1, "colors", 5).map(drop)), "Dog.colors: expected string, got int"),
        (Box::new(|tx| tx.set_add("Dog", 1, "colors", Value::Null).map(drop)), "null is not allowed"),
        (
            Box::new(|tx| tx.dict_put("Dog", 1, "scores", "a", "x")),
            "Dog.scores: at key \"a\": expected int, got string",
        ),
        (
            Box::new(|tx| tx.dict_put("Dog", 1, "scores", "a.b", 1)),
            "at key \"a.b\": a dictionary key cannot contain '.'",
        ),
        (Box::new(|tx| tx.dict_put("Dog", 1, "scores", "$x", 1)), "cannot start with '$'"),
        (Box::new(|tx| tx.dict_put("Dog", 1, "scores", "", 1)), "cannot be empty"),
        (Box::new(|tx| tx.set_add("Dog", 1, "scores", 1).map(drop)), "not a set"),
        (Box::new(|tx| tx.dict_put("Dog", 1, "colors", "a", 1)), "not a dictionary"),
        (Box::new(|tx| tx.set_add("Dog", 1, "friends", Value::Null).map(drop)), "null is not allowed"),
        (
            Box::new(|tx| tx.create("Dog", json!({"_id": 3, "scores": {"ok": 1, "bad": "x"}}), UpdateMode::Never)),
            "Dog.scores: at key \"bad\"",
        ),
        (Box::new(|tx| tx.create("Dog", json!({"_id": 3, "scores": [1]}), UpdateMode::Never)), "expected a dictionary"),
        (Box::new(|tx| tx.create("Dog", json!({"_id": 3, "colors": {"a": "b"}}), UpdateMode::Never)), "expected a set"),
        (Box::new(|tx| tx.set_add("Dog", 2, "colors", "x").map(drop)), "2"),
    ];
    for (op, fragment) in cases {
        let err = db
            .write(|tx| {
                tx.set_add("Dog", 1, "colors", "written first")?;
                op(tx)
            })
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Dog") && text.contains(fragment), "{text} (wanted {fragment:?})");
        assert!(!matches!(err, Error::Storage(_)), "{err:?}");
    }
    assert_eq!(db.version(), version, "nothing was committed");
    assert_eq!(dog(&db, 1)["colors"], json!(["brown"]));
}

#[test]
fn the_change_log_holds_one_instruction_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path().join("log.haven")).schema(Schema::from_json(SCHEMA).unwrap()).record_changes();
    let db = Database::open(config).unwrap();
    db.write(|tx| tx.create("Dog", json!({"_id": 1, "colors": ["brown"]}), UpdateMode::Never)).unwrap();
    db.write(|tx| {
        tx.set_add("Dog", 1, "colors", "white")?;
        tx.set_remove("Dog", 1, "colors", "brown")?;
        tx.dict_put("Dog", 1, "scores", "speed", 3)?;
        tx.dict_remove("Dog", 1, "scores", "speed").map(drop)
    })
    .unwrap();
    let log = db.pending_changes().unwrap();
    assert!(
        matches!(
            &log[1].instructions[..],
            [
                Instruction::SetAdd { value: Value::String(w), .. },
                Instruction::SetRemove { value: Value::String(b), .. },
                Instruction::DictionaryPut { key: s, .. },
                Instruction::DictionaryRemove { key: s2, .. },
            ] if w == "white" && b == "brown" && s == "speed" && s2 == "speed"
        ),
        "{:?}",
        log[1].instructions
    );
}

#[test]
fn queries_read_sets_and_dictionaries() {
    let dir = tempfile::tempdir().unwrap();
    let db = local(dir.path());
    db.write(|tx| {
        tx.create(
            "Dog",
            json!({"_id": 1, "colors": ["brown", "white"], "scores": {"agility": 5, "speed": 2}}),
            UpdateMode::Never,
        )?;
        tx.create("Dog", json!({"_id": 2, "colors": ["black"], "scores": {"speed": 9}}), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 3, "friends": [1, 2], "pals": {"best": 1}}), UpdateMode::Never)
    })
    .unwrap();
    let ids = |query: &str| -> Vec<i64> {
        let results = db.objects("Dog").unwrap().filtered(query, &[]).unwrap();
        results.iter().unwrap().map(|o| o.get("_id").unwrap().as_int().unwrap()).collect()
    };
    assert_eq!(ids("colors == 'white'"), [1]);
    assert_eq!(ids("ANY colors BEGINSWITH 'b'"), [1, 2]);
    assert_eq!(ids("colors.@count == 1"), [2]);
    assert_eq!(ids("colors.@size == 0"), [3]);
    assert_eq!(ids("scores['agility'] > 2"), [1]);
    assert_eq!(ids("scores[\"speed\"] >= 2"), [1, 2]);
    assert_eq!(ids("scores['agility'] == nil"), [2, 3], "a missing key reads as null");
    assert_eq!(ids("scores.@keys == 'agility'"), [1]);
    assert_eq!(ids("scores.@values > 8"), [2]);
    assert_eq!(ids("scores > 8"), [2], "a dictionary compares by its values");
    assert_eq!(ids("ALL scores.@values < 9"), [1, 3]);
    assert_eq!(ids("scores.@count == 2"), [1]);
    assert_eq!(ids("scores.@sum == 7"), [1]);
    assert_eq!(ids("scores.@max == 9"), [2]);
    assert_eq!(ids("friends.colors == 'black'"), [3]);
    assert_eq!(ids("friends.@count == 2"), [3]);

    let err = |query: &str| db.objects("Dog").unwrap().filtered(query, &[]).unwrap_err().to_string();
    assert!(err("colors['a'] == 'x'").contains("read a dictionary"), "{}", err("colors['a'] == 'x'"));
    assert!(err("scores['a'] == 'x'").contains("type mismatch"), "{}", err("scores['a'] == 'x'"));
    assert!(err("scores.@keys == 3").contains("type mismatch"), "{}", err("scores.@keys == 3"));
    assert!(err("pals.colors == 'x'").contains("is a dictionary"), "{}", err("pals.colors == 'x'"));
    assert!(err("scores[3] == 1").contains("expected a key in quotes"), "{}", err("scores[3] == 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_entry_edits_from_two_devices_merge_entry_by_entry() {
    let dir = tempfile::tempdir().unwrap();
    let partition = TestPartition::start(dir.path(), SCHEMA).await;
    let (a, b) = (partition.device("a").await, partition.device("b").await);
    a.write(|tx| {
        tx.create(
            "Dog",
            json!({"_id": 1, "colors": ["brown"], "scores": {"agility": 5, "speed": 1}}),
            UpdateMode::Never,
        )
    })
    .unwrap();
    synced(&a).await;
    synced(&b).await;

    // Both offline. A writes first (earlier clock), then B.
    a.sync_session().unwrap().pause();
    b.sync_session().unwrap().pause();
    a.write(|tx| {
        tx.set_add("Dog", 1, "colors", "white")?;
        tx.dict_put("Dog", 1, "scores", "agility", 6)?;
        tx.dict_put("Dog", 1, "scores", "stamina", 4)
    })
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    b.write(|tx| {
        tx.set_add("Dog", 1, "colors", "black")?;
        tx.set_remove("Dog", 1, "colors", "brown")?;
        tx.dict_put("Dog", 1, "scores", "agility", 9)?;
        tx.dict_remove("Dog", 1, "scores", "speed").map(drop)
    })
    .unwrap();
    // B uploads first: A's older put of agility loses even so.
    b.sync_session().unwrap().resume();
    synced(&b).await;
    a.sync_session().unwrap().resume();
    synced(&a).await;
    synced(&b).await;

    let expected_colors = json!(["black", "white"]);
    let expected_scores = json!({"agility": 9, "stamina": 4});
    for device in [&a, &b] {
        assert_eq!(dog(device, 1)["colors"], expected_colors);
        assert_eq!(dog(device, 1)["scores"], expected_scores);
    }
    let folded = fold_history(partition.storage.as_ref(), "p");
    assert_eq!(folded[&1]["colors"].to_json(), expected_colors, "the merge of the server's history");
    assert_eq!(folded[&1]["scores"].to_json(), expected_scores);

    // A device that starts now gets both, and edits them by entry.
    let c = partition.device("c").await;
    synced(&c).await;
    assert_eq!(dog(&c, 1)["scores"], expected_scores);
    c.write(|tx| tx.set_add("Dog", 1, "colors", "grey").map(drop)).unwrap();
    synced(&c).await;
    synced(&a).await;
    assert_eq!(dog(&a, 1)["colors"], json!(["black", "grey", "white"]));
    partition.server.shutdown().await;
}
