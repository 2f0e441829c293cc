//! `haven demo`, second part: a client reset in each mode. The phone edits
//! offline while the laptop edits the same dog; the server resets the
//! phone; what each mode makes of the phone's unsynced changes is printed.

use haven::recovery::RecoveryPolicy;
use haven::{ClientResetMode, Config, Database, Schema, SyncConfig, SyncError, UpdateMode};
use haven_server::Server;
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::demo::{dogs, show, sync, DemoResult, SCHEMA};

/// The modes shown, with what the demo does to the server first.
const MODES: [&str; 5] = [
    "Manual",
    "DiscardUnsynced",
    "RecoverUnsynced (LatestWins)",
    "RecoverUnsynced (ClientWins)",
    "RecoverOrDiscard (recovery forbidden by the server)",
];

pub async fn run(dir: &Path, server: &Server) -> DemoResult {
    println!("\n== client reset: the server can no longer continue the phone's history ==");
    println!("In each mode: the phone, offline, sets Rex's age to 4, adds Bo and deletes Ace;");
    println!("the laptop then sets Rex's age to 6; the server resets the phone; the phone reconnects.");
    for (n, title) in MODES.iter().enumerate() {
        println!("\n-- {title} --");
        one_mode(dir, server, n).await?;
    }
    Ok(())
}

async fn one_mode(dir: &Path, server: &Server, n: usize) -> DemoResult {
    let partition = format!("reset-demo-{n}");
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let mode = mode(n, &events);
    let phone = open(dir, &format!("phone-{n}"), server, &partition, mode, &events).await?;
    let laptop = open(dir, &format!("laptop-{n}"), server, &partition, ClientResetMode::default(), &events).await?;
    phone.write(|tx| {
        tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 1}), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 2, "name": "Ace", "age": 5}), UpdateMode::Never)
    })?;
    sync(&[&phone, &laptop]).await?;
    let session = phone.sync_session().ok_or("not synced")?;
    session.pause();
    phone.write(|tx| {
        tx.set("Dog", 1, "age", 4)?;
        tx.create("Dog", json!({"_id": 3, "name": "Bo", "age": 0}), UpdateMode::Never)?;
        tx.delete("Dog", 2).map(drop)
    })?;
    tokio::time::sleep(Duration::from_millis(10)).await;
    laptop.write(|tx| tx.set("Dog", 1, "age", 6))?;
    sync(&[&laptop]).await?;
    if n == 4 {
        server.set_recovery_allowed(&partition, false).await?;
    }
    let (ident, _) = phone.sync_position()?.file_ident.ok_or("never bound")?;
    server.reset_client(ident).await?;
    println!("  server: reset the phone (file ident {ident})");
    session.resume();
    if n == 0 {
        return manual(phone, &laptop, &partition, server, &events).await;
    }
    sync(&[&phone, &laptop]).await?;
    print_events(&events);
    show("phone", &phone)?;
    show("laptop", &laptop)?;
    converged(&phone, &laptop)
}

fn converged(phone: &Database, laptop: &Database) -> DemoResult {
    if dogs(phone)? != dogs(laptop)? {
        return Err("the phone and the laptop did not converge".into());
    }
    println!("  converged: yes");
    Ok(())
}

/// Manual mode: the app closes the database, moves it aside, reopens it
/// and recovers from the backup with a strategy of `haven::recovery`.
async fn manual(
    phone: Database,
    laptop: &Database,
    partition: &str,
    server: &Server,
    events: &Arc<Mutex<Vec<String>>>,
) -> DemoResult {
    let info = loop {
        let found = events.lock().unwrap().iter().any(|e| e.starts_with("on_manual"));
        if found {
            break phone.pending_client_reset()?.ok_or("no reset pending")?;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    print_events(events);
    let path = phone.path().to_owned();
    drop(phone);
    let backup = haven::initiate_client_reset(&path)?;
    println!("  app: closed the database; initiate_client_reset moved it to {}", backup.display());
    if backup != info.backup_path {
        return Err("the backup is not where the reset said".into());
    }
    let mode = ClientResetMode::Manual { on_manual: None };
    let phone = open_at(&path, server, partition, mode, events).await?;
    show("phone (reopened)", &phone)?;
    let old = Database::open(Config::new(&backup).read_only())?;
    let report = haven::recovery::by_field(&old, &phone)?;
    println!("  app: recovery::by_field from the backup: {report}");
    sync(&[&phone, laptop]).await?;
    show("phone", &phone)?;
    show("laptop", laptop)?;
    converged(&phone, laptop)
}

fn mode(n: usize, events: &Arc<Mutex<Vec<String>>>) -> ClientResetMode {
    let (b, a) = (events.clone(), events.clone());
    let before = Some(Box::new(move |db: &Database| {
        let dogs = db.objects("Dog")?.len()?;
        b.lock().unwrap().push(format!("before callback: the frozen phone holds {dogs} dogs"));
        Ok(())
    }) as haven::BeforeReset);
    let after = Some(Box::new(move |_: &Database, _: &Database, report: &haven::RecoveryReport| {
        a.lock().unwrap().push(format!("after callback: {report}"));
        Ok(())
    }) as haven::AfterReset);
    match n {
        0 => {
            let e = events.clone();
            let on_manual = Some(Box::new(move |info: &haven::ClientResetInfo| {
                e.lock().unwrap().push(format!("on_manual: reset needed ({:?}); sync stopped", info.reason()));
            }) as haven::ResetHandler);
            ClientResetMode::Manual { on_manual }
        }
        1 => ClientResetMode::DiscardUnsynced { before, after },
        2 => ClientResetMode::RecoverUnsynced { policy: RecoveryPolicy::LatestWins, before, after },
        3 => ClientResetMode::RecoverUnsynced { policy: RecoveryPolicy::ClientWins, before, after },
        _ => {
            let e = events.clone();
            let fallback = Some(Box::new(move |_: &haven::ClientResetInfo| {
                e.lock().unwrap().push("fallback: recovery was not possible; unsynced changes discarded".into());
            }) as haven::ResetHandler);
            ClientResetMode::RecoverOrDiscard { policy: RecoveryPolicy::LatestWins, before, after, fallback }
        }
    }
}

async fn open(
    dir: &Path,
    name: &str,
    server: &Server,
    partition: &str,
    mode: ClientResetMode,
    events: &Arc<Mutex<Vec<String>>>,
) -> DemoResult<Database> {
    open_at(&dir.join(format!("{name}.haven")), server, partition, mode, events).await
}

async fn open_at(
    path: &Path,
    server: &Server,
    partition: &str,
    mode: ClientResetMode,
    events: &Arc<Mutex<Vec<String>>>,
) -> DemoResult<Database> {
    let e = events.clone();
    let sync = SyncConfig::new(server.url(), "any token in dev mode", partition)
        .reconnect_delays(Duration::from_millis(50), Duration::from_secs(1))
        .client_reset(mode)
        .on_error(move |err: &SyncError| e.lock().unwrap().push(format!("on_error: {err}")));
    let config = Config::new(path).schema(Schema::from_json(SCHEMA)?).sync(sync);
    Ok(Database::open_synced(config).await?)
}

fn print_events(events: &Arc<Mutex<Vec<String>>>) {
    for line in events.lock().unwrap().drain(..) {
        println!("  phone: {line}");
    }
}
