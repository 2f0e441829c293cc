//! `haven inspect FILE`: what a database file holds, read-only.

use haven::{Config, Database};
use std::path::Path;

pub fn run(path: &Path, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()).into());
    }
    let db = Database::open(Config::new(path).read_only())?;
    let mut types = Vec::new();
    for ty in db.schema().types() {
        let count = db.objects(ty.name())?.len()?;
        types.push((ty, count));
    }
    let position = db.sync_position()?;
    let pending = db.pending_changes()?.len();
    if json {
        let types: Vec<_> = types
            .iter()
            .map(|(ty, count)| serde_json::json!({"type": ty.name(), "primary_key": ty.primary_key_name(), "objects": count}))
            .collect();
        let report = serde_json::json!({
            "path": path.display().to_string(),
            "schema": serde_json::from_str::<serde_json::Value>(&db.schema().to_json())?,
            "types": types,
            "sync": {
                "file_ident": position.file_ident.map(|(ident, _)| ident),
                "server_version": position.base_version,
                "changesets_written": position.last_client_version,
                "changesets_acknowledged": position.acknowledged,
                "pending_changesets": pending,
            },
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{}", path.display());
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
    Ok(())
}
