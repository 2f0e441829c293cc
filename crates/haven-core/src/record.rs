//! The record encoding: how an object's values are stored.
//!
//! A record is a varint field count followed by the values in the type's
//! storage order, each a tag byte and a payload. Readers can reach one field
//! by skipping the ones before it without allocating, which is what makes
//! unindexed scans cheap (`docs/storage.md`). A record shorter than the
//! schema (written before a property was added) reads the missing fields as
//! the property's default.

use crate::value::{Value, ValueRef};

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const DOUBLE: u8 = 4;
const STRING: u8 = 5;
const DATA: u8 = 6;
const DATE: u8 = 7;
const OBJECT_ID: u8 = 8;
const UUID: u8 = 9;
const LIST: u8 = 10;
const SET: u8 = 11;
const DICTIONARY: u8 = 12;
const DECIMAL128: u8 = 13;

/// A record that cannot be decoded: the file is damaged or was not written
/// by Haven.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("corrupt record: {0}")]
pub struct CorruptRecord(&'static str);

/// Encodes `values` as a record, appending to `out`.
pub fn encode(values: &[Value], out: &mut Vec<u8>) {
    put_varint(out, values.len() as u64);
    for v in values {
        encode_value(v, out);
    }
}

/// Encodes one value as it appears inside a record: the bytes that name a
/// set's element.
pub fn encode_one(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
        Value::Int(i) => {
            out.push(INT);
            put_varint(out, zigzag(*i));
        }
        Value::Double(d) => {
            out.push(DOUBLE);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Value::String(s) => put_bytes(out, STRING, s.as_bytes()),
        Value::Data(d) => put_bytes(out, DATA, d),
        Value::Date(i) => {
            out.push(DATE);
            put_varint(out, zigzag(*i));
        }
        Value::ObjectId(o) => {
            out.push(OBJECT_ID);
            out.extend_from_slice(o);
        }
        Value::Uuid(u) => {
            out.push(UUID);
            out.extend_from_slice(u);
        }
        Value::Decimal128(d) => {
            out.push(DECIMAL128);
            out.extend_from_slice(&d.to_bytes());
        }
        Value::List(items) => encode_elements(LIST, items, out),
        Value::Set(items) => encode_elements(SET, items, out),
        Value::Dictionary(entries) => {
            out.push(DICTIONARY);
            let mut body = Vec::new();
            for (key, value) in entries {
                put_varint(&mut body, key.len() as u64);
                body.extend_from_slice(key.as_bytes());
                encode_value(value, &mut body);
            }
            put_varint(out, entries.len() as u64);
            put_varint(out, body.len() as u64);
            out.extend_from_slice(&body);
        }
    }
}

/// A list or set: tag, element count, body length, elements.
fn encode_elements(tag: u8, items: &[Value], out: &mut Vec<u8>) {
    out.push(tag);
    let mut body = Vec::new();
    for item in items {
        encode_value(item, &mut body);
    }
    put_varint(out, items.len() as u64);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(&body);
}

/// Decodes every field of a record (bytes after it are ignored).
pub fn decode(bytes: &[u8]) -> Result<Vec<Value>, CorruptRecord> {
    decode_prefix(bytes).map(|(values, _)| values)
}

/// Decodes the record at the start of `bytes`; returns its fields and the
/// bytes that follow it (where a store may keep more about the object).
///
/// ```
/// use haven_core::{record, Value};
/// let mut bytes = Vec::new();
/// record::encode(&[Value::Int(1)], &mut bytes);
/// bytes.push(0xff);
/// assert_eq!(record::decode_prefix(&bytes).unwrap(), (vec![Value::Int(1)], &[0xff][..]));
/// ```
pub fn decode_prefix(bytes: &[u8]) -> Result<(Vec<Value>, &[u8]), CorruptRecord> {
    let mut r = Reader { bytes, pos: 0 };
    let n = r.varint()? as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(r.value()?.to_owned());
    }
    Ok((out, &bytes[r.pos..]))
}

/// The bytes after the record at the start of `bytes`, found without
/// decoding its fields.
pub fn after(bytes: &[u8]) -> Result<&[u8], CorruptRecord> {
    let mut r = Reader { bytes, pos: 0 };
    for _ in 0..r.varint()? {
        r.skip()?;
    }
    Ok(&bytes[r.pos..])
}

/// Reads field `index` without decoding the others; `Ok(None)` when the
/// record has fewer fields.
pub fn field(bytes: &[u8], index: usize) -> Result<Option<ValueRef<'_>>, CorruptRecord> {
    let mut r = Reader { bytes, pos: 0 };
    let n = r.varint()? as usize;
    if index >= n {
        return Ok(None);
    }
    for _ in 0..index {
        r.skip()?;
    }
    r.value().map(Some)
}

/// Writes to `out` the record at the start of `bytes` with list field
/// `field` changed: the `remove` elements from index `at` replaced by
/// `insert`. The other fields, and the list's other elements, are copied
/// as bytes, not decoded: a list operation costs a copy of the record,
/// not a decode and an encode of every element. Bytes after the record
/// are not copied.
///
/// ```
/// use haven_core::{record, Value};
/// let mut bytes = Vec::new();
/// record::encode(&[Value::Int(1), Value::List(vec![1.into(), 2.into(), 3.into()])], &mut bytes);
/// let mut out = Vec::new();
/// record::splice_list(&bytes, 1, 1, 1, &[Value::Int(9), Value::Int(8)], &mut out).unwrap();
/// assert_eq!(record::decode(&out).unwrap()[1], Value::List(vec![1.into(), 9.into(), 8.into(), 3.into()]));
/// ```
pub fn splice_list(
    bytes: &[u8],
    field: usize,
    at: usize,
    remove: usize,
    insert: &[Value],
    out: &mut Vec<u8>,
) -> Result<(), CorruptRecord> {
    let mut r = Reader { bytes, pos: 0 };
    let count = r.varint()? as usize;
    if field >= count {
        return Err(CorruptRecord("no such field"));
    }
    for _ in 0..field {
        r.skip()?;
    }
    let start = r.pos;
    if r.byte()? != LIST {
        return Err(CorruptRecord("not a list"));
    }
    let len = r.varint()? as usize;
    let body = r.len_prefixed()?;
    let end = r.pos;
    for _ in field + 1..count {
        r.skip()?;
    }
    let record_end = r.pos;
    let kept = at.checked_add(remove).filter(|k| *k <= len).ok_or(CorruptRecord("list index out of range"))?;
    let mut elements = Reader { bytes: body, pos: 0 };
    for _ in 0..at {
        elements.skip()?;
    }
    let cut = elements.pos;
    for _ in at..kept {
        elements.skip()?;
    }
    let resume = elements.pos;
    let mut inserted = Vec::new();
    insert.iter().for_each(|v| encode_value(v, &mut inserted));
    out.extend_from_slice(&bytes[..start]);
    out.push(LIST);
    put_varint(out, (len - remove + insert.len()) as u64);
    put_varint(out, (body.len() - (resume - cut) + inserted.len()) as u64);
    out.extend_from_slice(&body[..cut]);
    out.extend_from_slice(&inserted);
    out.extend_from_slice(&body[resume..]);
    out.extend_from_slice(&bytes[end..record_end]);
    Ok(())
}

/// An encoded dictionary inside a record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DictionaryRef<'a> {
    len: usize,
    body: &'a [u8],
}

impl<'a> DictionaryRef<'a> {
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when the dictionary has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in key order. A damaged entry ends the iteration.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, ValueRef<'a>)> + 'a {
        let mut r = Reader { bytes: self.body, pos: 0 };
        (0..self.len).map_while(move |_| r.entry().ok())
    }

    /// The value at `key`, if the dictionary has it.
    pub fn get(&self, key: &str) -> Option<ValueRef<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// An encoded list (or set) inside a record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListRef<'a> {
    len: usize,
    body: &'a [u8],
}

impl<'a> ListRef<'a> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when the list has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements. A damaged element ends the iteration.
    pub fn iter(&self) -> impl Iterator<Item = ValueRef<'a>> + 'a {
        let mut r = Reader { bytes: self.body, pos: 0 };
        (0..self.len).map_while(move |_| r.value().ok())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, CorruptRecord> {
        let b = *self.bytes.get(self.pos).ok_or(CorruptRecord("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or(CorruptRecord("truncated"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, CorruptRecord> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CorruptRecord("varint too long"))
    }

    fn len_prefixed(&mut self) -> Result<&'a [u8], CorruptRecord> {
        let n = self.varint()? as usize;
        self.take(n)
    }

    fn value(&mut self) -> Result<ValueRef<'a>, CorruptRecord> {
        Ok(match self.byte()? {
            NULL => ValueRef::Null,
            FALSE => ValueRef::Bool(false),
            TRUE => ValueRef::Bool(true),
            INT => ValueRef::Int(unzigzag(self.varint()?)),
            DOUBLE => ValueRef::Double(f64::from_le_bytes(self.take(8)?.try_into().unwrap())),
            STRING => {
                ValueRef::String(std::str::from_utf8(self.len_prefixed()?).map_err(|_| CorruptRecord("invalid UTF-8"))?)
            }
            DATA => ValueRef::Data(self.len_prefixed()?),
            DATE => ValueRef::Date(unzigzag(self.varint()?)),
            OBJECT_ID => ValueRef::ObjectId(self.take(12)?.try_into().unwrap()),
            UUID => ValueRef::Uuid(self.take(16)?.try_into().unwrap()),
            DECIMAL128 => ValueRef::Decimal128(
                crate::Decimal128::from_bytes(self.take(16)?.try_into().unwrap())
                    .ok_or(CorruptRecord("not a finite decimal128"))?,
            ),
            LIST => {
                let len = self.varint()? as usize;
                ValueRef::List(ListRef { len, body: self.len_prefixed()? })
            }
            SET => {
                let len = self.varint()? as usize;
                ValueRef::Set(ListRef { len, body: self.len_prefixed()? })
            }
            DICTIONARY => {
                let len = self.varint()? as usize;
                ValueRef::Dictionary(DictionaryRef { len, body: self.len_prefixed()? })
            }
            _ => return Err(CorruptRecord("unknown value tag")),
        })
    }

    fn entry(&mut self) -> Result<(&'a str, ValueRef<'a>), CorruptRecord> {
        let key = std::str::from_utf8(self.len_prefixed()?).map_err(|_| CorruptRecord("invalid UTF-8"))?;
        Ok((key, self.value()?))
    }

    fn skip(&mut self) -> Result<(), CorruptRecord> {
        match self.byte()? {
            NULL | FALSE | TRUE => {}
            INT | DATE => {
                self.varint()?;
            }
            DOUBLE => {
                self.take(8)?;
            }
            STRING | DATA => {
                self.len_prefixed()?;
            }
            OBJECT_ID => {
                self.take(12)?;
            }
            UUID | DECIMAL128 => {
                self.take(16)?;
            }
            LIST | SET | DICTIONARY => {
                self.varint()?;
                self.len_prefixed()?;
            }
            _ => return Err(CorruptRecord("unknown value tag")),
        }
        Ok(())
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn any_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_filter("NaN is not equal to itself", |d| !d.is_nan()).prop_map(Value::Double),
            ".*".prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Data),
            any::<i64>().prop_map(Value::Date),
            any::<[u8; 12]>().prop_map(Value::ObjectId),
            any::<[u8; 16]>().prop_map(Value::Uuid),
            (any::<bool>(), 0u64..u64::MAX, -20i32..20).prop_map(|(neg, c, e)| {
                let text = format!("{}{c}E{e}", if neg { "-" } else { "" });
                Value::Decimal128(text.parse().unwrap())
            }),
        ]
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any_scalar(),
            proptest::collection::vec(any_scalar(), 0..5).prop_map(Value::List),
            proptest::collection::vec(any_scalar(), 0..5).prop_map(Value::Set),
            proptest::collection::btree_map(".*", any_scalar(), 0..5).prop_map(Value::Dictionary),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(values in proptest::collection::vec(any_value(), 0..12)) {
            let mut buf = Vec::new();
            encode(&values, &mut buf);
            prop_assert_eq!(decode(&buf).unwrap(), values.clone());
            for (i, v) in values.iter().enumerate() {
                prop_assert_eq!(field(&buf, i).unwrap().unwrap().to_owned(), v.clone());
            }
            prop_assert_eq!(field(&buf, values.len()).unwrap(), None);
        }

        #[test]
        fn splicing_a_list_is_decoding_splicing_and_encoding(
            before in proptest::collection::vec(any_scalar(), 0..3),
            list in proptest::collection::vec(any_scalar(), 0..8),
            after in proptest::collection::vec(any_scalar(), 0..3),
            at in 0usize..10,
            remove in 0usize..4,
            insert in proptest::collection::vec(any_scalar(), 0..3),
        ) {
            let mut values = before.clone();
            values.push(Value::List(list.clone()));
            values.extend(after);
            let mut bytes = Vec::new();
            encode(&values, &mut bytes);
            bytes.push(0xff); // what follows a record is not copied
            let mut out = Vec::new();
            let spliced = splice_list(&bytes, before.len(), at, remove, &insert, &mut out);
            if at + remove > list.len() {
                prop_assert!(spliced.is_err());
            } else {
                spliced.unwrap();
                let mut expected = list.clone();
                expected.splice(at..at + remove, insert);
                values[before.len()] = Value::List(expected);
                let mut encoded = Vec::new();
                encode(&values, &mut encoded);
                prop_assert_eq!(out, encoded);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
            let _ = field(&bytes, 3);
        }
    }
}
