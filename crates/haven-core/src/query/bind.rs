//! Binding: a parsed query checked against the schema and its arguments,
//! giving a [`Filter`] whose paths are property positions and whose
//! constants have the property's type.

use super::parser::{Aggregate, Compare, Entries, Expr, Literal, Op, Operand, Parsed, Path, Quantifier};
use crate::schema::{Collection, ObjectSchema, Property, PropertyType, Schema};
use crate::value::Value;
use std::ops::Range;

/// A checked predicate, ready to evaluate against records of one type.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `TRUEPREDICATE` / `FALSEPREDICATE`
    Const(bool),
    /// All must hold.
    And(Vec<Filter>),
    /// One must hold.
    Or(Vec<Filter>),
    /// Must not hold.
    Not(Box<Filter>),
    /// A comparison.
    Compare(Comparison),
}

/// One checked comparison; the left side is always a path.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// How a many-valued left side is decided.
    pub quantifier: Quantifier,
    /// The property path.
    pub lhs: BoundPath,
    /// The operator.
    pub op: Op,
    /// A constant or another path.
    pub rhs: Side,
    /// `[c]`
    pub case_insensitive: bool,
}

/// The right side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Side {
    /// A property path.
    Path(BoundPath),
    /// A constant, already converted to the left side's type.
    Value(Value),
    /// The values of `IN` (any of them) or the bounds of `BETWEEN` (low, high).
    Set(Vec<Value>),
}

/// One step of a path from objects of one type to objects of another.
#[derive(Debug, Clone, PartialEq)]
pub enum Hop {
    /// Follows link property `property` (a list or set of links when
    /// `many`) to objects of `target`.
    Link {
        /// The link property's position.
        property: usize,
        /// The linked type.
        target: String,
        /// Whether the property holds several links.
        many: bool,
    },
    /// Goes to the objects of `target` whose link property `property`
    /// holds this object's primary key (at position `pk`): a
    /// `linkingObjects` property, or `@links.Type.property`.
    Backlink {
        /// The position of this type's primary key.
        pk: usize,
        /// The position of `target`'s link property.
        property: usize,
        /// The linking type.
        target: String,
    },
}

impl Hop {
    /// The type the hop leads to.
    pub fn target(&self) -> &str {
        match self {
            Hop::Link { target, .. } | Hop::Backlink { target, .. } => target,
        }
    }

    /// Whether the hop can lead to several objects.
    pub fn many(&self) -> bool {
        matches!(self, Hop::Link { many: true, .. } | Hop::Backlink { .. })
    }
}

/// A property path with every step resolved to a storage position.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundPath {
    /// The steps to other objects before the last property.
    pub hops: Vec<Hop>,
    /// The last property's position in its type.
    pub property: usize,
    /// Whether the last property holds one value or a collection.
    pub collection: Collection,
    /// What the path reads of a dictionary: one key's value, the keys, or
    /// the values.
    pub entries: Option<Entries>,
    /// `@count`, `@sum`, …: the path yields one value per collection.
    pub aggregate: Option<Aggregate>,
    /// The path ends in a backlink with `@count` (`owners.@count`), or is
    /// a SUBQUERY: it yields the number of objects its hops reach.
    pub counts_objects: bool,
    /// A SUBQUERY's predicate: only the objects the hops reach that match
    /// it are counted.
    pub subquery: Option<Box<Filter>>,
    /// The text of the path, for plans and messages.
    pub text: String,
}

impl Filter {
    /// `self AND other`, keeping `AND`s flat so that the planner sees every
    /// conjunct.
    pub fn and(self, other: Filter) -> Filter {
        let mut parts = Vec::new();
        for f in [self, other] {
            match f {
                Filter::Const(true) => {}
                Filter::And(v) => parts.extend(v),
                f => parts.push(f),
            }
        }
        match parts.len() {
            0 => Filter::Const(true),
            1 => parts.pop().expect("one part"),
            _ => Filter::And(parts),
        }
    }
}

impl BoundPath {
    /// Whether the path can yield several values (it ends in a collection
    /// or goes through a link list).
    pub fn many(&self) -> bool {
        if self.counts_objects {
            return false;
        }
        let one_key = self.collection == Collection::Dictionary && matches!(self.entries, Some(Entries::Key(_)));
        (self.collection != Collection::Single && self.aggregate.is_none() && !one_key)
            || self.hops.iter().any(Hop::many)
    }

    /// A path that reads one property of the object itself (no links, no
    /// collection).
    pub fn direct_property(&self) -> Option<usize> {
        (self.hops.is_empty() && self.collection == Collection::Single).then_some(self.property)
    }
}

/// A checked query: filter, sort keys and limit.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundQuery {
    /// The predicate.
    pub filter: Filter,
    /// Sort keys: path and ascending.
    pub sort: Vec<(BoundPath, bool)>,
    /// `DISTINCT(…)`: of the objects with equal values of these paths,
    /// only the first in the query's order is kept.
    pub distinct: Vec<BoundPath>,
    /// `LIMIT(n)`
    pub limit: Option<usize>,
}

pub(crate) type BindError = (String, Range<usize>);

pub(crate) struct Binder<'a> {
    pub schema: &'a Schema,
    pub root: &'a ObjectSchema,
    pub args: &'a [Value],
    /// Inside a SUBQUERY: its variable (`$d`), which every path starts with.
    pub variable: Option<&'a str>,
}

struct Resolved<'a> {
    path: BoundPath,
    /// What each value the path yields is: the property, or for a
    /// dictionary's `@keys` a string.
    prop: Property,
    owner: &'a ObjectSchema,
}

impl<'a> Binder<'a> {
    pub fn bind(&self, parsed: &Parsed) -> Result<BoundQuery, BindError> {
        let filter = self.expr(&parsed.predicate)?;
        let sort = parsed
            .sort
            .iter()
            .map(|(p, asc)| {
                let r = self.path(p)?;
                if r.path.many() {
                    return Err((format!("cannot sort by '{}': it has many values", r.path.text), p.span.clone()));
                }
                Ok((r.path, *asc))
            })
            .collect::<Result<_, _>>()?;
        let distinct = parsed
            .distinct
            .iter()
            .map(|p| {
                let r = self.path(p)?;
                match r.path.many() {
                    true => {
                        Err((format!("cannot be DISTINCT by '{}': it has many values", r.path.text), p.span.clone()))
                    }
                    false => Ok(r.path),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(BoundQuery { filter, sort, distinct, limit: parsed.limit })
    }

    fn expr(&self, e: &Expr) -> Result<Filter, BindError> {
        Ok(match e {
            Expr::Const(b) => Filter::Const(*b),
            Expr::And(v) => {
                let mut all = Filter::Const(true);
                for e in v {
                    all = all.and(self.expr(e)?);
                }
                all
            }
            Expr::Or(v) => Filter::Or(v.iter().map(|e| self.expr(e)).collect::<Result<_, _>>()?),
            Expr::Not(e) => Filter::Not(Box::new(self.expr(e)?)),
            Expr::Compare(c) => self.compare(c)?,
        })
    }

    fn compare(&self, c: &Compare) -> Result<Filter, BindError> {
        let takes_list = matches!(c.op, Op::In | Op::Between);
        let (path_side, other, op) = match (&c.lhs, &c.rhs) {
            (Operand::Path(_), _) => (&c.lhs, &c.rhs, c.op),
            (_, Operand::Path(_)) if !c.op.is_string_op() && !takes_list => (&c.rhs, &c.lhs, c.op.flipped()),
            _ => return Err((format!("the left side of {} must be a property", c.op.symbol()), c.lhs.span())),
        };
        let Operand::Path(p) = path_side else { unreachable!("matched above") };
        let lhs = self.path(p)?;
        if c.quantifier != Quantifier::Any && !lhs.path.many() {
            return Err((
                format!("ALL and NONE need a collection, but '{}' has one value", lhs.path.text),
                p.span.clone(),
            ));
        }
        let rhs = match (other, takes_list) {
            (Operand::Path(q), false) => {
                let r = self.path(q)?;
                if !comparable(&lhs, &r) {
                    let message =
                        format!("cannot compare '{}' with '{}': their types differ", lhs.path.text, r.path.text);
                    return Err((message, q.span.clone()));
                }
                Side::Path(r.path)
            }
            (Operand::List(items, _), true) => {
                Side::Set(items.iter().map(|item| self.list_item(&lhs, op, item)).collect::<Result<_, _>>()?)
            }
            (Operand::Arg(n, span), true) => match self.arg(*n, span)? {
                Value::List(items) => Side::Set(
                    items
                        .into_iter()
                        .map(|v| self.constant(&lhs, element_op(op), v, span))
                        .collect::<Result<_, _>>()?,
                ),
                v => Side::Set(vec![self.constant(&lhs, element_op(op), v, span)?]),
            },
            (Operand::Literal(l, span), false) => Side::Value(self.constant(&lhs, op, literal_value(l), span)?),
            (Operand::Arg(n, span), false) => match self.arg(*n, span)? {
                Value::List(_) => return Err((format!("${n} is a list: compare with a list using IN"), span.clone())),
                v => Side::Value(self.constant(&lhs, op, v, span)?),
            },
            (other, true) => {
                return Err((format!("{} takes a list such as {{1, 2}} or an argument", op.symbol()), other.span()))
            }
            (other, false) => return Err(("a list {...} goes only after IN or BETWEEN".into(), other.span())),
        };
        Ok(Filter::Compare(Comparison {
            quantifier: c.quantifier,
            lhs: lhs.path,
            op,
            rhs,
            case_insensitive: c.case_insensitive,
        }))
    }

    /// One value of an `IN` or `BETWEEN` list.
    fn list_item(&self, lhs: &Resolved<'_>, op: Op, item: &Operand) -> Result<Value, BindError> {
        match item {
            Operand::Literal(l, span) => self.constant(lhs, element_op(op), literal_value(l), span),
            Operand::Arg(n, span) => self.constant(lhs, element_op(op), self.arg(*n, span)?, span),
            other => Err((format!("a list after {} holds values, not properties or lists", op.symbol()), other.span())),
        }
    }

    fn arg(&self, n: usize, span: &Range<usize>) -> Result<Value, BindError> {
        self.args.get(n).cloned().ok_or_else(|| {
            (format!("the query uses ${n} but {} argument(s) were given", self.args.len()), span.clone())
        })
    }

    /// Converts a constant to the type of the path it is compared with.
    fn constant(&self, lhs: &Resolved<'_>, op: Op, v: Value, span: &Range<usize>) -> Result<Value, BindError> {
        let mismatch = |v: &Value| {
            let expected = match lhs.path.aggregate {
                Some(Aggregate::Count) => "int (a count)".to_owned(),
                Some(Aggregate::Avg) => "double (an average)".to_owned(),
                Some(_) => lhs.prop.ty.name().to_owned(),
                None => lhs.prop.type_string(),
            };
            (format!("type mismatch: '{}' is {expected}, compared with {} {v}", lhs.path.text, v.kind()), span.clone())
        };
        if v.is_null() {
            return if matches!(op, Op::Eq | Op::Ne) {
                Ok(v)
            } else {
                Err((format!("{} cannot compare with nil", op.symbol()), span.clone()))
            };
        }
        if op.is_string_op() {
            return match (&lhs.prop.ty, &v, lhs.path.aggregate) {
                (PropertyType::String | PropertyType::Mixed, Value::String(_), None) => Ok(v),
                _ => Err((
                    format!(
                        "{} needs a string property and a string, but '{}' is {} and the value is {}",
                        op.symbol(),
                        lhs.path.text,
                        lhs.prop.type_string(),
                        v.kind()
                    ),
                    span.clone(),
                )),
            };
        }
        match lhs.path.aggregate {
            Some(Aggregate::Count) => return if v.as_int().is_some() { Ok(v) } else { Err(mismatch(&v)) },
            Some(Aggregate::Avg) => {
                return if v.as_int().or(v.as_double().map(|_| 0)).is_some() { Ok(v) } else { Err(mismatch(&v)) }
            }
            _ => {}
        }
        // Numbers compare across int and double (`age > 2.5`); a double
        // property takes an int constant as a double so its index applies.
        match (&lhs.prop.ty, &v) {
            (PropertyType::Double, Value::Int(i)) => return Ok(Value::Double(*i as f64)),
            (PropertyType::Int, Value::Double(_)) => return Ok(v),
            // A mixed value compares with any constant: numbers
            // numerically, other kinds with their own kind only.
            (PropertyType::Mixed, _) => return Ok(v),
            _ => {}
        }
        let element = Property { collection: Collection::Single, optional: true, ..lhs.prop.clone() };
        self.schema.coerce(lhs.owner, &element, v.clone()).map_err(|_| mismatch(&v))
    }

    fn path(&self, p: &Path) -> Result<Resolved<'a>, BindError> {
        let segments = self.own_segments(p)?;
        if let Some(subquery) = &p.subquery {
            return self.subquery(segments, subquery);
        }
        let mut ty = self.root;
        let mut hops = Vec::new();
        let last = segments.len() - 1;
        for (i, (name, span)) in segments.iter().enumerate() {
            let text = p.segments.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(".");
            if let Some((source, property)) = self.backlink(ty, name).map_err(|m| (m, span.clone()))? {
                hops.push(Hop::Backlink { pk: ty.primary_key_index(), property, target: source.name().to_owned() });
                ty = source;
                if i < last {
                    continue;
                }
                if p.aggregate != Some(Aggregate::Count) || p.entries.is_some() {
                    let message = format!(
                        "'{name}' is computed from links: compare through it ({name}.name) or count it ({name}.@count)"
                    );
                    return Err((message, span.clone()));
                }
                let path = BoundPath {
                    hops,
                    property: ty.primary_key_index(),
                    collection: Collection::Single,
                    entries: None,
                    aggregate: p.aggregate,
                    counts_objects: true,
                    subquery: None,
                    text: format!("{text}.@count"),
                };
                return Ok(Resolved { path, prop: Property::new(name.as_str(), PropertyType::Int), owner: ty });
            }
            let Some(idx) = ty.property_index(name) else {
                return Err((format!("'{}' has no property '{name}'", ty.name()), span.clone()));
            };
            let prop = &ty.properties()[idx];
            if i == last {
                if let Some(aggregate) = p.aggregate {
                    check_aggregate(aggregate, name, prop).map_err(|m| (m, span.clone()))?;
                }
                if p.entries.is_some() && prop.collection != Collection::Dictionary {
                    let message =
                        format!("'{name}' is {}: [\"key\"], @keys and @values read a dictionary", prop.type_string());
                    return Err((message, span.clone()));
                }
                let mut text = text;
                text.extend(p.entries.as_ref().map(Entries::text));
                text.extend(p.aggregate.map(|aggregate| format!(".{}", aggregate.text())));
                let element = match p.entries {
                    Some(Entries::Keys) => Property::new(name.as_str(), PropertyType::String),
                    _ => prop.clone(),
                };
                let path = BoundPath {
                    hops,
                    property: idx,
                    collection: prop.collection,
                    entries: p.entries.clone(),
                    aggregate: p.aggregate,
                    counts_objects: false,
                    subquery: None,
                    text,
                };
                return Ok(Resolved { path, prop: element, owner: ty });
            }
            if let PropertyType::Embedded(target) = &prop.ty {
                return self.embedded_field(hops, (idx, prop.is_list()), target, &segments[i + 1..], &text);
            }
            let PropertyType::Link(target) = &prop.ty else {
                return Err((
                    format!("'{name}' is {}, not a link: it has no properties", prop.type_string()),
                    span.clone(),
                ));
            };
            if prop.collection == Collection::Dictionary {
                let message =
                    format!("'{name}' is a dictionary: compare its values with {name}.@values or {name}[\"key\"]");
                return Err((message, span.clone()));
            }
            hops.push(Hop::Link { property: idx, target: target.clone(), many: prop.is_collection() });
            ty = self.schema.object_type(target).expect("validated schema");
        }
        unreachable!("a path has at least one segment")
    }

    /// A field of the embedded object (or objects, for a `list`) at `idx`
    /// (`address.city`): read as the entry of the dictionary that stores
    /// each object.
    fn embedded_field(
        &self,
        hops: Vec<Hop>,
        (idx, list): (usize, bool),
        target: &str,
        rest: &[(String, Range<usize>)],
        text: &str,
    ) -> Result<Resolved<'a>, BindError> {
        let embedded = self.schema.object_type(target).expect("validated schema");
        let (field, span) = &rest[0];
        let Some(prop) = embedded.property_named(field) else {
            return Err((format!("'{target}' has no property '{field}'"), span.clone()));
        };
        if rest.len() > 1 {
            let message = format!("'{text}' goes on past a field of an embedded object, which is not supported yet");
            return Err((message, rest[1].1.clone()));
        }
        let path = BoundPath {
            hops,
            property: idx,
            // One embedded object is stored as a dictionary; a list of them
            // as a list of dictionaries.
            collection: if list { Collection::List } else { Collection::Dictionary },
            entries: Some(Entries::Key(field.clone())),
            aggregate: None,
            counts_objects: false,
            subquery: None,
            text: text.to_owned(),
        };
        Ok(Resolved { path, prop: prop.clone(), owner: embedded })
    }

    /// The segments of `p` that name properties: inside a SUBQUERY, those
    /// after its variable.
    fn own_segments<'p>(&self, p: &'p Path) -> Result<&'p [(String, Range<usize>)], BindError> {
        let (first, span) = &p.segments[0];
        match self.variable {
            Some(var) if first == var && p.segments.len() > 1 => Ok(&p.segments[1..]),
            Some(var) => {
                Err((format!("inside SUBQUERY, a path starts with its variable: {var}.property"), span.clone()))
            }
            None if first.starts_with('$') => {
                Err((format!("{first} is used outside a SUBQUERY that names it"), span.clone()))
            }
            None => Ok(&p.segments),
        }
    }

    /// `SUBQUERY(collection, $var, predicate).@count`: the collection's
    /// path as hops (links and backlinks), the predicate bound against
    /// the type they reach.
    fn subquery(
        &self,
        segments: &[(String, Range<usize>)],
        subquery: &(String, Expr),
    ) -> Result<Resolved<'a>, BindError> {
        let (variable, predicate) = subquery;
        let mut ty = self.root;
        let mut hops = Vec::new();
        for (name, span) in segments {
            if let Some((source, property)) = self.backlink(ty, name).map_err(|m| (m, span.clone()))? {
                hops.push(Hop::Backlink { pk: ty.primary_key_index(), property, target: source.name().to_owned() });
                ty = source;
                continue;
            }
            let Some(idx) = ty.property_index(name) else {
                return Err((format!("'{}' has no property '{name}'", ty.name()), span.clone()));
            };
            let prop = &ty.properties()[idx];
            let PropertyType::Link(target) = &prop.ty else {
                let message = format!("SUBQUERY goes over links, but '{name}' is {}", prop.type_string());
                return Err((message, span.clone()));
            };
            if prop.collection == Collection::Dictionary {
                return Err((format!("SUBQUERY does not go over a dictionary ('{name}')"), span.clone()));
            }
            hops.push(Hop::Link { property: idx, target: target.clone(), many: prop.is_collection() });
            ty = self.schema.object_type(target).expect("validated schema");
        }
        let text = segments.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(".");
        if !hops.iter().any(Hop::many) {
            let span = segments[0].1.start..segments[segments.len() - 1].1.end;
            return Err((format!("SUBQUERY needs a collection of objects, but '{text}' is one object"), span));
        }
        let inner = Binder { schema: self.schema, root: ty, args: self.args, variable: Some(variable.as_str()) };
        let filter = inner.expr(predicate)?;
        let path = BoundPath {
            hops,
            property: ty.primary_key_index(),
            collection: Collection::Single,
            entries: None,
            aggregate: Some(Aggregate::Count),
            counts_objects: true,
            subquery: Some(Box::new(filter)),
            text: format!("SUBQUERY({text}, {variable}, …).@count"),
        };
        Ok(Resolved { path, prop: Property::new("count", PropertyType::Int), owner: ty })
    }
}

impl<'a> Binder<'a> {
    /// The type and link property a path segment goes back along: a
    /// `linkingObjects` property of `ty`, or `@links.Type.property`;
    /// `None` for any other segment.
    fn backlink(&self, ty: &ObjectSchema, segment: &str) -> Result<Option<(&'a ObjectSchema, usize)>, String> {
        let (source, property) = match (segment.strip_prefix("@links."), ty.backlink_named(segment)) {
            (Some(rest), _) => rest.split_once('.').expect("the parser writes @links.Type.property"),
            (None, Some(b)) => (b.object_type.as_str(), b.property.as_str()),
            (None, None) => return Ok(None),
        };
        let source_ty = self.schema.object_type(source).ok_or_else(|| format!("@links: unknown type '{source}'"))?;
        let idx = source_ty
            .property_index(property)
            .ok_or_else(|| format!("@links: '{source}' has no property '{property}'"))?;
        let link = &source_ty.properties()[idx];
        if link.ty != PropertyType::Link(ty.name().to_owned()) || link.collection == Collection::Dictionary {
            return Err(format!(
                "{source}.{property} is '{}', not a link, list or set of {}",
                link.type_string(),
                ty.name()
            ));
        }
        Ok(Some((source_ty, idx)))
    }
}

/// How each element of an `IN` or `BETWEEN` list is checked: as an
/// equality, or as an ordered bound.
fn element_op(op: Op) -> Op {
    match op {
        Op::Between => Op::Ge,
        Op::In => Op::Eq,
        other => other,
    }
}

/// Whether `aggregate` applies to property `name`: a collection (of a
/// dictionary, its values), of numbers for `@sum` and `@avg`, of numbers
/// or dates for `@min` and `@max`.
fn check_aggregate(aggregate: Aggregate, name: &str, prop: &Property) -> Result<(), String> {
    let needs = match aggregate {
        Aggregate::Count => "a collection",
        Aggregate::Sum | Aggregate::Avg => "a collection of int or double",
        Aggregate::Min | Aggregate::Max => "a collection of int, double, date or decimal128",
    };
    let fits = prop.is_collection()
        && match aggregate {
            Aggregate::Count => true,
            Aggregate::Sum | Aggregate::Avg => matches!(prop.ty, PropertyType::Int | PropertyType::Double),
            Aggregate::Min | Aggregate::Max => {
                matches!(
                    prop.ty,
                    PropertyType::Int | PropertyType::Double | PropertyType::Date | PropertyType::Decimal128
                )
            }
        };
    match fits {
        true => Ok(()),
        false => Err(format!("{} needs {needs}, but '{name}' is {}", aggregate.text(), prop.type_string())),
    }
}

fn comparable(a: &Resolved<'_>, b: &Resolved<'_>) -> bool {
    let numeric = |r: &Resolved<'_>| match r.path.aggregate {
        Some(Aggregate::Count | Aggregate::Avg) => true,
        _ => matches!(r.prop.ty, PropertyType::Int | PropertyType::Double),
    };
    let kind = |r: &Resolved<'_>| (r.path.aggregate == Some(Aggregate::Count)).then_some(PropertyType::Int);
    (numeric(a) && numeric(b)) || (kind(a).unwrap_or(a.prop.ty.clone()) == kind(b).unwrap_or(b.prop.ty.clone()))
}

fn literal_value(l: &Literal) -> Value {
    match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Double(d) => Value::Double(*d),
        Literal::Str(s) => Value::String(s.clone()),
    }
}
