//! Values: what a property holds, owned ([`Value`]) or borrowed from an
//! encoded record ([`ValueRef`]).

use crate::decimal::Decimal128;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// A property value.
///
/// A link holds the primary key of its target; a list or a set holds its
/// elements, a dictionary its entries. `Date` is milliseconds since the
/// Unix epoch.
///
/// ```
/// use haven_core::Value;
/// let v: Value = 3.into();
/// assert_eq!(v, Value::Int(3));
/// assert_eq!(Value::from("Rex").as_str(), Some("Rex"));
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "wire::WireValue")]
pub enum Value {
    /// No value (an optional property that is not set, or a link whose target is gone).
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// A UTF-8 string.
    String(String),
    /// Raw bytes.
    Data(Vec<u8>),
    /// A timestamp in milliseconds since the Unix epoch.
    Date(i64),
    /// A 12-byte MongoDB-style object id.
    ObjectId([u8; 12]),
    /// A 16-byte UUID.
    Uuid([u8; 16]),
    /// The elements of a list property.
    List(Vec<Value>),
    /// The elements of a set property: distinct, in [`canonical_set`] order.
    Set(Vec<Value>),
    /// The entries of a dictionary property, by key.
    Dictionary(BTreeMap<String, Value>),
    /// A decimal number, exactly as written (`12.50`).
    Decimal128(Decimal128),
}

/// A value borrowed from an encoded record; lists stay encoded until asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// See [`Value::Null`].
    Null,
    /// See [`Value::Bool`].
    Bool(bool),
    /// See [`Value::Int`].
    Int(i64),
    /// See [`Value::Double`].
    Double(f64),
    /// See [`Value::String`].
    String(&'a str),
    /// See [`Value::Data`].
    Data(&'a [u8]),
    /// See [`Value::Date`].
    Date(i64),
    /// See [`Value::ObjectId`].
    ObjectId(&'a [u8; 12]),
    /// See [`Value::Uuid`].
    Uuid(&'a [u8; 16]),
    /// An encoded list: its element count and encoded elements.
    List(crate::record::ListRef<'a>),
    /// An encoded set, read like a list.
    Set(crate::record::ListRef<'a>),
    /// An encoded dictionary.
    Dictionary(crate::record::DictionaryRef<'a>),
    /// See [`Value::Decimal128`].
    Decimal128(Decimal128),
}

impl Value {
    /// Borrows this value as a [`ValueRef`] (collections are not
    /// borrowable: they return `None`).
    pub fn as_ref(&self) -> Option<ValueRef<'_>> {
        Some(match self {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Double(d) => ValueRef::Double(*d),
            Value::String(s) => ValueRef::String(s),
            Value::Data(d) => ValueRef::Data(d),
            Value::Date(d) => ValueRef::Date(*d),
            Value::ObjectId(o) => ValueRef::ObjectId(o),
            Value::Uuid(u) => ValueRef::Uuid(u),
            Value::Decimal128(d) => ValueRef::Decimal128(*d),
            Value::List(_) | Value::Set(_) | Value::Dictionary(_) => return None,
        })
    }

    /// `true` for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer, if this is an `Int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The float, if this is a `Double`.
    pub fn as_double(&self) -> Option<f64> {
        match self {
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// The string, if this is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements, if this is a `List`.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The elements, if this is a `Set`.
    pub fn as_set(&self) -> Option<&[Value]> {
        match self {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, if this is a `Dictionary`.
    pub fn as_dictionary(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Dictionary(d) => Some(d),
            _ => None,
        }
    }

    /// A short name of this value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Data(_) => "data",
            Value::Date(_) => "date",
            Value::ObjectId(_) => "objectId",
            Value::Uuid(_) => "uuid",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Dictionary(_) => "dictionary",
            Value::Decimal128(_) => "decimal128",
        }
    }

    /// The value as JSON: dates as milliseconds, object ids as 24 hex digits,
    /// UUIDs in their hyphenated form, data as an array of bytes, lists and
    /// sets as arrays, dictionaries as objects, decimals as strings
    /// (`"12.50"`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) | Value::Date(i) => J::from(*i),
            Value::Double(d) => J::from(*d),
            Value::String(s) => J::String(s.clone()),
            Value::Data(d) => J::Array(d.iter().map(|b| J::from(*b)).collect()),
            Value::ObjectId(o) => J::String(hex(o)),
            Value::Uuid(u) => J::String(uuid_string(u)),
            Value::List(l) | Value::Set(l) => J::Array(l.iter().map(Value::to_json).collect()),
            Value::Dictionary(d) => J::Object(d.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::Decimal128(d) => J::String(d.to_string()),
        }
    }
}

impl<'a> ValueRef<'a> {
    /// Copies the value out of the record.
    pub fn to_owned(&self) -> Value {
        match *self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Double(d) => Value::Double(d),
            ValueRef::String(s) => Value::String(s.to_owned()),
            ValueRef::Data(d) => Value::Data(d.to_vec()),
            ValueRef::Date(d) => Value::Date(d),
            ValueRef::ObjectId(o) => Value::ObjectId(*o),
            ValueRef::Uuid(u) => Value::Uuid(*u),
            ValueRef::List(l) => Value::List(l.iter().map(|v| v.to_owned()).collect()),
            ValueRef::Set(l) => Value::Set(l.iter().map(|v| v.to_owned()).collect()),
            ValueRef::Dictionary(d) => Value::Dictionary(d.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()),
            ValueRef::Decimal128(d) => Value::Decimal128(d),
        }
    }

    /// Compares two values of the same kind; `None` when they cannot be
    /// ordered (different kinds, lists, NaN). `Null` sorts before everything.
    /// Ints and doubles compare numerically.
    pub fn compare(&self, other: &ValueRef<'_>) -> Option<Ordering> {
        use ValueRef as V;
        match (self, other) {
            (V::Null, V::Null) => Some(Ordering::Equal),
            (V::Null, _) => Some(Ordering::Less),
            (_, V::Null) => Some(Ordering::Greater),
            (V::Bool(a), V::Bool(b)) => Some(a.cmp(b)),
            (V::Int(a), V::Int(b)) | (V::Date(a), V::Date(b)) => Some(a.cmp(b)),
            (V::Double(a), V::Double(b)) => a.partial_cmp(b),
            (V::Int(a), V::Double(b)) => (*a as f64).partial_cmp(b),
            (V::Double(a), V::Int(b)) => a.partial_cmp(&(*b as f64)),
            (V::String(a), V::String(b)) => Some(a.cmp(b)),
            (V::Data(a), V::Data(b)) => Some(a.cmp(b)),
            (V::ObjectId(a), V::ObjectId(b)) => Some(a.cmp(b)),
            (V::Uuid(a), V::Uuid(b)) => Some(a.cmp(b)),
            (V::Decimal128(a), V::Decimal128(b)) => Some(a.numeric_cmp(b)),
            _ => None,
        }
    }
}

/// A set's elements in the one order every replica keeps them in: each
/// value once, as [`sort_order`] orders them, and values that still
/// compare equal (`1` and `1.0` in a mixed set) by their encoding.
///
/// ```
/// use haven_core::{canonical_set, Value};
/// let set = canonical_set(vec!["b".into(), 2.into(), "a".into(), "b".into()]);
/// assert_eq!(set, vec![Value::from(2), Value::from("a"), Value::from("b")]);
/// ```
pub fn canonical_set(values: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let by_encoding: BTreeMap<Vec<u8>, Value> =
        values.into_iter().map(|v| (crate::record::encode_one(&v), v)).collect();
    let mut set: Vec<(Vec<u8>, Value)> = by_encoding.into_iter().collect();
    set.sort_by(|(ea, a), (eb, b)| sort_order(a, b).then_with(|| ea.cmp(eb)));
    set.into_iter().map(|(_, v)| v).collect()
}

/// The rank of a value's kind in [`sort_order`]; ints and doubles share one.
fn kind_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Double(_) => 2,
        Value::String(_) => 3,
        Value::Data(_) => 4,
        Value::Date(_) => 5,
        Value::ObjectId(_) => 6,
        Value::Uuid(_) => 7,
        Value::Decimal128(_) => 8,
        Value::List(_) | Value::Set(_) | Value::Dictionary(_) => 9,
    }
}

/// Orders values for sorting, a total order: by kind first (null, bool,
/// numbers, string, data, date, objectId, uuid, decimal128), then as
/// [`ValueRef::compare`] orders values of one kind (ints and doubles
/// numerically). Values it cannot tell apart (collections) are equal.
pub fn sort_order(a: &Value, b: &Value) -> Ordering {
    let within_kind = || match (a.as_ref(), b.as_ref()) {
        (Some(a), Some(b)) => a.compare(&b).unwrap_or(Ordering::Equal),
        _ => Ordering::Equal,
    };
    kind_rank(a).cmp(&kind_rank(b)).then_with(within_kind)
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "{s:?}"),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn uuid_string(u: &[u8; 16]) -> String {
    let h = hex(u);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Parses hex digits (hyphens ignored) into exactly `N` bytes.
pub(crate) fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Int(v as i64) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Double(v as f64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<Value>> From<std::collections::BTreeSet<T>> for Value {
    fn from(v: std::collections::BTreeSet<T>) -> Self {
        Value::Set(canonical_set(v.into_iter().map(Into::into)))
    }
}
impl<K: Into<String>, T: Into<Value>> From<BTreeMap<K, T>> for Value {
    fn from(v: BTreeMap<K, T>) -> Self {
        Value::Dictionary(v.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// How a [`Value`] is read from serde (the sync protocol, stored states).
///
/// The same variants in the same order as [`Value`], with one difference:
/// a collection's elements and values cannot be collections, but for
/// dictionaries of single values (embedded objects in a list). No property holds deeper
/// nesting, and reading it would recurse once per level: a hostile frame
/// of nested one-element lists (two bytes a level) would overflow the
/// server's stack.
mod wire {
    use std::collections::BTreeMap;

    #[derive(serde::Deserialize)]
    #[serde(rename = "Value")]
    pub(super) enum Wire<L, D> {
        Null,
        Bool(bool),
        Int(i64),
        Double(f64),
        String(String),
        Data(Vec<u8>),
        Date(i64),
        ObjectId([u8; 12]),
        Uuid([u8; 16]),
        List(L),
        Set(L),
        Dictionary(D),
        Decimal128(crate::decimal::Decimal128),
    }

    /// A single value: never a collection.
    type Scalar = Wire<Nested, Nested>;

    /// A value inside a collection: a single value, or a dictionary of
    /// single values (an embedded object in a list).
    type Element = Wire<Nested, BTreeMap<String, Scalar>>;

    /// A value as read: collections of elements that are not collections.
    pub(super) type WireValue = Wire<Vec<Element>, BTreeMap<String, Element>>;

    /// What a collection inside a collection reads as: an error.
    pub(super) enum Nested {}

    impl<'de> serde::Deserialize<'de> for Nested {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Nested, D::Error> {
            Err(serde::de::Error::custom("a collection inside a collection (elements are single values)"))
        }
    }

    impl Scalar {
        fn into_scalar(self) -> super::Value {
            self.into_value(|never| match never {}, |never| match never {}, |never| match never {})
        }
    }

    impl Element {
        fn into_element(self) -> super::Value {
            self.into_value(
                |never| match never {},
                |never| match never {},
                |fields| super::Value::Dictionary(fields.into_iter().map(|(k, v)| (k, v.into_scalar())).collect()),
            )
        }
    }

    impl<L, D> Wire<L, D> {
        fn into_value(
            self,
            list: impl FnOnce(L) -> super::Value,
            set: impl FnOnce(L) -> super::Value,
            dictionary: impl FnOnce(D) -> super::Value,
        ) -> super::Value {
            use super::Value as V;
            match self {
                Wire::Null => V::Null,
                Wire::Bool(b) => V::Bool(b),
                Wire::Int(i) => V::Int(i),
                Wire::Double(d) => V::Double(d),
                Wire::String(s) => V::String(s),
                Wire::Data(d) => V::Data(d),
                Wire::Date(d) => V::Date(d),
                Wire::ObjectId(o) => V::ObjectId(o),
                Wire::Uuid(u) => V::Uuid(u),
                Wire::List(l) => list(l),
                Wire::Set(l) => set(l),
                Wire::Dictionary(d) => dictionary(d),
                Wire::Decimal128(d) => V::Decimal128(d),
            }
        }
    }

    impl From<WireValue> for super::Value {
        fn from(value: WireValue) -> super::Value {
            use super::Value as V;
            let elements = |items: Vec<Element>| items.into_iter().map(Element::into_element).collect();
            value.into_value(
                |items| V::List(elements(items)),
                |items| V::Set(elements(items)),
                |entries| V::Dictionary(entries.into_iter().map(|(k, v)| (k, v.into_element())).collect()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms() {
        let oid = parse_hex::<12>("5f1b2c3d4e5f6a7b8c9d0e1f").unwrap();
        assert_eq!(Value::ObjectId(oid).to_json(), "5f1b2c3d4e5f6a7b8c9d0e1f");
        let u = parse_hex::<16>("123e4567-e89b-12d3-a456-426614174000").unwrap();
        assert_eq!(Value::Uuid(u).to_json(), "123e4567-e89b-12d3-a456-426614174000");
        assert_eq!(parse_hex::<12>("zz"), None);
    }

    #[test]
    fn numeric_compare_across_int_and_double() {
        assert_eq!(ValueRef::Int(2).compare(&ValueRef::Double(2.5)), Some(Ordering::Less));
        assert_eq!(ValueRef::Null.compare(&ValueRef::Int(0)), Some(Ordering::Less));
        assert_eq!(ValueRef::String("a").compare(&ValueRef::Int(0)), None);
    }
}
