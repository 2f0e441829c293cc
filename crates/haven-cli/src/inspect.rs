//! `haven inspect FILE`: what a database file holds, read-only: schema,
//! object counts, unsynced changes, sync state, a client reset under way
//! and the backups earlier resets left beside the file. A file whose
//! process was killed is shown from a repaired temporary copy: the file
//! itself is never written.

use haven::recovery::ChangeKind;
use haven::{Config, Database};
use std::path::Path;

pub fn run(path: &Path, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()).into());
    }
    let (db, copy) = match Database::open(Config::new(path).read_only()) {
        Ok(db) => (db, None),
        Err(haven::Error::NotClosedCleanly(_)) => {
            let copy = repaired_copy(path)?;
            (Database::open(Config::new(copy.path().join("copy.haven")).read_only())?, Some(copy))
        }
        Err(e) => return Err(e.into()),
    };
    let repaired = copy.is_some();
    let mut types = Vec::new();
    // Embedded types have no objects of their own: their parents hold them.
    for ty in db.schema().types().iter().filter(|t| !t.is_embedded()) {
        let count = db.objects(ty.name())?.len()?;
        types.push((ty, count));
    }
    let position = db.sync_position()?;
    let changesets = db.pending_changes()?;
    let pending = changesets.len();
    let kinds = [ChangeKind::Create, ChangeKind::Set, ChangeKind::Increment, ChangeKind::Delete];
    let by_kind: Vec<(ChangeKind, usize)> = kinds
        .into_iter()
        .map(|k| (k, changesets.iter().flat_map(|cs| &cs.instructions).filter(|i| ChangeKind::of(i) == k).count()))
        .collect();
    let reset = db.pending_client_reset()?;
    let backups = haven::client_reset_backups(path)?;
    if json {
        let types: Vec<_> = types
            .iter()
            .map(|(ty, count)| serde_json::json!({"type": ty.name(), "primary_key": ty.primary_key_name(), "objects": count}))
            .collect();
        let report = serde_json::json!({
            "path": path.display().to_string(),
            "closed_cleanly": !repaired,
            "schema": serde_json::from_str::<serde_json::Value>(&db.schema().to_json())?,
            "types": types,
            "sync": {
                "file_ident": position.file_ident.map(|(ident, _)| ident),
                "server_version": position.base_version,
                "changesets_written": position.last_client_version,
                "changesets_acknowledged": position.acknowledged,
                "pending_changesets": pending,
                "pending_changes": by_kind.iter().map(|(k, n)| (format!("{k:?}").to_lowercase(), (*n).into())).collect::<serde_json::Map<_, _>>(),
            },
            "client_reset": reset.as_ref().map(|r| serde_json::json!({
                "reason": format!("{:?}", r.reason),
                "failed_attempts": r.failed_attempts,
                "committed": r.committed,
                "backup_path": r.backup_path.display().to_string(),
            })),
            "backups": backups.iter().map(|b| b.display().to_string()).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{}", path.display());
    if repaired {
        println!("  not closed cleanly (its process was killed or crashed): shown from a repaired temporary copy, the file is unchanged; opening it once for writing repairs it");
    }
    for (ty, count) in &types {
        let properties: Vec<String> = ty
            .properties()
            .iter()
            .map(|p| {
                let index = if p.indexed { ", indexed" } else { "" };
                format!("{} {}{index}", p.name, p.type_string())
            })
            .collect();
        println!("  {} ({count} objects; primary key {}): {}", ty.name(), ty.primary_key_name(), properties.join(", "));
    }
    match position.file_ident {
        Some((ident, _)) => println!(
            "  sync: file ident {ident}, server version {}, {} changesets written, {} acknowledged, {pending} pending",
            position.base_version, position.last_client_version, position.acknowledged
        ),
        None if position.last_client_version > 0 => {
            println!("  sync: never bound to a server; {pending} changesets pending")
        }
        None => println!("  sync: none (a local database, or never written while syncing)"),
    }
    if pending > 0 {
        let parts: Vec<String> =
            by_kind.iter().map(|(k, n)| format!("{n} {}", format!("{k:?}").to_lowercase())).collect();
        println!("  unsynced changes: {}", parts.join(", "));
    }
    if let Some(r) = &reset {
        let state = match (r.committed, r.failed_attempts) {
            (true, _) => "committed; waiting for the server to acknowledge the recovered changes".to_owned(),
            (false, 0) => "not finished: the next sync carries it on as the app's ClientResetMode says".to_owned(),
            (false, n) => format!("not finished, {n} attempt(s) failed"),
        };
        println!(
            "  client reset ({:?}): {state}; a manual reset moves the file to {}",
            r.reason,
            r.backup_path.display()
        );
    }
    for backup in &backups {
        println!("  backup from an earlier client reset: {}", backup.display());
    }
    Ok(())
}

/// A copy of the file at `path` in a temporary directory, repaired by
/// opening it for writing (redb's crash recovery), as `copy.haven`.
fn repaired_copy(path: &Path) -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("copy.haven");
    std::fs::copy(path, &copy).map_err(|e| format!("cannot copy {} to repair it: {e}", path.display()))?;
    drop(Database::open(Config::new(&copy))?);
    while Database::is_open(&copy) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(dir)
}
