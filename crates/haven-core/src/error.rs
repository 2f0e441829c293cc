//! The errors of the pure core. Each names the thing at fault.

/// A schema that cannot be used, naming the type and property at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("schema error{}: {message}", at(object_type, property))]
pub struct SchemaError {
    /// The object type at fault, if any.
    pub object_type: Option<String>,
    /// The property at fault, if any.
    pub property: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl SchemaError {
    pub(crate) fn new(ty: Option<&str>, prop: Option<&str>, message: impl Into<String>) -> Self {
        SchemaError { object_type: ty.map(str::to_owned), property: prop.map(str::to_owned), message: message.into() }
    }
}

fn at(ty: &Option<String>, prop: &Option<String>) -> String {
    match (ty, prop) {
        (Some(t), Some(p)) => format!(" in {t}.{p}"),
        (Some(t), None) => format!(" in {t}"),
        _ => String::new(),
    }
}

/// A value that does not fit the property it is written to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid value for {object_type}.{property}: {message}")]
pub struct ValueError {
    /// The object type written to.
    pub object_type: String,
    /// The property written to.
    pub property: String,
    /// What is wrong.
    pub message: String,
}

/// A query that cannot be parsed or does not fit the schema.
///
/// `column` is 1-based and counts characters of `query`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("query error at column {column}: {message}\n  {query}\n  {caret:>width$}", caret = "^", width = column)]
pub struct QueryError {
    /// The 1-based column (in characters) where the problem starts.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The query text.
    pub query: String,
}
