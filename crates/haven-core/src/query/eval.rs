//! Evaluation: does a record match a [`Filter`]? Reads fields straight from
//! the encoded record; follows links through a [`LinkResolver`].

use super::bind::{BoundPath, Comparison, Filter, Hop, Side};
use super::parser::{Aggregate, Entries, Op, Quantifier};
use crate::record;
use crate::schema::Collection;
use crate::value::{Value, ValueRef};
use std::cmp::Ordering;

/// Loads the record of a linked object (from the same snapshot).
pub trait LinkResolver {
    /// The record of the object of type `ty` with primary key `pk`, if it exists.
    fn resolve(&self, ty: &str, pk: ValueRef<'_>) -> Option<Vec<u8>>;

    /// The records of the objects of type `ty` whose link property at
    /// position `property` (a link, a list or a set of links) holds `pk`.
    fn linking(&self, ty: &str, property: usize, pk: ValueRef<'_>) -> Vec<Vec<u8>>;
}

impl Filter {
    /// Whether the record matches. A damaged record never matches.
    pub fn matches(&self, rec: &[u8], links: &dyn LinkResolver) -> bool {
        match self {
            Filter::Const(b) => *b,
            Filter::And(v) => v.iter().all(|f| f.matches(rec, links)),
            Filter::Or(v) => v.iter().any(|f| f.matches(rec, links)),
            Filter::Not(f) => !f.matches(rec, links),
            Filter::Compare(c) => c.matches(rec, links),
        }
    }
}

impl Comparison {
    fn matches(&self, rec: &[u8], links: &dyn LinkResolver) -> bool {
        if let (Some(idx), false) = (self.lhs.direct_property(), matches!(self.rhs, Side::Path(_))) {
            // The common case: one field of this record against constants,
            // with no allocation. A damaged record matches nothing.
            return match record::field(rec, idx) {
                Ok(field) => self.holds(field.unwrap_or(ValueRef::Null), &[]),
                Err(_) => false,
            };
        }
        let left = path_values(&self.lhs, rec, links);
        let right = match &self.rhs {
            Side::Path(p) => path_values(p, rec, links),
            Side::Value(_) | Side::Set(_) => Vec::new(),
        };
        let holds = |l: &Value| l.as_ref().is_some_and(|l| self.holds(l, &right));
        match self.quantifier {
            Quantifier::Any => left.iter().any(holds),
            Quantifier::All => left.iter().all(holds),
            Quantifier::None => !left.iter().any(holds),
        }
    }

    /// Whether one value of the left side satisfies the comparison;
    /// `path_right` holds the right side's values when it is a path.
    fn holds(&self, l: ValueRef<'_>, path_right: &[Value]) -> bool {
        let ci = self.case_insensitive;
        let against = |r: &Value, op| r.as_ref().is_some_and(|r| test(l, op, r, ci));
        match (&self.rhs, self.op) {
            (Side::Value(r), op) => against(r, op),
            (Side::Set(set), Op::Between) => set.len() == 2 && against(&set[0], Op::Ge) && against(&set[1], Op::Le),
            (Side::Set(set), _) => set.iter().any(|r| against(r, Op::Eq)),
            (Side::Path(_), op) => path_right.iter().any(|r| against(r, op)),
        }
    }
}

/// The values a path yields for one record: one value for a path of
/// to-one links ending in a single property (null when a link is null),
/// the elements of a list or set, the values of a dictionary (its keys for
/// `@keys`, the value at one key or null for `["key"]`), one count per
/// collection for `@count`.
pub fn path_values(path: &BoundPath, rec: &[u8], links: &dyn LinkResolver) -> Vec<Value> {
    let mut records = vec![rec.to_vec()];
    let mut many = false;
    for hop in &path.hops {
        let mut next = Vec::new();
        for r in &records {
            match hop {
                Hop::Link { property, target, .. } => match record::field(r, *property).ok().flatten() {
                    Some(ValueRef::List(items) | ValueRef::Set(items)) => {
                        next.extend(items.iter().filter_map(|pk| links.resolve(target, pk)))
                    }
                    Some(pk) if pk != ValueRef::Null => next.extend(links.resolve(target, pk)),
                    _ => {}
                },
                Hop::Backlink { pk, property, target } => {
                    if let Some(pk) = record::field(r, *pk).ok().flatten() {
                        next.extend(links.linking(target, *property, pk));
                    }
                }
            }
        }
        many |= hop.many();
        if next.is_empty() && !many {
            // A null to-one link: the path reads as null.
            return if path.aggregate.is_some() { vec![] } else { vec![Value::Null] };
        }
        records = next;
    }
    if let Some(subquery) = &path.subquery {
        records.retain(|r| subquery.matches(r, links));
    }
    if path.counts_objects {
        return vec![Value::Int(records.len() as i64)];
    }
    let mut out = Vec::new();
    for r in &records {
        match record::field(r, path.property).ok().flatten() {
            Some(ValueRef::List(items) | ValueRef::Set(items)) => match (&path.entries, path.aggregate) {
                // A field of each embedded object of a list.
                (Some(Entries::Key(field)), _) => out.extend(items.iter().map(|item| match item {
                    ValueRef::Dictionary(fields) => fields.get(field).map_or(Value::Null, |v| v.to_owned()),
                    _ => Value::Null,
                })),
                (_, Some(aggregate)) => out.push(aggregate_of(aggregate, items.iter())),
                (_, None) => out.extend(items.iter().map(|v| v.to_owned())),
            },
            Some(ValueRef::Dictionary(entries)) => match (&path.entries, path.aggregate) {
                (Some(Entries::Key(key)), _) => out.push(entries.get(key).map_or(Value::Null, |v| v.to_owned())),
                (Some(Entries::Keys), _) => out.extend(entries.iter().map(|(k, _)| Value::String(k.to_owned()))),
                (_, Some(aggregate)) => out.push(aggregate_of(aggregate, entries.iter().map(|(_, v)| v))),
                (_, None) => out.extend(entries.iter().map(|(_, v)| v.to_owned())),
            },
            None if path.aggregate.is_some() => {
                out.push(aggregate_of(path.aggregate.expect("checked"), std::iter::empty()))
            }
            None if path.collection == Collection::Dictionary && matches!(path.entries, Some(Entries::Key(_))) => {
                out.push(Value::Null)
            }
            None if path.many() => {}
            Some(v) => out.push(v.to_owned()),
            None => out.push(Value::Null),
        }
    }
    out
}

/// One comparison of two values.
fn test(l: ValueRef<'_>, op: Op, r: ValueRef<'_>, ci: bool) -> bool {
    if let (ValueRef::String(a), ValueRef::String(b)) = (l, r) {
        if ci || op.is_string_op() {
            return string_test(a, op, b, ci);
        }
    }
    let ord = l.compare(&r);
    let both = l != ValueRef::Null && r != ValueRef::Null;
    match op {
        Op::Eq => ord == Some(Ordering::Equal),
        Op::Ne => ord != Some(Ordering::Equal),
        Op::Lt => both && ord == Some(Ordering::Less),
        Op::Le => both && matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => both && ord == Some(Ordering::Greater),
        Op::Ge => both && matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        _ => false,
    }
}

fn string_test(a: &str, op: Op, b: &str, ci: bool) -> bool {
    let (la, lb);
    let (a, b) = if ci {
        la = a.to_lowercase();
        lb = b.to_lowercase();
        (la.as_str(), lb.as_str())
    } else {
        (a, b)
    };
    match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        Op::BeginsWith => a.starts_with(b),
        Op::EndsWith => a.ends_with(b),
        Op::Contains => a.contains(b),
        Op::Like => like(a.as_bytes(), b.as_bytes()),
        // Lists are tested element by element, with `Eq`, `Ge` and `Le`.
        Op::In | Op::Between => false,
    }
}

/// `*` matches any run of characters, `?` exactly one (on bytes: patterns
/// with `?` against multi-byte characters match one byte).
fn like(text: &[u8], pattern: &[u8]) -> bool {
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// What `aggregate` makes of one collection's elements (nulls left out): the
/// count, an int sum of ints (a double one if a double is there or the
/// ints overflow), a double mean, the smallest or largest element; null
/// for the mean, minimum or maximum of no elements.
fn aggregate_of<'a>(aggregate: Aggregate, items: impl Iterator<Item = ValueRef<'a>>) -> Value {
    let items: Vec<ValueRef<'a>> = items.filter(|v| *v != ValueRef::Null).collect();
    let as_double = |v: &ValueRef<'_>| match v {
        ValueRef::Int(i) => *i as f64,
        ValueRef::Double(d) => *d,
        _ => 0.0,
    };
    match aggregate {
        Aggregate::Count => Value::Int(items.len() as i64),
        Aggregate::Sum => {
            let ints: Option<i64> = items.iter().try_fold(0i64, |sum, v| match v {
                ValueRef::Int(i) => sum.checked_add(*i),
                _ => None,
            });
            ints.map_or_else(|| Value::Double(items.iter().map(as_double).sum()), Value::Int)
        }
        Aggregate::Avg if items.is_empty() => Value::Null,
        Aggregate::Avg => Value::Double(items.iter().map(as_double).sum::<f64>() / items.len() as f64),
        Aggregate::Min => items
            .into_iter()
            .min_by(|a, b| a.compare(b).unwrap_or(Ordering::Equal))
            .map_or(Value::Null, |v| v.to_owned()),
        Aggregate::Max => items
            .into_iter()
            .max_by(|a, b| a.compare(b).unwrap_or(Ordering::Equal))
            .map_or(Value::Null, |v| v.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards() {
        assert!(like(b"rex", b"r*"));
        assert!(like(b"rex", b"?ex"));
        assert!(like(b"rex", b"*"));
        assert!(like(b"abcbd", b"a*bd"));
        assert!(!like(b"rex", b"r?"));
        assert!(!like(b"rex", b"x*"));
    }

    #[test]
    fn null_orders_nothing() {
        assert!(!test(ValueRef::Null, Op::Lt, ValueRef::Int(3), false));
        assert!(test(ValueRef::Null, Op::Eq, ValueRef::Null, false));
        assert!(test(ValueRef::Int(2), Op::Ne, ValueRef::Null, false));
        assert!(test(ValueRef::String("Rex"), Op::Eq, ValueRef::String("rEX"), true));
    }
}
