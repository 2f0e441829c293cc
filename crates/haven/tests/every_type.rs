//! A Realm schema that uses every property type Haven has opens, holds a
//! value of each, and syncs them to another device unchanged.

use haven::{Database, UpdateMode};
use haven_testkit::{synced, TestPartition};
use serde_json::json;

const SCHEMA: &str = r#"[
  {"name":"Owner","primaryKey":"_id","properties":{
    "_id":"objectId","flag":"bool","count":"int","ratio":"double","name":{"type":"string","indexed":true},
    "blob":"data?","born":"date","uid":"uuid","price":"decimal128","anything":"mixed","anythings":"mixed[]",
    "best":"Dog?","dogs":"Dog[]","tags":"string<>","favourites":"Dog<>","scores":"int?{}","pals":"Dog{}",
    "address":"Address","ranks":{"type":"list","objectType":"int"},
    "walked":{"type":"linkingObjects","objectType":"Dog","property":"walkers"}}},
  {"name":"Dog","primaryKey":"_id","properties":{"_id":"int","walkers":"Owner[]"}},
  {"name":"Address","embedded":true,"properties":{"city":"string","street":"string?","dog":"Dog?"}}
]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_with_every_type_opens_and_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let partition = TestPartition::start(dir.path(), SCHEMA).await;
    let a = partition.device("a").await;
    let oid = "5f1b2c3d4e5f6a7b8c9d0e1f";
    a.write(|tx| {
        tx.create("Dog", json!({"_id": 1}), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 2}), UpdateMode::Never)?;
        tx.create(
            "Owner",
            json!({"_id": oid, "flag": true, "count": 3, "ratio": 0.5, "name": "Ann", "blob": [1, 2], "born": 1_000,
                   "uid": "123e4567-e89b-12d3-a456-426614174000", "price": "12.50", "anything": "x", "anythings": [1, "y", null],
                   "best": 1, "dogs": [1, 2], "tags": ["b", "a"], "favourites": [2], "scores": {"a": 1, "b": null},
                   "pals": {"best": 1}, "address": {"city": "Oslo", "dog": 2}, "ranks": [3, 1]}),
            UpdateMode::Never,
        )?;
        tx.set("Dog", 1, "walkers", haven::Value::List(vec![haven::Value::from(oid)]))
    })
    .unwrap();
    synced(&a).await;
    let b = partition.device("b").await;
    synced(&b).await;
    let owner = |db: &Database| db.object_for_primary_key("Owner", oid).unwrap().expect("the owner").to_json();
    let expected = owner(&a);
    assert_eq!(expected["price"], json!("12.50"));
    assert_eq!(expected["tags"], json!(["a", "b"]));
    assert_eq!(expected["address"], json!({"city": "Oslo", "street": null, "dog": 2}));
    assert_eq!(owner(&b), expected, "the other device holds every value as written");
    let walked = b.object_for_primary_key("Owner", oid).unwrap().unwrap().linking_objects("walked").unwrap();
    assert_eq!(walked.len().unwrap(), 1, "the backlink is computed on the other device too");

    // Edits of each kind from the other device come back.
    b.write(|tx| {
        tx.set_path("Owner", oid, "address.street", "Main 1")?;
        tx.set_add("Owner", oid, "tags", "c")?;
        tx.dict_put("Owner", oid, "scores", "c", 3)?;
        tx.list_push("Owner", oid, "ranks", 2)?;
        tx.set("Owner", oid, "price", "0.10")
    })
    .unwrap();
    synced(&b).await;
    synced(&a).await;
    assert_eq!(owner(&a), owner(&b));
    assert_eq!(owner(&a)["ranks"], json!([3, 1, 2]));
    partition.server.shutdown().await;
}
