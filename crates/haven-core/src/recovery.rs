//! Client reset recovery (`docs/client-reset.md`): replaying a device's unsynced
//! changesets onto the server's fresh state, under a [`RecoveryPolicy`],
//! and saying in a [`RecoveryReport`] what was recovered and what was
//! dropped, and why. Pure: the caller reads the server's object states
//! and stores what comes out. `docs/client-reset.md` explains the rules.

use crate::key;
use crate::merge::validate::{check, value_fits};
use crate::merge::{apply, Changeset, HlcClock, Instruction, ObjectState, Overruled, Writer};
use crate::{PropertyType, Schema, Value};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Whose field values win when a recovered change meets a server change
/// the device had not seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecoveryPolicy {
    /// Per field, the later write wins (hybrid logical clocks): an offline
    /// edit never overwrites a newer edit from another device. The result
    /// is what the server would have made of the changes had the device
    /// uploaded them without a reset.
    #[default]
    LatestWins,
    /// The recovering device's values win, however old (Realm's rule):
    /// its changes are stamped anew, as if made after everything the
    /// server has. Edits to objects the server deleted are still dropped.
    ClientWins,
}

/// What kind of change an item of a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// An object created (or upserted).
    Create,
    /// A property written.
    Set,
    /// A number added to.
    Increment,
    /// An object deleted.
    Delete,
    /// A list written whole.
    ListAssign,
    /// A list element inserted.
    ListInsert,
    /// A list element's value changed.
    ListSet,
    /// A list element moved.
    ListMove,
    /// A list element removed.
    ListRemove,
    /// A set element added.
    SetAdd,
    /// A set element removed.
    SetRemove,
    /// A dictionary entry put.
    DictionaryPut,
    /// A dictionary entry removed.
    DictionaryRemove,
    /// A field of an embedded object in a list set.
    ListElementPut,
}

impl ChangeKind {
    /// The kind of `instruction`.
    pub fn of(instruction: &Instruction) -> ChangeKind {
        match instruction {
            Instruction::Create { .. } => ChangeKind::Create,
            Instruction::Set { .. } => ChangeKind::Set,
            Instruction::Increment { .. } => ChangeKind::Increment,
            Instruction::Delete { .. } => ChangeKind::Delete,
            Instruction::ListAssign { .. } => ChangeKind::ListAssign,
            Instruction::ListInsert { .. } => ChangeKind::ListInsert,
            Instruction::ListSet { .. } => ChangeKind::ListSet,
            Instruction::ListMove { .. } => ChangeKind::ListMove,
            Instruction::ListRemove { .. } => ChangeKind::ListRemove,
            Instruction::SetAdd { .. } => ChangeKind::SetAdd,
            Instruction::SetRemove { .. } => ChangeKind::SetRemove,
            Instruction::DictionaryPut { .. } => ChangeKind::DictionaryPut,
            Instruction::DictionaryRemove { .. } => ChangeKind::DictionaryRemove,
            Instruction::ListElementPut { .. } => ChangeKind::ListElementPut,
        }
    }
}

/// Why a change (or one field of it) was not recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DropReason {
    /// The object was deleted on the server by a device that had not seen
    /// this change (delete wins), or no longer exists there.
    DeletedOnServer,
    /// Another device wrote the field later ([`RecoveryPolicy::LatestWins`]).
    OlderThanServer,
    /// The server's schema no longer has the property, or gives it another
    /// type (a breaking schema change).
    SchemaIncompatible,
    /// The change links to an object that no longer exists.
    LinkTargetDeleted,
    /// An increment of a value that is no longer a number.
    NotANumber,
    /// The reset discarded unsynced changes (`DiscardUnsynced`, or a
    /// fallback to it).
    Discarded,
    /// The list element the change is about was removed on the server, or
    /// the list was written whole there since.
    ElementRemoved,
}

/// A change that was recovered (the fields that made it, for a create or a set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveredChange {
    /// The object's type.
    pub object_type: String,
    /// The object's primary key.
    pub pk: Value,
    /// What the change did.
    pub kind: ChangeKind,
    /// The properties it wrote (empty for a delete).
    pub fields: Vec<String>,
}

/// A change, or one field of it, that was not recovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedChange {
    /// The object's type.
    pub object_type: String,
    /// The object's primary key.
    pub pk: Value,
    /// What the change did.
    pub kind: ChangeKind,
    /// The property, when only one property of the change was dropped.
    pub field: Option<String>,
    /// Why.
    pub reason: DropReason,
}

/// What a recovery did with each unsynced change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryReport {
    recovered: Vec<RecoveredChange>,
    dropped: Vec<DroppedChange>,
}

impl RecoveryReport {
    /// The changes recovered, in the order they were made.
    pub fn recovered(&self) -> &[RecoveredChange] {
        &self.recovered
    }

    /// What was dropped, and why, in the order the changes were made.
    pub fn dropped(&self) -> &[DroppedChange] {
        &self.dropped
    }

    /// Whether nothing was dropped.
    pub fn is_complete(&self) -> bool {
        self.dropped.is_empty()
    }

    /// Notes a recovered change.
    pub fn add_recovered(&mut self, instruction: &Instruction) {
        let (object_type, pk) = instruction.object();
        let fields = match instruction {
            Instruction::Create { fields, .. } => fields.iter().map(|(name, _)| name.clone()).collect(),
            other => other.field().map(str::to_owned).into_iter().collect(),
        };
        let kind = ChangeKind::of(instruction);
        self.recovered.push(RecoveredChange { object_type: object_type.to_owned(), pk: pk.clone(), kind, fields });
    }

    /// Notes a dropped change (`field: None`) or field.
    pub fn add_dropped(&mut self, instruction: &Instruction, field: Option<&str>, reason: DropReason) {
        let (object_type, pk) = instruction.object();
        self.dropped.push(DroppedChange {
            object_type: object_type.to_owned(),
            pk: pk.clone(),
            kind: ChangeKind::of(instruction),
            field: field.map(str::to_owned),
            reason,
        });
    }

    /// The report of a reset that discarded `unsynced`: every change dropped.
    pub fn discarded(unsynced: &[Changeset]) -> RecoveryReport {
        let mut report = RecoveryReport::default();
        for instruction in unsynced.iter().flat_map(|cs| &cs.instructions) {
            report.add_dropped(instruction, None, DropReason::Discarded);
        }
        report
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} change(s) recovered, {} dropped", self.recovered.len(), self.dropped.len())?;
        for d in &self.dropped {
            let field = d.field.as_deref().map(|name| format!(".{name}")).unwrap_or_default();
            write!(f, "; {:?} {}[{}]{field}: {:?}", d.kind, d.object_type, d.pk, d.reason)?;
        }
        Ok(())
    }
}

/// How to recover: the rules, and where the recovered changes go.
#[derive(Debug, Clone)]
pub struct Recovery<'a> {
    /// The schema the recovered changes must fit (the server's, after a
    /// breaking change).
    pub schema: &'a Schema,
    /// Whose values win.
    pub policy: RecoveryPolicy,
    /// The server version of the state recovered onto.
    pub server_version: u64,
    /// Whether the server's versions continue the history the changesets'
    /// base versions refer to (not so after a restore from a backup): then
    /// [`RecoveryPolicy::LatestWins`] keeps what each changeset had seen.
    pub history_continues: bool,
    /// The device's new ident on the server.
    pub replica: u64,
    /// The device's clock ([`RecoveryPolicy::ClientWins`] stamps with it).
    pub clock: HlcClock,
    /// The wall clock now, in milliseconds since the Unix epoch.
    pub now_millis: u64,
}

/// The outcome of a recovery.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The changesets to upload in place of the unsynced ones, numbered
    /// from client version 1: only what survived, stamped per the policy.
    pub changesets: Vec<Changeset>,
    /// What of each change won, in order: the recovered changes without
    /// the fields they lost (to apply as new local writes, as a manual
    /// recovery does; `changesets` keeps creates whole for the server).
    pub survivors: Vec<Instruction>,
    /// What was recovered and what was dropped.
    pub report: RecoveryReport,
    /// The clock after the recovery (to persist).
    pub clock: HlcClock,
}

/// Objects read so far: `type \0 key` → state (as the recovery left it).
type States = HashMap<Vec<u8>, Option<ObjectState>>;

impl Recovery<'_> {
    /// Recovers `unsynced` (oldest first) onto the server's state, which
    /// `server_state(type, pk)` reads.
    ///
    /// ```
    /// use haven_core::merge::{apply, Changeset, Hlc, HlcClock, Instruction, Writer};
    /// use haven_core::recovery::{DropReason, Recovery, RecoveryPolicy};
    /// use haven_core::Schema;
    /// let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","age":"int?"}}]"#).unwrap();
    /// let set = |age: i64| Instruction::Set { object_type: "Dog".into(), pk: 1.into(), field: "age".into(), value: age.into() };
    /// // The server: Dog 1 created at version 1, then another device set age 6 at 12:00:30.
    /// let create = Instruction::Create { object_type: "Dog".into(), pk: 1.into(), fields: vec![("_id".into(), 1.into())] };
    /// let writer = |version, millis, replica| Writer { version, base_version: version - 1, hlc: Hlc { millis, counter: 0 }, replica };
    /// let dog = apply(None, &create, &writer(1, 10, 2)).state;
    /// let dog = apply(dog.as_ref(), &set(6), &writer(2, 30_000, 3)).state;
    /// // This device set age 4 offline at 12:00:20, having seen version 1.
    /// let offline = Changeset { replica: 0, client_version: 5, base_version: 1, hlc: Hlc { millis: 20_000, counter: 0 }, instructions: vec![set(4)] };
    /// let recovery = |policy| Recovery { schema: &schema, policy, server_version: 2, history_continues: true,
    ///     replica: 9, clock: HlcClock::default(), now_millis: 60_000 };
    /// let latest = recovery(RecoveryPolicy::LatestWins).run(std::slice::from_ref(&offline), |_, _| dog.clone());
    /// assert!(latest.changesets.is_empty()); // the server's later age 6 stays
    /// assert_eq!(latest.report.dropped()[0].reason, DropReason::OlderThanServer);
    /// let client = recovery(RecoveryPolicy::ClientWins).run(&[offline], |_, _| dog.clone());
    /// assert_eq!(client.changesets[0].instructions, vec![set(4)]); // re-stamped: it wins
    /// assert!(client.report.is_complete());
    /// ```
    pub fn run(
        mut self,
        unsynced: &[Changeset],
        mut server_state: impl FnMut(&str, &Value) -> Option<ObjectState>,
    ) -> Recovered {
        let mut states = States::new();
        let mut report = RecoveryReport::default();
        let mut survivors = Vec::new();
        let mut changesets = Vec::new();
        for (n, cs) in unsynced.iter().enumerate() {
            let (hlc, base_version) = match self.policy {
                RecoveryPolicy::LatestWins => {
                    let base = if self.history_continues { cs.base_version.min(self.server_version) } else { 0 };
                    (cs.hlc, base)
                }
                RecoveryPolicy::ClientWins => {
                    // Later than every stamp on the objects it touches: it wins them all.
                    for instruction in &cs.instructions {
                        let (ty, pk) = instruction.object();
                        if let Some(state) = state(&mut states, &mut server_state, ty, pk) {
                            state.stamps().for_each(|stamp| self.clock.observe(stamp.hlc));
                        }
                    }
                    (self.clock.now(self.now_millis), self.server_version)
                }
            };
            let writer =
                Writer { version: self.server_version + 1 + n as u64, base_version, hlc, replica: self.replica };
            let instructions: Vec<Instruction> = cs
                .instructions
                .iter()
                .filter_map(|i| {
                    let (upload, survivor) = self.instruction(i, &writer, &mut states, &mut server_state, &mut report);
                    survivors.extend(survivor);
                    upload
                })
                .collect();
            if !instructions.is_empty() {
                let client_version = changesets.len() as u64 + 1;
                changesets.push(Changeset { replica: cs.replica, client_version, base_version, hlc, instructions });
            }
        }
        Recovered { changesets, survivors, report, clock: self.clock }
    }

    /// Recovers one instruction: what of it to upload, and what of it won.
    fn instruction(
        &self,
        instruction: &Instruction,
        writer: &Writer,
        states: &mut States,
        server_state: &mut impl FnMut(&str, &Value) -> Option<ObjectState>,
        report: &mut RecoveryReport,
    ) -> (Option<Instruction>, Option<Instruction>) {
        let Some(fitting) = self.fitting(instruction, report) else { return (None, None) };
        let Some(linked) = without_dangling_links(self.schema, fitting, states, server_state, report) else {
            return (None, None);
        };
        let (ty, pk) = linked.object();
        let current = state(states, server_state, ty, pk);
        let applied = apply(current.as_ref(), &linked, writer);
        // Fields the merge dropped; of those, the ones whose value the
        // server does not hold anyway are lost (and reported).
        let (mut dropped_fields, mut lost) = (Vec::new(), Vec::new());
        for dropped in &applied.dropped {
            let reason = match dropped.reason {
                Overruled::DeletedOnServer | Overruled::NotFound => DropReason::DeletedOnServer,
                Overruled::OlderThanServer => DropReason::OlderThanServer,
                Overruled::NotANumber => DropReason::NotANumber,
                Overruled::ElementRemoved | Overruled::ElementNotFound | Overruled::ElementExists => {
                    DropReason::ElementRemoved
                }
                Overruled::NotAList => DropReason::SchemaIncompatible,
            };
            let Some(field) = &dropped.field else {
                report.add_dropped(&linked, None, reason);
                return (None, None);
            };
            if not_held(&linked, field, &applied.state) {
                report.add_dropped(&linked, Some(field), reason);
                lost.push(field.clone());
            }
            dropped_fields.push(field.clone());
        }
        *current = applied.state;
        let survivor = without_fields(linked.clone(), &lost);
        if let Some(recovered) = &survivor {
            report.add_recovered(recovered);
        }
        // A create is uploaded whole (the server needs every required
        // property, and its merge drops the same fields again); a set or
        // increment the merge dropped is not uploaded at all.
        let upload = match linked {
            Instruction::Create { ref fields, .. } if dropped_fields.len() == fields.len() => None,
            Instruction::Create { .. } => Some(linked),
            _ if !dropped_fields.is_empty() => None,
            _ => Some(linked),
        };
        (upload, survivor)
    }

    /// The instruction without what the schema no longer accepts.
    fn fitting(&self, instruction: &Instruction, report: &mut RecoveryReport) -> Option<Instruction> {
        let (type_name, _) = instruction.object();
        let Some(ty) = self.schema.object_type(type_name) else {
            report.add_dropped(instruction, None, DropReason::SchemaIncompatible);
            return None;
        };
        let fitting = match instruction {
            Instruction::Create { object_type, pk, fields } => {
                let (fit, misfit): (Vec<_>, Vec<_>) =
                    fields.iter().cloned().partition(|(name, value)| value_fits(self.schema, ty, name, value).is_ok());
                for (name, _) in &misfit {
                    report.add_dropped(instruction, Some(name), DropReason::SchemaIncompatible);
                }
                Instruction::Create { object_type: object_type.clone(), pk: pk.clone(), fields: fit }
            }
            other => other.clone(),
        };
        if check(self.schema, &fitting).is_err() {
            report.add_dropped(instruction, fitting.field(), DropReason::SchemaIncompatible);
            return None;
        }
        Some(fitting)
    }
}

/// The instruction without links to objects that do not exist (now, as
/// far as the recovery has come).
fn without_dangling_links(
    schema: &Schema,
    instruction: Instruction,
    states: &mut States,
    server_state: &mut impl FnMut(&str, &Value) -> Option<ObjectState>,
    report: &mut RecoveryReport,
) -> Option<Instruction> {
    let ty = schema.object_type(instruction.object().0).expect("checked against the schema");
    let mut dangling = Vec::new();
    let written: Vec<(&String, &Value)> = match &instruction {
        Instruction::Create { fields, .. } => fields.iter().map(|(n, v)| (n, v)).collect(),
        Instruction::Set { field, value, .. } => vec![(field, value)],
        _ => vec![],
    };
    for (name, value) in written {
        let target = match ty.property_named(name).map(|p| (&p.ty, p.is_collection())) {
            Some((PropertyType::Link(target), false)) if !value.is_null() => target,
            _ => continue,
        };
        if !matches!(state(states, server_state, target, value), Some(ObjectState::Live { .. })) {
            report.add_dropped(&instruction, Some(name), DropReason::LinkTargetDeleted);
            dangling.push(name.clone());
        }
    }
    without_fields(instruction, &dangling)
}

/// The instruction without writes to `fields`; `None` if nothing is left.
fn without_fields(instruction: Instruction, fields: &[String]) -> Option<Instruction> {
    if fields.is_empty() {
        return Some(instruction);
    }
    match instruction {
        Instruction::Create { object_type, pk, fields: given } => {
            let kept: Vec<_> = given.into_iter().filter(|(name, _)| !fields.contains(name)).collect();
            (!kept.is_empty()).then_some(Instruction::Create { object_type, pk, fields: kept })
        }
        other if other.field().is_some_and(|f| fields.iter().any(|lost| lost == f)) => None,
        other => Some(other),
    }
}

/// Whether the state does not hold what `instruction` wanted of `field`:
/// a dropped write whose value the server holds anyway lost nothing.
fn not_held(instruction: &Instruction, field: &str, state: &Option<ObjectState>) -> bool {
    let now = field_value(state, field);
    let set_has = |element: &Value| now.and_then(Value::as_set).is_some_and(|s| s.contains(element));
    let entry = |key: &str| now.and_then(Value::as_dictionary).and_then(|d| d.get(key));
    match instruction {
        Instruction::SetAdd { value, .. } => !set_has(value),
        Instruction::SetRemove { value, .. } => set_has(value),
        Instruction::DictionaryPut { key, value, .. } => entry(key) != Some(value),
        Instruction::DictionaryRemove { key, .. } => entry(key).is_some(),
        Instruction::ListElementPut { id, key, value, .. } => {
            let list = state.as_ref().and_then(|s| s.list(field));
            let element = list.as_ref().and_then(|l| l.live().find(|e| e.id == *id).map(|e| e.value.clone()));
            element.as_ref().and_then(Value::as_dictionary).and_then(|d| d.get(key)) != Some(value)
        }
        _ => proposed(instruction, field) != now,
    }
}

fn proposed<'i>(instruction: &'i Instruction, field: &str) -> Option<&'i Value> {
    match instruction {
        Instruction::Create { fields, .. } => fields.iter().find(|(name, _)| name == field).map(|(_, v)| v),
        Instruction::Set { value, .. } => Some(value),
        _ => None,
    }
}

fn field_value<'s>(state: &'s Option<ObjectState>, field: &str) -> Option<&'s Value> {
    match state {
        Some(ObjectState::Live { fields, .. }) => fields.get(field).map(|f| &f.value),
        _ => None,
    }
}

/// The object's state as the recovery has left it, read from the server's
/// state the first time.
fn state<'s>(
    states: &'s mut States,
    server_state: &mut impl FnMut(&str, &Value) -> Option<ObjectState>,
    ty: &str,
    pk: &Value,
) -> &'s mut Option<ObjectState> {
    let mut id = ty.as_bytes().to_vec();
    id.push(0);
    if let Some(pk) = pk.as_ref() {
        id.extend_from_slice(&key::to_key(pk));
    }
    states.entry(id).or_insert_with(|| server_state(ty, pk))
}
