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
                    Some(prev) => intersect(&prev, &r),
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
        return Plan {
            access: Access::Scan,
            residual,
            description,
        };
    };
    let rest: Vec<Filter> = conjuncts
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, f)| (*f).clone())
        .collect();
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
    Plan {
        access,
        residual,
        description,
    }
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

/// The key ranges that express conjunct `f` exactly on property `prop`, and
/// whether they are equalities.
fn key_ranges(f: &Filter, prop: usize, ty: &PropertyType) -> Option<(Vec<KeyRange>, bool)> {
    match f {
        Filter::Compare(c) => comparison_range(c, prop, ty).map(|(r, eq)| (vec![r], eq)),
        Filter::Or(parts) if !parts.is_empty() => {
            let ranges = parts
                .iter()
                .map(|p| match p {
                    Filter::Compare(c) if c.op == Op::Eq => {
                        comparison_range(c, prop, ty).map(|r| r.0)
                    }
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some((ranges, true))
        }
        _ => None,
    }
}

fn comparison_range(c: &Comparison, prop: usize, ty: &PropertyType) -> Option<(KeyRange, bool)> {
    if c.lhs.direct_property() != Some(prop)
        || c.case_insensitive
        || c.quantifier != Quantifier::Any
    {
        return None;
    }
    let Side::Value(v) = &c.rhs else { return None };
    // Keys of ints and doubles differ: `int_property > 2.5` is left to the filter.
    if matches!((ty, v), (PropertyType::Int, Value::Double(_))) {
        return None;
    }
    let v_ref = v.as_ref()?;
    let k = key::to_key(v_ref);
    // Keys of one kind share their first byte: bound ranges to that kind
    // so that `< x` does not reach nulls and `> x` not other kinds.
    let kind_start = Bound::Included(vec![k[0]]);
    let kind_end = Bound::Excluded(vec![k[0] + 1]);
    let after = |k: &[u8]| key::successor(k).map_or(Bound::Unbounded, Bound::Excluded);
    let at_or_after = |k: &[u8]| key::successor(k).map_or(Bound::Unbounded, Bound::Included);
    Some(match (c.op, v) {
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
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(h))
        | (Bound::Excluded(l), Bound::Included(h)) => l >= h,
        _ => false,
    }
}
