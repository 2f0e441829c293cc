//! `haven bench local`: the local database against SQLite.

use crate::{dogs, lists, median, memory, Measurement, Rng};
use rusqlite::{params, Connection};
use std::path::Path;
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Smaller sizes (for a quick look or CI).
    pub quick: bool,
    /// Runs per workload and engine; the median is reported.
    pub repeats: usize,
    /// Run only these workloads (all when empty).
    pub only: Vec<String>,
}

struct LocalSizes {
    bulk: usize,
    commits: usize,
    lookups: usize,
    query_objects: usize,
    list_owners: usize,
    list_elements: usize,
}

/// The workloads, in the order they run.
pub const WORKLOADS: [&str; 6] =
    ["bulk_insert", "single_commits", "pk_lookup", "range_query", "scan_query", "list_append"];

/// Runs every local workload; `progress` hears what is running.
pub fn run_local(opts: &LocalOptions, progress: &dyn Fn(&str)) -> Result<Vec<Measurement>, Box<dyn std::error::Error>> {
    let s = if opts.quick {
        LocalSizes {
            bulk: 20_000,
            commits: 200,
            lookups: 20_000,
            query_objects: 100_000,
            list_owners: 200,
            list_elements: 20_000,
        }
    } else {
        LocalSizes {
            bulk: 100_000,
            commits: 1_000,
            lookups: 100_000,
            query_objects: 1_000_000,
            list_owners: 1_000,
            list_elements: 100_000,
        }
    };
    if let Some(unknown) = opts.only.iter().find(|o| !WORKLOADS.contains(&o.as_str())) {
        return Err(format!("unknown workload '{unknown}'; the workloads are {}", WORKLOADS.join(", ")).into());
    }
    let dir = tempfile::tempdir()?;
    let reps = opts.repeats.max(1);
    let mut out = Vec::new();

    progress(&format!("bulk_insert: {} objects in one transaction", s.bulk));
    out.extend(measure(
        &opts.only,
        "bulk_insert",
        reps,
        |rep| {
            let db = dogs::open(&dir.path().join(format!("bulk-{rep}.haven")))?;
            let t = Instant::now();
            dogs::insert(&db, 0, s.bulk)?;
            Ok(t.elapsed().as_secs_f64())
        },
        |rep| {
            let conn = sqlite_db(&dir.path().join(format!("bulk-{rep}.sqlite")))?;
            let t = Instant::now();
            sqlite_insert(&conn, 0, s.bulk)?;
            Ok(t.elapsed().as_secs_f64())
        },
    )?);

    progress(&format!("single_commits: {} durable one-object transactions", s.commits));
    out.extend(measure(
        &opts.only,
        "single_commits",
        reps,
        |rep| {
            let db = dogs::open(&dir.path().join(format!("commits-{rep}.haven")))?;
            let t = Instant::now();
            dogs::insert_one_by_one(&db, 0, s.commits)?;
            Ok(t.elapsed().as_secs_f64())
        },
        |rep| {
            let conn = sqlite_db(&dir.path().join(format!("commits-{rep}.sqlite")))?;
            let t = Instant::now();
            for i in 0..s.commits {
                sqlite_insert(&conn, i, i + 1)?;
            }
            Ok(t.elapsed().as_secs_f64())
        },
    )?);

    progress(&format!("pk_lookup: {} random primary-key reads of {} objects", s.lookups, s.bulk));
    let haven = dogs::open(&dir.path().join("bulk-0.haven"))?;
    let sqlite = sqlite_db(&dir.path().join("bulk-0.sqlite"))?;
    if haven.objects("Dog")?.is_empty()? {
        dogs::insert(&haven, 0, s.bulk)?;
        sqlite_insert(&sqlite, 0, s.bulk)?;
    }
    out.extend(measure(
        &opts.only,
        "pk_lookup",
        reps,
        |rep| {
            let t = Instant::now();
            let found = dogs::lookup(&haven, s.lookups, s.bulk, rep as u64)?;
            check(found == s.lookups, "haven pk_lookup missed objects")?;
            Ok(t.elapsed().as_secs_f64())
        },
        |rep| {
            let mut rng = Rng::new(rep as u64);
            let mut stmt = sqlite.prepare_cached("SELECT _id, name, age, lastUpdated FROM dog WHERE _id = ?1")?;
            let t = Instant::now();
            let mut found = 0usize;
            for _ in 0..s.lookups {
                let name: Option<String> = stmt
                    .query_row([rng.below(s.bulk as u64) as i64], |r| {
                        let _: i64 = r.get(0)?;
                        let _: Option<i64> = r.get(2)?;
                        let _: i64 = r.get(3)?;
                        r.get(1)
                    })
                    .ok();
                found += name.is_some() as usize;
            }
            check(found == s.lookups, "sqlite pk_lookup missed objects")?;
            Ok(t.elapsed().as_secs_f64())
        },
    )?);

    progress(&format!("preparing {} objects for the query workloads", s.query_objects));
    let haven = dogs::open(&dir.path().join("query.haven"))?;
    let sqlite = sqlite_db(&dir.path().join("query.sqlite"))?;
    let queries = ["range_query", "scan_query"];
    if opts.only.is_empty() || opts.only.iter().any(|o| queries.contains(&o.as_str())) {
        dogs::insert(&haven, 0, s.query_objects)?;
        sqlite_insert(&sqlite, 0, s.query_objects)?;
    }
    let threshold = (s.query_objects - s.query_objects / 10) as i64;

    progress("range_query: indexed lastUpdated > X (10%), iterated and counted");
    let expected = s.query_objects / 10 - 1;
    out.extend(measure(
        &opts.only,
        "range_query",
        reps,
        |_| {
            let t = Instant::now();
            let n = dogs::range_query(&haven, threshold)?;
            check(n == expected, "haven range_query count")?;
            Ok(t.elapsed().as_secs_f64())
        },
        |_| {
            let t = Instant::now();
            let n = sqlite_iterate(
                &sqlite,
                "SELECT _id, name, age, lastUpdated FROM dog WHERE lastUpdated > ?1",
                params![threshold],
            )?;
            check(n == expected, "sqlite range_query count")?;
            Ok(t.elapsed().as_secs_f64())
        },
    )?);

    progress("scan_query: unindexed name BEGINSWITH \"dog 9\", iterated and counted");
    let expected = (0..s.query_objects).filter(|i| i.to_string().starts_with('9')).count();
    out.extend(measure(
        &opts.only,
        "scan_query",
        reps,
        |_| {
            let t = Instant::now();
            let n = dogs::scan_query(&haven, "dog 9")?;
            check(n == expected, "haven scan_query count")?;
            Ok(t.elapsed().as_secs_f64())
        },
        |_| {
            let t = Instant::now();
            let n = sqlite_iterate(
                &sqlite,
                "SELECT _id, name, age, lastUpdated FROM dog WHERE name GLOB 'dog 9*'",
                params![],
            )?;
            check(n == expected, "sqlite scan_query count")?;
            Ok(t.elapsed().as_secs_f64())
        },
    )?);

    let (owners, elements) = (s.list_owners, s.list_elements);
    progress(&format!("list_append: {elements} elements appended across {owners} objects' lists in one transaction"));
    out.extend(measure(
        &opts.only,
        "list_append",
        reps,
        |rep| {
            let db = lists::open(&dir.path().join(format!("lists-{rep}.haven")))?;
            lists::create_owners(&db, owners)?;
            let t = Instant::now();
            lists::append(&db, owners, 0, elements)?;
            let took = t.elapsed().as_secs_f64();
            let values = lists::values(&db)?;
            let in_order = values
                .iter()
                .enumerate()
                .all(|(o, l)| l.iter().enumerate().all(|(k, v)| *v as usize == k * owners + o));
            check(values.iter().map(Vec::len).sum::<usize>() == elements && in_order, "haven list_append elements")?;
            Ok(took)
        },
        |rep| {
            let conn = sqlite_lists(&dir.path().join(format!("lists-{rep}.sqlite")), owners)?;
            let t = Instant::now();
            let tx = conn.unchecked_transaction()?;
            {
                let mut stmt = tx.prepare_cached("INSERT INTO walk (owner, value) VALUES (?1, ?2)")?;
                for i in 0..elements {
                    stmt.execute(params![(i % owners) as i64, i as i64])?;
                }
            }
            tx.commit()?;
            let took = t.elapsed().as_secs_f64();
            let n: i64 = conn.query_row("SELECT count(*) FROM walk", [], |r| r.get(0))?;
            check(n as usize == elements, "sqlite list_append rows")?;
            Ok(took)
        },
    )?);
    Ok(out)
}

/// SQLite's form of lists: a child table of elements with an index on
/// their parent, and `owners` parents.
fn sqlite_lists(path: &Path, owners: usize) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE owner (_id INTEGER PRIMARY KEY);
         CREATE TABLE walk (owner INTEGER NOT NULL REFERENCES owner(_id), value INTEGER NOT NULL);
         CREATE INDEX walk_owner ON walk(owner);",
    )?;
    let tx = conn.unchecked_transaction()?;
    for i in 0..owners {
        tx.execute("INSERT INTO owner (_id) VALUES (?1)", [i as i64])?;
    }
    tx.commit()?;
    Ok(conn)
}

type Timed = Result<f64, Box<dyn std::error::Error>>;

/// Runs Haven then SQLite, `reps` times, and takes medians; `None` when
/// `only` leaves the workload out.
fn measure(
    only: &[String],
    name: &str,
    reps: usize,
    mut haven: impl FnMut(usize) -> Timed,
    mut sqlite: impl FnMut(usize) -> Timed,
) -> Result<Option<Measurement>, Box<dyn std::error::Error>> {
    if !only.is_empty() && !only.iter().any(|o| o == name) {
        return Ok(None);
    }
    let (mut h, mut s, mut peak) = (Vec::new(), Vec::new(), None::<f64>);
    for rep in 0..reps {
        memory::reset_peak();
        h.push(haven(rep)? * 1000.0);
        peak = match (peak, memory::peak_mib()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        s.push(sqlite(rep)? * 1000.0);
    }
    let (haven_ms, sqlite_ms) = (median(h), median(s));
    Ok(Some(Measurement {
        workload: name.to_owned(),
        haven_ms,
        sqlite_ms,
        ratio: haven_ms / sqlite_ms,
        haven_peak_mib: peak,
        ..Measurement::default()
    }))
}

pub(crate) fn check(ok: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if ok {
        Ok(())
    } else {
        Err(format!("benchmark self-check failed: {what}").into())
    }
}

pub(crate) fn sqlite_db(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS dog (_id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER, lastUpdated INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS dog_last_updated ON dog(lastUpdated);",
    )?;
    Ok(conn)
}

pub(crate) fn sqlite_insert(conn: &Connection, from: usize, to: usize) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare_cached("INSERT INTO dog (_id, name, age, lastUpdated) VALUES (?1, ?2, ?3, ?4)")?;
        for i in from..to {
            let i = i as i64;
            stmt.execute(params![i, format!("dog {i}"), i % 20, i])?;
        }
    }
    tx.commit()
}

fn sqlite_iterate(conn: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(args)?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let _: i64 = r.get(0)?;
        let name: String = r.get(1)?;
        let _: Option<i64> = r.get(2)?;
        let _: i64 = r.get(3)?;
        n += usize::from(!name.is_empty());
    }
    Ok(n)
}
