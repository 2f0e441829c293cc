//! Tokens of the query language, each with its byte span in the query.

use std::ops::Range;
use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{alt, opt};
use winnow::token::{one_of, take_while};
use winnow::Parser;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A name or keyword (keywords are recognised case-insensitively by the parser).
    Ident(String),
    /// `@count`, `@size`: the text after `@`.
    At(String),
    Int(i64),
    Double(f64),
    Str(String),
    /// `$n`
    Arg(usize),
    /// `$name`: a SUBQUERY's variable.
    Var(String),
    /// Operators and punctuation: `== != < <= > >= && || ! ( ) { } , . [ ]`.
    Punct(&'static str),
}

/// A token and where it stands (byte offsets).
pub(crate) type Spanned = (Tok, Range<usize>);

/// A lexing error: what went wrong and the byte offset.
pub(crate) type LexError = (String, usize);

/// Splits `query` into tokens.
pub(crate) fn tokenize(query: &str) -> Result<Vec<Spanned>, LexError> {
    let mut rest = query;
    let mut out = Vec::new();
    loop {
        let _ = multispace0::<_, winnow::error::ContextError>.parse_next(&mut rest);
        if rest.is_empty() {
            return Ok(out);
        }
        let start = query.len() - rest.len();
        let tok = token(&mut rest).map_err(|_| (describe(rest), start))?.map_err(|(m, _)| (m, start))?;
        out.push((tok, start..query.len() - rest.len()));
    }
}

fn describe(rest: &str) -> String {
    match rest.chars().next() {
        Some('"') | Some('\'') => "unterminated string".into(),
        Some(c) => format!("unexpected character '{c}'"),
        None => "unexpected end".into(),
    }
}

type Lexed = Result<Tok, LexError>;

fn token(input: &mut &str) -> winnow::Result<Lexed> {
    alt((
        number,
        string.map(|s| Ok(Tok::Str(s))),
        ('$', digit1)
            .take()
            .map(|t: &str| t[1..].parse().map(Tok::Arg).map_err(|_| ("argument number too large".into(), 0))),
        ('$', ident).map(|(_, i)| Ok(Tok::Var(i.to_owned()))),
        ('@', ident).map(|(_, i)| Ok(Tok::At(i.to_owned()))),
        ident.map(|i| Ok(Tok::Ident(i.to_owned()))),
        punct.map(|p| Ok(Tok::Punct(p))),
    ))
    .parse_next(input)
}

fn ident<'i>(input: &mut &'i str) -> winnow::Result<&'i str> {
    (one_of(|c: char| c.is_alphabetic() || c == '_'), take_while(0.., |c: char| c.is_alphanumeric() || c == '_'))
        .take()
        .parse_next(input)
}

fn number(input: &mut &str) -> winnow::Result<Lexed> {
    let text = (opt('-'), digit1, opt(('.', digit1)), opt((one_of(['e', 'E']), opt(one_of(['+', '-'])), digit1)))
        .take()
        .parse_next(input)?;
    let is_int = !text.contains(['.', 'e', 'E']);
    Ok(if is_int {
        text.parse().map(Tok::Int).map_err(|_| (format!("integer {text} does not fit in 64 bits"), 0))
    } else {
        text.parse().map(Tok::Double).map_err(|_| (format!("invalid number {text}"), 0))
    })
}

fn string(input: &mut &str) -> winnow::Result<String> {
    let quote = one_of(['"', '\'']).parse_next(input)?;
    let mut out = String::new();
    let mut chars = input.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, e)) => out.push(e),
                None => break,
            },
            c if c == quote => {
                *input = &input[i + 1..];
                return Ok(out);
            }
            c => out.push(c),
        }
    }
    Err(winnow::error::ContextError::new())
}

fn punct(input: &mut &str) -> winnow::Result<&'static str> {
    const PUNCT: [&str; 20] =
        ["==", "!=", "<>", "<=", ">=", "&&", "||", "=", "<", ">", "!", "(", ")", "{", "}", ",", ".", "[", "]", "*"];
    for p in PUNCT {
        if let Some(rest) = input.strip_prefix(p) {
            *input = rest;
            return Ok(match p {
                "=" => "==",
                "<>" => "!=",
                p => p,
            });
        }
    }
    Err(winnow::error::ContextError::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_spans() {
        let toks = tokenize("age >= -3.5 AND name == 'R\\'x' && $12 tags.@count").unwrap();
        let kinds: Vec<_> = toks.iter().map(|t| t.0.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::Ident("age".into()),
                Tok::Punct(">="),
                Tok::Double(-3.5),
                Tok::Ident("AND".into()),
                Tok::Ident("name".into()),
                Tok::Punct("=="),
                Tok::Str("R'x".into()),
                Tok::Punct("&&"),
                Tok::Arg(12),
                Tok::Ident("tags".into()),
                Tok::Punct("."),
                Tok::At("count".into()),
            ]
        );
        assert_eq!(toks[1].1, 4..6);
    }

    #[test]
    fn errors_have_offsets() {
        assert_eq!(tokenize("a == 'open").unwrap_err(), ("unterminated string".to_string(), 5));
        assert_eq!(tokenize("a # b").unwrap_err().1, 2);
    }
}
