//! The planner: picks how to find candidates for a filter — by primary key,
//! through a secondary index, or by scanning — and what is left to check.
//!
//! Only the top-level conjuncts are considered. An equality, a range or a
//! case-sensitive `BEGINSWITH` on the primary key or an indexed property
//! becomes key ranges; ranges on the same property are intersected; an
//! `OR` of equalities on one property (what `IN` becomes) becomes several
//! ranges. Conjuncts the ranges express exactly are not checked again.

use super::bind::{BoundQuery, Comparison, Filter, Side};
use super::parser::{Op, Quantifier};
use crate::key;
use crate::schema::{ObjectSchema, PropertyType};
use crate::value::Value;
use std::ops::Bound;

/// A range of encoded keys.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Where the candidates come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Every object of the type.
    Scan,
    /// Objects whose primary key lies in these ranges.
    PrimaryKey(Vec<KeyRange>),
    /// Objects whose indexed property (by position) lies in these ranges.
    Index(usize, Vec<KeyRange>),
}

/// How to run a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Where the candidates come from.
    pub access: Access,
    /// What each candidate must still satisfy (`None`: nothing).
    pub residual: Option<Filter>,
    /// A one-line description, as `Results::explain` shows it.
    pub description: String,
}

/// Plans `query` over objects of type `ty`.
pub fn plan(ty: &ObjectSchema, query: &BoundQuery) -> Plan {
    let conjuncts: Vec<&Filter> = match &query.filter {
        Filter::And(parts) => parts.iter().collect(),
        other => vec![other],
    };
    let pk = ty.primary_key_index();
    let mut best: Option<(usize, Vec<KeyRange>, Vec<usize>, u8)> = None;
    for (prop_idx, prop) in ty.properties().iter().enumerate() {
        if prop_idx != pk && !prop.indexed {
            continue;
        }
        let mut ranges: Option<Vec<KeyRange>> = None;
        let mut used = Vec::new();
        let mut rank = 0u8;
        for (i, c) in conjuncts.iter().enumerate() {
            if let Some((r, exact_eq)) = key_ranges(c, prop_idx, &prop.ty) {
                ranges = Some(match ranges {
                    None => r,
                    Some(prev) => {
                        let mut both = intersect(&prev, &r);
                        sort_ranges(&mut both);
                        both
                    }
                });
                used.push(i);
                rank = rank.max(if exact_eq { 2 } else { 1 });
            }
        }
        let Some(ranges) = ranges else { continue };
        let rank = rank + u8::from(prop_idx == pk);
        if best.as_ref().is_none_or(|b| rank > b.3) {
            best = Some((prop_idx, ranges, used, rank));
        }
    }
    let Some((prop_idx, ranges, used, _)) = best else {
        let residual = (query.filter != Filter::Const(true)).then(|| query.filter.clone());
        let description = format!("scan {}{}", ty.name(), describe_residual(&residual));
        return Plan { access: Access::Scan, residual, description };
    };
    let rest: Vec<Filter> =
        conjuncts.iter().enumerate().filter(|(i, _)| !used.contains(i)).map(|(_, f)| (*f).clone()).collect();
    let residual = match rest.len() {
        0 => None,
        1 => rest.into_iter().next(),
        _ => Some(Filter::And(rest)),
    };
    let name = &ty.properties()[prop_idx].name;
    let (kind, access) = if prop_idx == pk {
        ("primary key", Access::PrimaryKey(ranges.clone()))
    } else {
        ("index", Access::Index(prop_idx, ranges.clone()))
    };
    let description = format!(
        "{kind} {}.{name} ({} range{}){}",
        ty.name(),
        ranges.len(),
        if ranges.len() == 1 { "" } else { "s" },
        describe_residual(&residual)
    );
    Plan { access, residual, description }
}

fn describe_residual(residual: &Option<Filter>) -> String {
    match residual {
        None => String::new(),
        Some(f) => format!(", then filter on {}", filtered_paths(f).join(", ")),
    }
}

fn filtered_paths(f: &Filter) -> Vec<String> {
    let mut out: Vec<String> = match f {
        Filter::Const(_) => vec![],
        Filter::And(v) | Filter::Or(v) => v.iter().flat_map(filtered_paths).collect(),
        Filter::Not(f) => filtered_paths(f),
        Filter::Compare(c) => vec![c.lhs.text.clone()],
    };
    out.dedup();
    out
}

/// The key ranges that express conjunct `f` exactly on property `prop`
/// (sorted, without duplicates), and whether they are equalities.
fn key_ranges(f: &Filter, prop: usize, ty: &PropertyType) -> Option<(Vec<KeyRange>, bool)> {
    let (mut ranges, eq) = match f {
        Filter::Compare(c) => comparison_ranges(c, prop, ty)?,
        // `a == 1 OR a == 2`: a union of equalities (disjoint or identical).
        Filter::Or(parts) if !parts.is_empty() => {
            let mut all = Vec::new();
            for part in parts {
                let Filter::Compare(c) = part else {
                    return None;
                };
                match comparison_ranges(c, prop, ty)? {
                    (r, true) => all.extend(r),
                    (_, false) => return None,
                }
            }
            (all, true)
        }
        _ => return None,
    };
    sort_ranges(&mut ranges);
    Some((ranges, eq))
}

/// Orders ranges by their start and drops repeats, so that `IN {2, 1, 1}`
/// reads each key once, in key order.
fn sort_ranges(ranges: &mut Vec<KeyRange>) {
    let start = |r: &KeyRange| match &r.0 {
        Bound::Unbounded => None,
        Bound::Included(k) | Bound::Excluded(k) => Some(k.clone()),
    };
    ranges.sort_by_key(start);
    ranges.dedup();
}

fn comparison_ranges(c: &Comparison, prop: usize, ty: &PropertyType) -> Option<(Vec<KeyRange>, bool)> {
    if c.lhs.direct_property() != Some(prop) || c.case_insensitive || c.quantifier != Quantifier::Any {
        return None;
    }
    match (&c.rhs, c.op) {
        (Side::Value(v), op) => value_range(v, op, ty).map(|(r, eq)| (vec![r], eq)),
        (Side::Set(set), Op::In) => {
            let ranges = set.iter().map(|v| value_range(v, Op::Eq, ty).map(|r| r.0)).collect::<Option<_>>()?;
            Some((ranges, true))
        }
        (Side::Set(set), Op::Between) if set.len() == 2 => {
            let low = value_range(&set[0], Op::Ge, ty)?.0;
            let high = value_range(&set[1], Op::Le, ty)?.0;
            Some((intersect(&[low], &[high]), false))
        }
        _ => None,
    }
}

/// The key range of `property op v`, and whether it is an equality.
fn value_range(v: &Value, op: Op, ty: &PropertyType) -> Option<(KeyRange, bool)> {
    // Keys of ints and doubles differ: `int_property > 2.5` is left to the filter.
    if matches!((ty, v), (PropertyType::Int, Value::Double(_))) {
        return None;
    }
    let k = key::to_key(v.as_ref()?);
    // Bound ranges to the value's kind so that `< x` does not reach nulls
    // and `> x` not other kinds.
    let (first, end) = key::kind_range(k[0]);
    let kind_start = Bound::Included(vec![first]);
    let kind_end = Bound::Excluded(vec![end]);
    let after = |k: &[u8]| key::successor(k).map_or(Bound::Unbounded, Bound::Excluded);
    let at_or_after = |k: &[u8]| key::successor(k).map_or(Bound::Unbounded, Bound::Included);
    Some(match (op, v) {
        (Op::Eq, _) => ((Bound::Included(k.clone()), after(&k)), true),
        (_, Value::Null) => return None,
        (Op::Lt, _) => ((kind_start, Bound::Excluded(k)), false),
        (Op::Le, _) => ((kind_start, after(&k)), false),
        (Op::Gt, _) => ((at_or_after(&k), kind_end), false),
        (Op::Ge, _) => ((Bound::Included(k), kind_end), false),
        (Op::BeginsWith, Value::String(s)) => {
            let p = key::string_prefix(s);
            ((Bound::Included(p.clone()), after(&p)), false)
        }
        _ => return None,
    })
}

fn intersect(a: &[KeyRange], b: &[KeyRange]) -> Vec<KeyRange> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let lo = max_lower(&x.0, &y.0);
            let hi = min_upper(&x.1, &y.1);
            if !empty(&lo, &hi) {
                out.push((lo, hi));
            }
        }
    }
    out
}

fn max_lower(a: &Bound<Vec<u8>>, b: &Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x.clone(),
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x > y || (x == y && matches!(a, Bound::Excluded(_))) {
                a.clone()
            } else {
                b.clone()
            }
        }
    }
}

fn min_upper(a: &Bound<Vec<u8>>, b: &Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x.clone(),
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x < y || (x == y && matches!(a, Bound::Excluded(_))) {
                a.clone()
            } else {
                b.clone()
            }
        }
    }
}

fn empty(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(h)) | (Bound::Excluded(l), Bound::Included(h)) => {
            l >= h
        }
        _ => false,
    }
}
