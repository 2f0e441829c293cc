//! Where an object's server-confirmed state lives, so that synced data is
//! stored once.
//!
//! In a file that syncs, a record may be followed by a sync suffix:
//!
//! - *confirmed* (tag 1, then the field stamps): the record is the
//!   object's confirmed state, and nothing local is pending on it;
//! - *pending* (tag 2, then a client version as u64 LE): local changes up
//!   to that changeset are pending on the object; its confirmed state, if
//!   it has one, is in the overlay ([`CONFIRMED`]);
//! - nothing: the record says nothing of its confirmed state (the
//!   overlay holds it, or it has none).
//!
//! The confirmed state of an object is therefore its overlay entry if it
//! has one, else its record when that carries a confirmed suffix, else
//! none. The overlay holds only what a record cannot say: objects with
//! pending changes, tombstones, types this app's schema lacks, and values
//! the schema would show differently. `docs/storage.md` gives the bytes.

use crate::error::{Error, Result};
use haven_core::merge::{Field, ObjectState, Stamp};
use haven_core::{record, ObjectSchema, Schema, Value};
use haven_sync::protocol::SnapshotObject;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const SUFFIX_CONFIRMED: u8 = 1;
const SUFFIX_PENDING: u8 = 2;

/// What a record's sync suffix says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suffix<'a> {
    /// No suffix.
    None,
    /// The record is the confirmed state; these are its encoded stamps.
    Confirmed(&'a [u8]),
    /// Local changes up to this client version are pending on the object.
    Pending(u64),
}

impl<'a> Suffix<'a> {
    /// Reads the bytes after a record's values.
    pub(crate) fn read(rest: &'a [u8]) -> Result<Suffix<'a>> {
        match rest.split_first() {
            None => Ok(Suffix::None),
            Some((&SUFFIX_CONFIRMED, stamps)) => Ok(Suffix::Confirmed(stamps)),
            Some((&SUFFIX_PENDING, version)) => <[u8; 8]>::try_from(version)
                .map(|v| Suffix::Pending(u64::from_le_bytes(v)))
                .map_err(|_| Error::Storage("a record's pending mark is damaged".into())),
            Some((tag, _)) => Err(Error::Storage(format!("a record's sync suffix has an unknown tag {tag}"))),
        }
    }
}

/// Appends a pending mark for changes up to `client_version`.
pub(crate) fn push_pending(out: &mut Vec<u8>, client_version: u64) {
    out.push(SUFFIX_PENDING);
    out.extend_from_slice(&client_version.to_le_bytes());
}

/// The stamps of a record that is its object's confirmed state. Objects
/// written together share stamps, so each distinct stamp is stored once.
#[derive(Serialize, Deserialize)]
struct RecordStamps {
    deleted_at: Option<(u64, u64)>,
    stamps: Vec<Stamp>,
    /// By property position: 0 when the confirmed state has no such
    /// field, else 1 + the index of its stamp.
    by_position: Vec<u32>,
}

/// How a live confirmed state shows in a record of `ty`.
pub(crate) struct Rendered {
    /// The record's values, by property position.
    pub values: Vec<Value>,
    /// The confirmed suffix, when the values say exactly what the state
    /// says (then the record can hold the confirmed state).
    pub suffix: Option<Vec<u8>>,
}

/// Renders a live state as a record of `ty` whose primary key is `pk`:
/// each field coerced to its property; a field that does not fit, or a
/// required property the state lacks, shows as the property's fallback.
/// Fails only when the primary key does not fit the type.
pub(crate) fn render(
    schema: &Schema,
    ty: &ObjectSchema,
    pk: &Value,
    fields: &BTreeMap<String, Field>,
    element_state: bool,
    deleted_at: Option<(u64, u64)>,
) -> Result<Rendered> {
    let pk_index = ty.primary_key_index();
    let mut exact = true;
    let mut known = 0;
    let mut stamps: Vec<Stamp> = Vec::new();
    let mut by_position = Vec::with_capacity(ty.properties().len());
    let mut values = Vec::with_capacity(ty.properties().len());
    for (i, p) in ty.properties().iter().enumerate() {
        let field = fields.get(&p.name);
        let value = match field {
            _ if i == pk_index => schema.coerce(ty, p, pk.clone())?,
            Some(f) => match schema.coerce(ty, p, f.value.clone()) {
                Ok(v) => v,
                Err(_) => {
                    exact = false;
                    p.fallback_value()
                }
            },
            None => p.fallback_value(),
        };
        match field {
            Some(f) => {
                known += 1;
                exact &= value == f.value;
                by_position.push(stamp_number(&mut stamps, f.stamp));
            }
            None => by_position.push(0),
        }
        values.push(value);
    }
    // Fields this schema lacks (a newer app's) stay in the overlay, and so
    // do list element identities and set and dictionary entries, which a
    // record has no place for.
    exact &= known == fields.len() && !element_state;
    let suffix = match exact {
        true => Some(encode_stamps(RecordStamps { deleted_at, stamps, by_position })?),
        false => None,
    };
    Ok(Rendered { values, suffix })
}

/// The confirmed suffix of a record of `ty` whose values are exactly
/// `fields`' (the caller knows they are); `None` when a field is not a
/// property of `ty`.
#[cfg(feature = "sync")]
pub(crate) fn stamps_suffix(
    ty: &ObjectSchema,
    fields: &BTreeMap<String, Field>,
    deleted_at: Option<(u64, u64)>,
) -> Result<Option<Vec<u8>>> {
    let mut stamps: Vec<Stamp> = Vec::new();
    let mut by_position = vec![0u32; ty.properties().len()];
    for (name, field) in fields {
        let Some(i) = ty.property_index(name) else { return Ok(None) };
        by_position[i] = stamp_number(&mut stamps, field.stamp);
    }
    encode_stamps(RecordStamps { deleted_at, stamps, by_position }).map(Some)
}

/// 1 + the index of `stamp` in `stamps`, added if new.
fn stamp_number(stamps: &mut Vec<Stamp>, stamp: Stamp) -> u32 {
    let at = match stamps.iter().position(|s| *s == stamp) {
        Some(at) => at,
        None => {
            stamps.push(stamp);
            stamps.len() - 1
        }
    };
    at as u32 + 1
}

fn encode_stamps(stamps: RecordStamps) -> Result<Vec<u8>> {
    postcard::to_extend(&stamps, vec![SUFFIX_CONFIRMED])
        .map_err(|e| Error::Storage(format!("cannot encode a record's stamps: {e}")))
}

/// The confirmed state a record with a confirmed suffix holds.
pub(crate) fn state_of_record(ty: &ObjectSchema, values: Vec<Value>, stamps: &[u8]) -> Result<ObjectState> {
    let stamps: RecordStamps = postcard::from_bytes(stamps)
        .map_err(|e| Error::Storage(format!("{}: damaged record stamps: {e}", ty.name())))?;
    let mut fields = BTreeMap::new();
    for ((p, value), at) in ty.properties().iter().zip(values).zip(&stamps.by_position) {
        if *at == 0 {
            continue;
        }
        let stamp = *stamps
            .stamps
            .get(*at as usize - 1)
            .ok_or_else(|| Error::Storage(format!("{}: damaged record stamps", ty.name())))?;
        fields.insert(p.name.clone(), Field { value, stamp });
    }
    Ok(ObjectState::Live { fields, lists: BTreeMap::new(), keyed: BTreeMap::new(), deleted_at: stamps.deleted_at })
}

/// The confirmed state an encoded record holds, if it holds one.
pub(crate) fn state_in_record(ty: &ObjectSchema, bytes: &[u8]) -> Result<Option<ObjectState>> {
    let damaged = |e: record::CorruptRecord| Error::Storage(format!("{}: {e}", ty.name()));
    // Most records a write or a download meets carry no confirmed state:
    // their values are not decoded.
    match Suffix::read(record::after(bytes).map_err(damaged)?)? {
        Suffix::Confirmed(stamps) => {
            let (values, _) = record::decode_prefix(bytes).map_err(damaged)?;
            state_of_record(ty, values, stamps).map(Some)
        }
        Suffix::None | Suffix::Pending(_) => Ok(None),
    }
}

/// The overlay entry of one object, if it has one.
pub(crate) fn in_overlay(
    overlay: &impl ReadableTable<(&'static str, &'static [u8]), &'static [u8]>,
    ty: &str,
    pk_key: &[u8],
) -> Result<Option<ObjectState>> {
    match overlay.get((ty, pk_key))? {
        Some(g) => Ok(Some(decode_entry(g.value())?.1)),
        None => Ok(None),
    }
}

/// Writes (or, for `None`, removes) an object's overlay entry.
pub(crate) fn set_overlay(
    overlay: &mut redb::Table<(&'static str, &'static [u8]), &'static [u8]>,
    ty: &str,
    pk: &Value,
    pk_key: &[u8],
    state: Option<&ObjectState>,
) -> Result<()> {
    match state {
        Some(state) => {
            let bytes = SnapshotObject::encode_state(pk, state)
                .map_err(|e| Error::Storage(format!("cannot encode sync state: {e}")))?;
            overlay.insert((ty, pk_key), bytes.as_slice())?;
        }
        None => {
            overlay.remove((ty, pk_key))?;
        }
    }
    Ok(())
}

/// Decodes an overlay entry (the snapshot's encoding of `(pk, state)`).
pub(crate) fn decode_entry(bytes: &[u8]) -> Result<(Value, ObjectState)> {
    SnapshotObject::decode_state(bytes).map_err(|e| Error::Storage(format!("damaged sync state: {e}")))
}

/// The confirmed state of one object, as a read view sees it.
#[cfg(feature = "sync")]
pub(crate) fn read(
    rtx: &redb::ReadTransaction,
    ty: Option<&ObjectSchema>,
    name: &str,
    pk_key: &[u8],
    record: Option<&[u8]>,
) -> Result<Option<ObjectState>> {
    match rtx.open_table(crate::layout::CONFIRMED) {
        Ok(overlay) => {
            if let Some(state) = in_overlay(&overlay, name, pk_key)? {
                return Ok(Some(state));
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(e.into()),
    }
    match (ty, record) {
        (Some(ty), Some(bytes)) => state_in_record(ty, bytes),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_core::merge::Hlc;
    use haven_core::PropertyType;

    fn dog() -> Schema {
        Schema::new(vec![ObjectSchema::new("Dog")
            .primary_key("_id", PropertyType::Int)
            .property("name", PropertyType::String)
            .optional("age", PropertyType::Int)])
        .unwrap()
    }

    fn stamp(version: u64) -> Stamp {
        Stamp { version, hlc: Hlc { millis: 10 * version, counter: 0 }, replica: 7 }
    }

    fn field(value: impl Into<Value>, version: u64) -> Field {
        Field { value: value.into(), stamp: stamp(version) }
    }

    #[test]
    fn a_state_the_schema_shows_exactly_round_trips_through_the_record() {
        let schema = dog();
        let ty = schema.object_type("Dog").unwrap();
        let fields: BTreeMap<String, Field> =
            [("_id".into(), field(1, 3)), ("name".into(), field("Rex", 3)), ("age".into(), field(4, 5))].into();
        let rendered = render(&schema, ty, &Value::Int(1), &fields, false, Some((2, 9))).unwrap();
        let suffix = rendered.suffix.expect("exact");
        let mut bytes = Vec::new();
        record::encode(&rendered.values, &mut bytes);
        bytes.extend_from_slice(&suffix);
        let state = state_in_record(ty, &bytes).unwrap().unwrap();
        assert_eq!(
            state,
            ObjectState::Live { fields, lists: BTreeMap::new(), keyed: BTreeMap::new(), deleted_at: Some((2, 9)) }
        );
    }

    #[test]
    fn a_field_the_state_lacks_stays_absent() {
        let schema = dog();
        let ty = schema.object_type("Dog").unwrap();
        let fields: BTreeMap<String, Field> = [("_id".into(), field(1, 3)), ("name".into(), field("Rex", 3))].into();
        let rendered = render(&schema, ty, &Value::Int(1), &fields, false, None).unwrap();
        assert_eq!(rendered.values[2], Value::Null);
        let (values, stamps) = (rendered.values, rendered.suffix.unwrap());
        let state = state_of_record(ty, values, &stamps[1..]).unwrap();
        assert_eq!(
            state,
            ObjectState::Live { fields, lists: BTreeMap::new(), keyed: BTreeMap::new(), deleted_at: None }
        );
    }

    #[test]
    fn a_field_the_schema_lacks_or_shows_differently_keeps_the_state_out_of_the_record() {
        let schema = dog();
        let ty = schema.object_type("Dog").unwrap();
        let unknown: BTreeMap<String, Field> =
            [("_id".into(), field(1, 3)), ("name".into(), field("Rex", 3)), ("color".into(), field("red", 3))].into();
        assert!(render(&schema, ty, &Value::Int(1), &unknown, false, None).unwrap().suffix.is_none());
        let wrong_type: BTreeMap<String, Field> = [("_id".into(), field(1, 3)), ("name".into(), field(5, 3))].into();
        let rendered = render(&schema, ty, &Value::Int(1), &wrong_type, false, None).unwrap();
        assert!(rendered.suffix.is_none());
        assert_eq!(rendered.values[1], Value::String(String::new()), "the property's fallback shows");
    }

    #[test]
    fn suffixes_read_back_and_an_unknown_tag_is_an_error() {
        let mut bytes = Vec::new();
        push_pending(&mut bytes, 42);
        assert_eq!(Suffix::read(&bytes).unwrap(), Suffix::Pending(42));
        assert_eq!(Suffix::read(&[]).unwrap(), Suffix::None);
        assert!(Suffix::read(&[9, 1]).is_err());
        assert!(Suffix::read(&[SUFFIX_PENDING, 1]).is_err());
    }
}
