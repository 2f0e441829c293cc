//! The parser: tokens to a syntax tree, by recursive descent.
//!
//! Precedence, loosest first: `OR`, `AND`, `NOT`, comparisons. `IN` and
//! `BETWEEN` are comparisons whose right side is a list (`{a, b}`) or an
//! argument; they stay whole so that `ALL`/`NONE` apply to them as a unit.

use super::lexer::{tokenize, Spanned, Tok};
use std::ops::Range;

/// A parsed query: a predicate and its suffixes.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub(crate) predicate: Expr,
    pub(crate) sort: Vec<(Path, bool)>,
    pub(crate) distinct: Vec<Path>,
    pub(crate) limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Const(bool),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare(Compare),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compare {
    pub quantifier: Quantifier,
    pub lhs: Operand,
    pub op: Op,
    pub rhs: Operand,
    pub case_insensitive: bool,
}

/// How a comparison on a many-valued path is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// `ANY` (also what a bare comparison on a list means).
    Any,
    /// `ALL`
    All,
    /// `NONE`
    None,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `BEGINSWITH`
    BeginsWith,
    /// `ENDSWITH`
    EndsWith,
    /// `CONTAINS`
    Contains,
    /// `LIKE` (`*` any run, `?` one character)
    Like,
    /// `IN {a, b}`: equal to one of them
    In,
    /// `BETWEEN {low, high}`: within both bounds
    Between,
}

impl Op {
    pub(crate) fn is_string_op(self) -> bool {
        matches!(self, Op::BeginsWith | Op::EndsWith | Op::Contains | Op::Like)
    }

    /// The operator with its sides swapped (`a < b` is `b > a`).
    pub(crate) fn flipped(self) -> Op {
        match self {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            other => other,
        }
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::BeginsWith => "BEGINSWITH",
            Op::EndsWith => "ENDSWITH",
            Op::Contains => "CONTAINS",
            Op::Like => "LIKE",
            Op::In => "IN",
            Op::Between => "BETWEEN",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Path(Path),
    Literal(Literal, Range<usize>),
    Arg(usize, Range<usize>),
    /// `{a, b, ...}` after `IN` or `BETWEEN`.
    List(Vec<Operand>, Range<usize>),
}

impl Operand {
    pub(crate) fn span(&self) -> Range<usize> {
        match self {
            Operand::Path(p) => p.span.clone(),
            Operand::Literal(_, s) | Operand::Arg(_, s) | Operand::List(_, s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
}

/// A property path: `owner.name`, `tags.@count`, `ranks.@sum`,
/// `prices["apple"]`, `prices.@keys`, `SUBQUERY(dogs, $d, $d.age > 5).@count`.
/// Inside a SUBQUERY, a path starts with its variable (`$d`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    pub segments: Vec<(String, Range<usize>)>,
    /// For `SUBQUERY(collection, $var, predicate)`: the variable and the
    /// predicate; `segments` is the collection.
    pub subquery: Option<Box<(String, Expr)>>,
    pub entries: Option<Entries>,
    pub aggregate: Option<Aggregate>,
    pub span: Range<usize>,
}

/// What a path reads of a dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entries {
    /// `prices["apple"]`: the value at one key (null when it is missing).
    Key(String),
    /// `prices.@keys`: the keys.
    Keys,
    /// `prices.@values`: the values (what `prices` alone reads too).
    Values,
}

impl Entries {
    /// How it is written after the property: `["apple"]`, `.@keys`.
    pub fn text(&self) -> String {
        match self {
            Entries::Key(k) => format!("[{k:?}]"),
            Entries::Keys => ".@keys".into(),
            Entries::Values => ".@values".into(),
        }
    }
}

/// What a path ending in `@…` makes of a list: one value per list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// `@count`, `@size`: the number of elements.
    Count,
    /// `@sum`: the sum of the elements (0 for none).
    Sum,
    /// `@avg`: their mean, a double (null for none).
    Avg,
    /// `@min`: the smallest element (null for none).
    Min,
    /// `@max`: the largest element (null for none).
    Max,
}

impl Aggregate {
    fn named(name: &str) -> Option<Aggregate> {
        Some(match name {
            "count" | "size" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            "avg" => Aggregate::Avg,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            _ => return None,
        })
    }

    /// How it is written: `@sum`.
    pub fn text(self) -> &'static str {
        match self {
            Aggregate::Count => "@count",
            Aggregate::Sum => "@sum",
            Aggregate::Avg => "@avg",
            Aggregate::Min => "@min",
            Aggregate::Max => "@max",
        }
    }
}

/// A parse error: message and byte offset.
pub(crate) type ParseError = (String, usize);

/// Parses a whole query.
pub(crate) fn parse(query: &str) -> Result<Parsed, ParseError> {
    let tokens = tokenize(query)?;
    let mut p = Parser { tokens, pos: 0, end: query.len(), depth: 0 };
    let predicate = p.or()?;
    let mut sort = Vec::new();
    let mut distinct = Vec::new();
    let mut limit = None;
    while !p.at_end() {
        if p.keyword("DISTINCT") {
            p.expect("(")?;
            loop {
                distinct.push(p.path()?);
                if !p.punct(",") {
                    break;
                }
            }
            p.expect(")")?;
            continue;
        }
        if p.keyword("SORT") {
            p.expect("(")?;
            loop {
                let path = p.path()?;
                let ascending = !(p.keyword("DESC") || p.keyword("DESCENDING"));
                if ascending && !p.keyword("ASC") {
                    p.keyword("ASCENDING");
                }
                sort.push((path, ascending));
                if !p.punct(",") {
                    break;
                }
            }
            p.expect(")")?;
        } else if p.keyword("LIMIT") {
            p.expect("(")?;
            let at = p.offset();
            match p.next() {
                Some(Tok::Int(n)) if n >= 0 => limit = Some(n as usize),
                _ => return Err(("LIMIT takes a non-negative integer".into(), at)),
            }
            p.expect(")")?;
        } else {
            return Err((
                format!("expected AND, OR, SORT(...), DISTINCT(...) or LIMIT(...), found {}", p.found()),
                p.offset(),
            ));
        }
    }
    Ok(Parsed { predicate, sort, distinct, limit })
}

/// How deep parentheses and NOT may nest.
const MAX_NESTING: usize = 100;

struct Parser {
    tokens: Vec<Spanned>,
    pos: usize,
    end: usize,
    /// Parentheses and NOTs open around the current position.
    depth: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.0)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |t| t.1.start)
    }

    fn span_from(&self, start: usize) -> Range<usize> {
        let end = self.tokens.get(self.pos.wrapping_sub(1)).map_or(start, |t| t.1.end);
        start..end.max(start)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the query".into(),
            Some(Tok::Ident(i)) => format!("'{i}'"),
            Some(Tok::At(a)) => format!("'@{a}'"),
            Some(Tok::Int(i)) => format!("{i}"),
            Some(Tok::Double(d)) => format!("{d}"),
            Some(Tok::Str(s)) => format!("{s:?}"),
            Some(Tok::Arg(n)) => format!("${n}"),
            Some(Tok::Var(v)) => format!("${v}"),
            Some(Tok::Punct(p)) => format!("'{p}'"),
        }
    }

    fn keyword(&mut self, kw: &str) -> bool {
        let hit = matches!(self.peek(), Some(Tok::Ident(i)) if i.eq_ignore_ascii_case(kw));
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn punct(&mut self, p: &str) -> bool {
        let hit = matches!(self.peek(), Some(Tok::Punct(q)) if *q == p);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, p: &str) -> Result<(), ParseError> {
        if self.punct(p) {
            Ok(())
        } else {
            Err((format!("expected '{p}', found {}", self.found()), self.offset()))
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.and()?];
        while self.keyword("OR") || self.punct("||") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.pop().unwrap() } else { Expr::Or(parts) })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.unary()?];
        while self.keyword("AND") || self.punct("&&") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.pop().unwrap() } else { Expr::And(parts) })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let at = self.offset();
        if self.keyword("NOT") || self.punct("!") {
            return self.nested(at, |p| Ok(Expr::Not(Box::new(p.unary()?))));
        }
        if self.punct("(") {
            return self.nested(at, |p| {
                let inner = p.or()?;
                p.expect(")")?;
                Ok(inner)
            });
        }
        if self.keyword("TRUEPREDICATE") {
            return Ok(Expr::Const(true));
        }
        if self.keyword("FALSEPREDICATE") {
            return Ok(Expr::Const(false));
        }
        self.comparison()
    }

    /// Parses one level deeper, refusing past [`MAX_NESTING`]: the parser
    /// (and everything that walks the tree) recurses once per level, and a
    /// query can come from anyone.
    fn nested(
        &mut self,
        at: usize,
        f: impl FnOnce(&mut Parser) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        if self.depth == MAX_NESTING {
            return Err((
                format!("the query nests more than {MAX_NESTING} levels deep (parentheses, NOT and SUBQUERY)"),
                at,
            ));
        }
        self.depth += 1;
        let expr = f(self);
        self.depth -= 1;
        expr
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let quantifier = if self.keyword("ANY") || self.keyword("SOME") {
            Quantifier::Any
        } else if self.keyword("ALL") {
            Quantifier::All
        } else if self.keyword("NONE") {
            Quantifier::None
        } else {
            Quantifier::Any
        };
        let lhs = self.operand()?;
        let op_at = self.offset();
        if self.keyword("IN") {
            return self.in_list(quantifier, lhs);
        }
        if self.keyword("BETWEEN") {
            let at = self.offset();
            let bounds = self.list()?;
            if let Operand::List(items, span) = &bounds {
                if items.len() != 2 {
                    return Err(("BETWEEN takes two bounds: {low, high}".into(), span.start));
                }
            } else {
                return Err(("BETWEEN takes two bounds: {low, high}".into(), at));
            }
            let rhs = bounds;
            return Ok(Expr::Compare(Compare { quantifier, lhs, op: Op::Between, rhs, case_insensitive: false }));
        }
        let op = match self.next() {
            Some(Tok::Punct("==")) => Op::Eq,
            Some(Tok::Punct("!=")) => Op::Ne,
            Some(Tok::Punct("<")) => Op::Lt,
            Some(Tok::Punct("<=")) => Op::Le,
            Some(Tok::Punct(">")) => Op::Gt,
            Some(Tok::Punct(">=")) => Op::Ge,
            Some(Tok::Ident(i)) => match i.to_ascii_uppercase().as_str() {
                "BEGINSWITH" => Op::BeginsWith,
                "ENDSWITH" => Op::EndsWith,
                "CONTAINS" => Op::Contains,
                "LIKE" => Op::Like,
                _ => return Err((format!("expected a comparison operator, found '{i}'"), op_at)),
            },
            _ => {
                self.pos -= 1;
                return Err((
                    format!("expected a comparison operator (==, <, BEGINSWITH, IN, ...), found {}", self.found()),
                    op_at,
                ));
            }
        };
        let case_insensitive = self.case_flag()?;
        let rhs = self.operand()?;
        Ok(Expr::Compare(Compare { quantifier, lhs, op, rhs, case_insensitive }))
    }

    fn case_flag(&mut self) -> Result<bool, ParseError> {
        if !self.punct("[") {
            return Ok(false);
        }
        let at = self.offset();
        match self.next() {
            Some(Tok::Ident(f)) if f.eq_ignore_ascii_case("c") => {}
            _ => return Err(("expected [c] (case-insensitive)".into(), at)),
        }
        self.expect("]")?;
        Ok(true)
    }

    /// `x IN {a, b}` or `x IN $0` (a list argument).
    fn in_list(&mut self, quantifier: Quantifier, lhs: Operand) -> Result<Expr, ParseError> {
        let case_insensitive = self.case_flag()?;
        let rhs = if matches!(self.peek(), Some(Tok::Punct("{"))) { self.list()? } else { self.operand()? };
        Ok(Expr::Compare(Compare { quantifier, lhs, op: Op::In, rhs, case_insensitive }))
    }

    /// `{a, b, ...}`, possibly empty.
    fn list(&mut self) -> Result<Operand, ParseError> {
        let start = self.offset();
        self.expect("{")?;
        let mut items = Vec::new();
        if !self.punct("}") {
            loop {
                items.push(self.operand()?);
                if !self.punct(",") {
                    break;
                }
            }
            self.expect("}")?;
        }
        Ok(Operand::List(items, self.span_from(start)))
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let start = self.offset();
        let found = self.found();
        let lit = |l, p: &Parser| Ok(Operand::Literal(l, p.span_from(start)));
        match self.next() {
            Some(Tok::Int(i)) => lit(Literal::Int(i), self),
            Some(Tok::Double(d)) => lit(Literal::Double(d), self),
            Some(Tok::Str(s)) => lit(Literal::Str(s), self),
            Some(Tok::Arg(n)) => Ok(Operand::Arg(n, self.span_from(start))),
            Some(Tok::Punct("{")) => Err(("a list {...} goes only after IN or BETWEEN".into(), start)),
            Some(Tok::Ident(i)) => match i.to_ascii_lowercase().as_str() {
                "subquery" if matches!(self.peek(), Some(Tok::Punct("("))) => Ok(Operand::Path(self.subquery(start)?)),
                "nil" | "null" => lit(Literal::Null, self),
                "true" => lit(Literal::Bool(true), self),
                "false" => lit(Literal::Bool(false), self),
                _ => {
                    self.pos -= 1;
                    Ok(Operand::Path(self.path()?))
                }
            },
            Some(Tok::At(a)) if a == "links" => {
                self.pos -= 1;
                Ok(Operand::Path(self.path()?))
            }
            Some(Tok::Var(_)) => {
                self.pos -= 1;
                Ok(Operand::Path(self.path()?))
            }
            _ => Err((format!("expected a property, a value or an argument ($0), found {found}"), start)),
        }
    }

    fn path(&mut self) -> Result<Path, ParseError> {
        let start = self.offset();
        let mut segments = Vec::new();
        let (mut entries, mut aggregate) = (None, None);
        loop {
            let at = self.offset();
            match self.next() {
                Some(Tok::Ident(name)) => segments.push((name, self.span_from(at))),
                Some(Tok::Var(name)) if segments.is_empty() => segments.push((format!("${name}"), self.span_from(at))),
                Some(Tok::At(a)) if !segments.is_empty() && Aggregate::named(&a).is_some() => {
                    aggregate = Aggregate::named(&a);
                    break;
                }
                Some(Tok::At(a)) if a == "links" => segments.push((self.links_segment()?, self.span_from(at))),
                Some(Tok::At(a)) if !segments.is_empty() && matches!(a.as_str(), "keys" | "values") => {
                    entries = Some(if a == "keys" { Entries::Keys } else { Entries::Values });
                    break;
                }
                _ => {
                    self.pos -= 1;
                    return Err((format!("expected a property name, found {}", self.found()), at));
                }
            }
            if self.punct("[") {
                entries = Some(Entries::Key(self.dictionary_key()?));
                break;
            }
            if !self.punct(".") {
                break;
            }
        }
        Ok(Path { segments, subquery: None, entries, aggregate, span: self.span_from(start) })
    }

    /// `(collection, $var, predicate).@count` after `SUBQUERY`: one count
    /// per object, of the collection's objects that match.
    fn subquery(&mut self, start: usize) -> Result<Path, ParseError> {
        self.expect("(")?;
        let collection = self.path()?;
        self.expect(",")?;
        let at = self.offset();
        let Some(Tok::Var(var)) = self.next() else {
            self.pos -= 1;
            return Err((
                format!("SUBQUERY needs a variable such as $x after the collection, found {}", self.found()),
                at,
            ));
        };
        self.expect(",")?;
        let predicate = self.nested(at, |p| p.or())?;
        self.expect(")")?;
        let at = self.offset();
        let counted = self.punct(".") && matches!(self.next(), Some(Tok::At(a)) if a == "count" || a == "size");
        if !counted {
            return Err(("a SUBQUERY is counted: SUBQUERY(…).@count".into(), at));
        }
        Ok(Path {
            segments: collection.segments,
            subquery: Some(Box::new((format!("${var}"), predicate))),
            entries: None,
            aggregate: Some(Aggregate::Count),
            span: self.span_from(start),
        })
    }

    /// The `.Dog.owner` of `@links.Dog.owner`, as the segment
    /// `@links.Dog.owner` (no property name holds `@` or `.`).
    fn links_segment(&mut self) -> Result<String, ParseError> {
        let mut names = Vec::new();
        for what in ["a type", "its link property"] {
            let at = self.offset();
            match (self.punct("."), self.next()) {
                (true, Some(Tok::Ident(name))) => names.push(name),
                _ => {
                    self.pos -= 1;
                    return Err((format!("@links needs .Type.property: expected {what}, found {}", self.found()), at));
                }
            }
        }
        Ok(format!("@links.{}", names.join(".")))
    }

    /// The `"key"]` of `prices["key"]`.
    fn dictionary_key(&mut self) -> Result<String, ParseError> {
        let at = self.offset();
        let Some(Tok::Str(key)) = self.next() else {
            self.pos -= 1;
            return Err((format!("expected a key in quotes after '[', found {}", self.found()), at));
        };
        if !self.punct("]") {
            return Err((format!("expected ']' after the key, found {}", self.found()), self.offset()));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_suffixes() {
        let q = parse("a == 1 OR b == 2 AND NOT c == 3 SORT(a DESC, b) LIMIT(5)").unwrap();
        let Expr::Or(parts) = &q.predicate else { panic!("{q:?}") };
        assert!(matches!(&parts[1], Expr::And(a) if matches!(a[1], Expr::Not(_))));
        assert_eq!(q.sort.len(), 2);
        assert!(!q.sort[0].1 && q.sort[1].1);
        assert_eq!(q.limit, Some(5));
    }

    #[test]
    fn in_and_between_keep_their_lists() {
        let q = parse("age IN {1, 2, 3} AND age BETWEEN {1, 10}").unwrap();
        let Expr::And(parts) = &q.predicate else { panic!() };
        assert!(
            matches!(&parts[0], Expr::Compare(c) if c.op == Op::In && matches!(&c.rhs, Operand::List(v, _) if v.len() == 3))
        );
        assert!(matches!(&parts[1], Expr::Compare(c) if c.op == Op::Between));
        assert!(parse("age BETWEEN {1}").unwrap_err().0.contains("two bounds"));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}a == 1{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&deep(MAX_NESTING)).is_ok());
        let (message, at) = parse(&deep(MAX_NESTING + 1)).unwrap_err();
        assert!(message.contains("nests more than 100 levels"), "{message}");
        assert_eq!(at, MAX_NESTING);
        // Far deeper than the stack would take: an error, not a crash.
        assert!(parse(&deep(1_000_000)).is_err());
        assert!(parse(&format!("{}a == 1", "NOT ".repeat(1_000_000))).is_err());
        assert!(parse(&format!("{}a == 1", "!".repeat(1_000_000))).is_err());
    }

    #[test]
    fn errors_point_at_the_token() {
        assert_eq!(parse("age >").unwrap_err().1, 5);
        assert_eq!(parse("age >> 3").unwrap_err().1, 5);
        assert_eq!(parse("age == 3 name").unwrap_err().1, 9);
        assert_eq!(parse("(age == 3").unwrap_err().1, 9);
        assert!(parse("age == 3 LIMIT(x)").unwrap_err().0.contains("LIMIT"));
    }

    #[test]
    fn nested_subqueries_count_against_the_nesting_limit() {
        let deep = format!("{}a == 1{}", "SUBQUERY(d, $x, ".repeat(200), ").@count > 0".repeat(200));
        assert!(parse(&deep).unwrap_err().0.contains("nests more than"));
    }

    #[test]
    fn paths_and_flags() {
        let q = parse("ANY owner.tags.@count > 1 && name BEGINSWITH[c] 'r'").unwrap();
        let Expr::And(parts) = &q.predicate else { panic!() };
        let Expr::Compare(c) = &parts[0] else { panic!() };
        let Operand::Path(p) = &c.lhs else { panic!() };
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.aggregate, Some(Aggregate::Count));
        assert!(matches!(&parts[1], Expr::Compare(c) if c.case_insensitive && c.op == Op::BeginsWith));
    }
}
