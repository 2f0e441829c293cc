//! Order-preserving key encoding for primary keys and index entries.
//!
//! `encode(a) < encode(b)` (as bytes) exactly when `a < b`, and an encoded
//! value is never a prefix of another encoded value of the same kind, so an
//! index key `encode(value) ++ encode(pk)` sorts by value, then pk, and every
//! entry for one value lies in `[encode(v), successor(encode(v)))`.

use crate::value::ValueRef;

const NULL: u8 = 0x01;
const FALSE: u8 = 0x02;
const TRUE: u8 = 0x03;
const NUMBER: u8 = 0x04;
const DOUBLE: u8 = 0x05;
const STRING: u8 = 0x06;
const DATA: u8 = 0x07;
const OBJECT_ID: u8 = 0x08;
const UUID: u8 = 0x09;

/// Appends the order-preserving encoding of `v` (not a collection) to `out`.
pub fn encode(v: ValueRef<'_>, out: &mut Vec<u8>) {
    match v {
        ValueRef::Null => out.push(NULL),
        ValueRef::Bool(b) => out.push(if b { TRUE } else { FALSE }),
        ValueRef::Int(i) | ValueRef::Date(i) => {
            out.push(NUMBER);
            out.extend_from_slice(&((i as u64) ^ (1 << 63)).to_be_bytes());
        }
        ValueRef::Double(d) => {
            out.push(DOUBLE);
            let bits = d.to_bits();
            let ordered = if bits >> 63 == 1 { !bits } else { bits ^ (1 << 63) };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        ValueRef::String(s) => escaped(out, STRING, s.as_bytes()),
        ValueRef::Data(d) => escaped(out, DATA, d),
        ValueRef::ObjectId(o) => {
            out.push(OBJECT_ID);
            out.extend_from_slice(o);
        }
        ValueRef::Uuid(u) => {
            out.push(UUID);
            out.extend_from_slice(u);
        }
        ValueRef::List(_) | ValueRef::Set(_) | ValueRef::Dictionary(_) | ValueRef::Decimal128(_) => {
            unreachable!("collections and decimals are never keys: the schema forbids indexing them")
        }
    }
}

/// The encoding of `v` as a new vector.
pub fn to_key(v: ValueRef<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode(v, &mut out);
    out
}

/// The first byte of the smallest key of `first`'s kind, and the first
/// byte past that kind: every key of one kind lies in `[start, end)`.
/// (The two booleans are one kind with two first bytes.)
pub fn kind_range(first: u8) -> (u8, u8) {
    match first {
        FALSE | TRUE => (FALSE, TRUE + 1),
        b => (b, b + 1),
    }
}

/// The encoded string prefix: every string starting with `prefix` has a
/// key starting with these bytes.
pub fn string_prefix(prefix: &str) -> Vec<u8> {
    let mut out = vec![STRING];
    escape_into(&mut out, prefix.as_bytes());
    out
}

/// The smallest byte string greater than every string that starts with
/// `prefix`; `None` when there is none (all bytes 0xff).
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// The length of the first encoded value in `key`, so that an index key
/// can be split into its value and primary key parts.
pub fn first_len(key: &[u8]) -> usize {
    match key.first() {
        Some(&NUMBER) | Some(&DOUBLE) => 9,
        Some(&OBJECT_ID) => 13,
        Some(&UUID) => 17,
        Some(&STRING) | Some(&DATA) => {
            let mut i = 1;
            while i + 1 < key.len() {
                if key[i] == 0 {
                    if key[i + 1] == 0 {
                        return i + 2;
                    }
                    i += 2;
                } else {
                    i += 1;
                }
            }
            key.len()
        }
        _ => 1.min(key.len()),
    }
}

/// Decodes a key made by [`encode`] back to a value.
pub fn decode(key: &[u8]) -> Option<crate::Value> {
    use crate::Value;
    let body = key.get(1..)?;
    Some(match *key.first()? {
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        NUMBER => Value::Int((u64::from_be_bytes(body.get(..8)?.try_into().ok()?) ^ (1 << 63)) as i64),
        DOUBLE => {
            let o = u64::from_be_bytes(body.get(..8)?.try_into().ok()?);
            Value::Double(f64::from_bits(if o >> 63 == 1 { o ^ (1 << 63) } else { !o }))
        }
        STRING => Value::String(String::from_utf8(unescape(body)).ok()?),
        DATA => Value::Data(unescape(body)),
        OBJECT_ID => Value::ObjectId(body.get(..12)?.try_into().ok()?),
        UUID => Value::Uuid(body.get(..16)?.try_into().ok()?),
        _ => return None,
    })
}

// 0x00 inside the bytes becomes 0x00 0xff; the end is 0x00 0x00, which sorts
// below any continuation, so shorter strings sort first.
fn escaped(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    escape_into(out, bytes);
    out.extend_from_slice(&[0, 0]);
}

fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
}

fn unescape(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == 0 {
            if body.get(i + 1) == Some(&0) {
                break;
            }
            out.push(0);
            i += 2;
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;
    use proptest::prelude::*;

    fn same_kind_pair() -> impl Strategy<Value = (Value, Value)> {
        prop_oneof![
            (any::<i64>(), any::<i64>()).prop_map(|(a, b)| (Value::Int(a), Value::Int(b))),
            (any::<f64>(), any::<f64>())
                .prop_filter("ordered (zeros are normalised before encoding)", |(a, b)| !(a.is_nan()
                    || b.is_nan()
                    || *a == 0.0 && *b == 0.0))
                .prop_map(|(a, b)| (Value::Double(a), Value::Double(b))),
            ("\\PC*", "\\PC*").prop_map(|(a, b)| (Value::String(a), Value::String(b))),
            (proptest::collection::vec(0u8..3, 0..6), proptest::collection::vec(0u8..3, 0..6))
                .prop_map(|(a, b)| (Value::Data(a), Value::Data(b))),
        ]
    }

    proptest! {
        #[test]
        fn order_is_preserved((a, b) in same_kind_pair()) {
            let (ka, kb) = (to_key(a.as_ref().unwrap()), to_key(b.as_ref().unwrap()));
            prop_assert_eq!(ka.cmp(&kb), a.as_ref().unwrap().compare(&b.as_ref().unwrap()).unwrap());
            prop_assert_eq!(decode(&ka), Some(a.clone()));
            prop_assert_eq!(first_len(&[ka.clone(), kb.clone()].concat()), ka.len());
        }
    }

    #[test]
    fn prefix_and_successor() {
        let k = to_key(ValueRef::String("dog 95"));
        let p = string_prefix("dog 9");
        assert!(k.starts_with(&p));
        assert!(k < successor(&p).unwrap());
        assert!(to_key(ValueRef::String("dog :")) >= successor(&p).unwrap());
        assert_eq!(successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(successor(&[0xff]), None);
    }
}
