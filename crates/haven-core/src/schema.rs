//! Schemas: object types, their properties, the Realm-style JSON form and
//! the rules for what a schema change may do to an existing file.

use crate::error::{SchemaError, ValueError};
use crate::value::{parse_hex, Value};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, HashMap};

/// The type of a property's values (of its elements, for a collection).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PropertyType {
    /// `bool`
    Bool,
    /// `int`: i64
    Int,
    /// `double`: f64
    Double,
    /// `string`
    String,
    /// `data`: bytes
    Data,
    /// `date`: milliseconds since the Unix epoch
    Date,
    /// `objectId`: 12 bytes
    ObjectId,
    /// `uuid`: 16 bytes
    Uuid,
    /// `decimal128`: a decimal number with up to 34 significant digits,
    /// kept as written.
    Decimal128,
    /// A link to an object of the named type, stored as its primary key.
    Link(String),
    /// An object of the named embedded type, stored inside its parent
    /// (as a dictionary of its fields): it has no primary key, belongs to
    /// exactly one parent and goes with it.
    Embedded(String),
    /// `mixed`: any one value of the types above but links (always
    /// optional). Lists and dictionaries inside a mixed value, and links
    /// in one, are not supported yet.
    Mixed,
}

impl PropertyType {
    fn parse(name: &str) -> PropertyType {
        match name {
            "bool" => PropertyType::Bool,
            "int" => PropertyType::Int,
            "double" => PropertyType::Double,
            "string" => PropertyType::String,
            "data" => PropertyType::Data,
            "date" => PropertyType::Date,
            "objectId" => PropertyType::ObjectId,
            "uuid" => PropertyType::Uuid,
            "decimal128" => PropertyType::Decimal128,
            "mixed" => PropertyType::Mixed,
            other => PropertyType::Link(other.to_owned()),
        }
    }

    /// The name used in the JSON form (`"int"`, `"Dog"`, ...).
    pub fn name(&self) -> &str {
        match self {
            PropertyType::Bool => "bool",
            PropertyType::Int => "int",
            PropertyType::Double => "double",
            PropertyType::String => "string",
            PropertyType::Data => "data",
            PropertyType::Date => "date",
            PropertyType::ObjectId => "objectId",
            PropertyType::Uuid => "uuid",
            PropertyType::Decimal128 => "decimal128",
            PropertyType::Mixed => "mixed",
            PropertyType::Link(t) | PropertyType::Embedded(t) => t,
        }
    }

    fn can_be_primary_key(&self) -> bool {
        matches!(self, PropertyType::Int | PropertyType::String | PropertyType::ObjectId | PropertyType::Uuid)
    }
}

/// How many values a property holds, and how they are addressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Collection {
    /// One value (`int`).
    #[default]
    Single,
    /// An ordered list, addressed by index (`int[]`).
    List,
    /// Distinct values, unordered (`int<>`).
    Set,
    /// Values under string keys (`int{}`).
    Dictionary,
}

impl Collection {
    /// The suffix of the JSON form: `""`, `"[]"`, `"<>"` or `"{}"`.
    pub fn suffix(self) -> &'static str {
        match self {
            Collection::Single => "",
            Collection::List => "[]",
            Collection::Set => "<>",
            Collection::Dictionary => "{}",
        }
    }
}

/// One property of an object type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The property's name.
    pub name: String,
    /// The type of its values (elements, for a collection).
    pub ty: PropertyType,
    /// Whether a value (each element, for a collection) may be null.
    pub optional: bool,
    /// Whether it holds one value or a collection of them.
    pub collection: Collection,
    /// Whether a secondary index speeds up equality and range queries on it.
    pub indexed: bool,
}

impl Property {
    /// A required, unindexed, single-valued property.
    pub fn new(name: impl Into<String>, ty: PropertyType) -> Self {
        Property { name: name.into(), ty, optional: false, collection: Collection::Single, indexed: false }
            .collection_of(Collection::Single)
    }

    /// Makes it optional (may hold null).
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Makes it a list (of required elements, but for `mixed`, whose
    /// elements may always be null).
    pub fn list(self) -> Self {
        self.collection_of(Collection::List)
    }

    /// Makes it a set (of required elements, but for `mixed`).
    pub fn set(self) -> Self {
        self.collection_of(Collection::Set)
    }

    /// Makes it a dictionary with string keys (of required values, but for
    /// links and `mixed`, whose values may always be null, as in Realm).
    pub fn dictionary(self) -> Self {
        self.collection_of(Collection::Dictionary)
    }

    fn collection_of(mut self, collection: Collection) -> Self {
        self.collection = collection;
        // Which values may always be null, as in Realm.
        self.optional = match collection {
            Collection::Single => {
                matches!(self.ty, PropertyType::Mixed | PropertyType::Link(_) | PropertyType::Embedded(_))
            }
            Collection::Dictionary => matches!(self.ty, PropertyType::Mixed | PropertyType::Link(_)),
            Collection::List | Collection::Set => self.ty == PropertyType::Mixed,
        };
        self
    }

    /// Whether it holds a collection (a list, set or dictionary).
    pub fn is_collection(&self) -> bool {
        self.collection != Collection::Single
    }

    /// Whether it holds a list.
    pub fn is_list(&self) -> bool {
        self.collection == Collection::List
    }

    /// Gives it a secondary index.
    pub fn indexed(mut self) -> Self {
        self.indexed = true;
        self
    }

    /// The type as written in the JSON form: `int`, `int?`, `string[]`,
    /// `Dog`, `int?{}`, `string<>`.
    pub fn type_string(&self) -> String {
        // Where null is always allowed (a mixed value, a single link, a
        // dictionary's link), Realm writes no `?`.
        let always_optional = self.ty == PropertyType::Mixed
            || (matches!(self.ty, PropertyType::Link(_) | PropertyType::Embedded(_))
                && matches!(self.collection, Collection::Single | Collection::Dictionary));
        let q = if self.optional && !always_optional { "?" } else { "" };
        format!("{}{q}{}", self.ty.name(), self.collection.suffix())
    }

    /// The value a new object gets when this property is not given, or
    /// `None` when it is required.
    pub fn default_value(&self) -> Option<Value> {
        match self.collection {
            Collection::List => Some(Value::List(Vec::new())),
            Collection::Set => Some(Value::Set(Vec::new())),
            Collection::Dictionary => Some(Value::Dictionary(Default::default())),
            Collection::Single if self.optional => Some(Value::Null),
            Collection::Single => None,
        }
    }

    /// What an object shows for this property when the value it holds
    /// does not fit it, or it holds none although the property is
    /// required (data written before a breaking schema change): the
    /// default, or for a required property its type's zero (`0`, `""`,
    /// `false`, empty data, the epoch, all-zero ids), as Realm fills a
    /// required property added by a migration.
    ///
    /// ```
    /// use haven_core::{Property, PropertyType, Value};
    /// assert_eq!(Property::new("age", PropertyType::Int).fallback_value(), Value::Int(0));
    /// assert_eq!(Property::new("age", PropertyType::Int).optional().fallback_value(), Value::Null);
    /// ```
    pub fn fallback_value(&self) -> Value {
        self.default_value().unwrap_or(match self.ty {
            PropertyType::Bool => Value::Bool(false),
            PropertyType::Int => Value::Int(0),
            PropertyType::Double => Value::Double(0.0),
            PropertyType::String => Value::String(String::new()),
            PropertyType::Data => Value::Data(Vec::new()),
            PropertyType::Date => Value::Date(0),
            PropertyType::ObjectId => Value::ObjectId([0; 12]),
            PropertyType::Uuid => Value::Uuid([0; 16]),
            PropertyType::Decimal128 => Value::Decimal128(crate::Decimal128::from_int(0)),
            PropertyType::Link(_) | PropertyType::Embedded(_) | PropertyType::Mixed => Value::Null,
        })
    }
}

/// A computed property: the objects of `object_type` whose link property
/// `property` points at this object (Realm's `linkingObjects`). It is not
/// stored: reads and queries find the links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlink {
    /// The computed property's name.
    pub name: String,
    /// The type whose objects link here.
    pub object_type: String,
    /// Their link property (a link, a list or a set of links).
    pub property: String,
}

/// An object type: a name, a primary key and properties.
///
/// ```
/// use haven_core::{ObjectSchema, PropertyType};
/// let dog = ObjectSchema::new("Dog")
///     .primary_key("_id", PropertyType::Int)
///     .property("name", PropertyType::String)
///     .optional("age", PropertyType::Int)
///     .indexed("lastUpdated", PropertyType::Int)
///     .list("tags", PropertyType::String)
///     .set("colors", PropertyType::String)
///     .dictionary("scores", PropertyType::Int)
///     .optional("owner", PropertyType::Link("Person".into()));
/// assert_eq!(dog.properties().len(), 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSchema {
    name: String,
    primary_key: Option<String>,
    embedded: bool,
    properties: Vec<Property>,
    backlinks: Vec<Backlink>,
}

impl ObjectSchema {
    /// An object type with no properties yet.
    pub fn new(name: impl Into<String>) -> Self {
        ObjectSchema {
            name: name.into(),
            primary_key: None,
            embedded: false,
            properties: Vec::new(),
            backlinks: Vec::new(),
        }
    }

    /// Adds the primary key property.
    pub fn primary_key(mut self, name: &str, ty: PropertyType) -> Self {
        self.primary_key = Some(name.to_owned());
        self.with_property(Property::new(name, ty))
    }

    /// Adds a required property.
    pub fn property(self, name: &str, ty: PropertyType) -> Self {
        self.with_property(Property::new(name, ty))
    }

    /// Adds an optional property.
    pub fn optional(self, name: &str, ty: PropertyType) -> Self {
        self.with_property(Property::new(name, ty).optional())
    }

    /// Adds a required, indexed property.
    pub fn indexed(self, name: &str, ty: PropertyType) -> Self {
        self.with_property(Property::new(name, ty).indexed())
    }

    /// Adds a list property.
    pub fn list(self, name: &str, ty: PropertyType) -> Self {
        self.with_property(Property::new(name, ty).list())
    }

    /// Adds a set property.
    pub fn set(self, name: &str, ty: PropertyType) -> Self {
        self.with_property(Property::new(name, ty).set())
    }

    /// Adds a dictionary property.
    pub fn dictionary(self, name: &str, ty: PropertyType) -> Self {
        self.with_property(Property::new(name, ty).dictionary())
    }

    /// Adds any property.
    pub fn with_property(mut self, property: Property) -> Self {
        self.properties.push(property);
        self
    }

    /// Adds a computed property `name`: the objects of `object_type` whose
    /// link `property` points at this object.
    pub fn linking_objects(mut self, name: &str, object_type: &str, property: &str) -> Self {
        let backlink = Backlink { name: name.into(), object_type: object_type.into(), property: property.into() };
        self.backlinks.push(backlink);
        self
    }

    /// The computed `linkingObjects` properties.
    pub fn backlinks(&self) -> &[Backlink] {
        &self.backlinks
    }

    /// A computed `linkingObjects` property by name.
    pub fn backlink_named(&self, name: &str) -> Option<&Backlink> {
        self.backlinks.iter().find(|b| b.name == name)
    }

    /// Makes it an embedded type: no primary key, its objects stored
    /// inside the one object that holds each.
    pub fn embedded(mut self) -> Self {
        self.embedded = true;
        self
    }

    /// Whether it is an embedded type.
    pub fn is_embedded(&self) -> bool {
        self.embedded
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The properties, in storage order.
    pub fn properties(&self) -> &[Property] {
        &self.properties
    }

    /// The position of a property in storage order.
    pub fn property_index(&self, name: &str) -> Option<usize> {
        self.properties.iter().position(|p| p.name == name)
    }

    /// A property by name.
    pub fn property_named(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// The primary key's name.
    pub fn primary_key_name(&self) -> &str {
        self.primary_key.as_deref().unwrap_or("")
    }

    /// The primary key's position (valid once the schema is validated).
    pub fn primary_key_index(&self) -> usize {
        self.property_index(self.primary_key_name()).unwrap_or(0)
    }

    /// What identifies the type's objects: whether it is embedded, and
    /// its primary key property (none for an embedded type).
    fn identity(&self) -> (bool, Option<&Property>) {
        (self.embedded, self.primary_key.as_deref().and_then(|pk| self.property_named(pk)))
    }

    /// The primary key property.
    pub fn primary_key_property(&self) -> &Property {
        &self.properties[self.primary_key_index()]
    }

    /// Checks each backlink: a name of its own, and a link property of
    /// its type that points at this type.
    fn validate_backlinks(&self, types: &[ObjectSchema]) -> Result<(), SchemaError> {
        for b in &self.backlinks {
            let err = |m: String| Err(SchemaError::new(Some(&self.name), Some(&b.name), m));
            if !valid_name(&b.name) {
                return err("a property name must be non-empty and use only letters, digits and '_'".into());
            }
            if self.property_named(&b.name).is_some() || self.backlinks.iter().filter(|o| o.name == b.name).count() > 1
            {
                return err("the property is declared twice".into());
            }
            let Some(source) = types.iter().find(|t| t.name == b.object_type) else {
                return err(format!("linkingObjects of unknown type '{}'", b.object_type));
            };
            match source.property_named(&b.property) {
                Some(p) if p.ty == PropertyType::Link(self.name.clone()) && p.collection != Collection::Dictionary => {}
                Some(p) => {
                    return err(format!(
                        "linkingObjects needs {}.{} to be a link, list or set of {}, but it is '{}'",
                        b.object_type,
                        b.property,
                        self.name,
                        p.type_string()
                    ))
                }
                None => return err(format!("linkingObjects of unknown property {}.{}", b.object_type, b.property)),
            }
        }
        Ok(())
    }

    fn validate(&self, type_names: &HashMap<&str, usize>) -> Result<(), SchemaError> {
        let t = Some(self.name.as_str());
        let err = |p: Option<&str>, m: String| Err(SchemaError::new(t, p, m));
        if !valid_name(&self.name) {
            return err(None, "a type name must be non-empty and use only letters, digits and '_'".into());
        }
        if self.embedded && self.primary_key.is_some() {
            return err(
                None,
                "an embedded type has no primary key: its objects belong to the object that holds them".into(),
            );
        }
        if self.embedded && self.properties.is_empty() {
            return err(None, "an embedded type needs at least one property".into());
        }
        if !self.embedded && self.primary_key.is_none() {
            return err(None, "no primary key: every Haven type needs one (add \"primaryKey\": \"_id\"); objects are identified by it locally and in sync, or mark it \"embedded\": true".into());
        }
        let mut seen = HashMap::new();
        for p in &self.properties {
            let pn = Some(p.name.as_str());
            if !valid_name(&p.name) {
                return err(pn, "a property name must be non-empty and use only letters, digits and '_'".into());
            }
            if seen.insert(p.name.as_str(), ()).is_some() {
                return err(pn, "the property is declared twice".into());
            }
            if let PropertyType::Link(target) = &p.ty {
                if !type_names.contains_key(target.as_str()) {
                    return err(
                        pn,
                        format!("unknown type '{target}' (not a property type, nor an object type of this schema)"),
                    );
                }
                if p.indexed {
                    return err(pn, "links cannot be indexed".into());
                }
            }
            if p.is_collection() && p.indexed {
                return err(pn, "collections (lists, sets, dictionaries) cannot be indexed".into());
            }
            if matches!(p.ty, PropertyType::Mixed | PropertyType::Decimal128) && p.indexed {
                return err(pn, format!("{} properties cannot be indexed yet", p.ty.name()));
            }
            check_embedded_use(self, p).map_err(|m| SchemaError::new(t, pn, m))?;
        }
        let Some(pk) = &self.primary_key else { return Ok(()) };
        let Some(pkp) = self.property_named(pk) else {
            return err(Some(pk), "the primary key is not one of the type's properties".into());
        };
        if !pkp.ty.can_be_primary_key() || pkp.is_collection() || pkp.optional {
            return err(
                Some(pk),
                format!("a primary key must be a required int, string, objectId or uuid, not '{}'", pkp.type_string()),
            );
        }
        Ok(())
    }
}

/// What an embedded property, or a property of an embedded type, may not
/// be (yet).
fn check_embedded_use(owner: &ObjectSchema, p: &Property) -> Result<(), String> {
    let embedded = matches!(p.ty, PropertyType::Embedded(_));
    match p.collection {
        Collection::Set if embedded => {
            Err("a set of embedded objects is not allowed: an embedded object has no identity to be distinct by".into())
        }
        Collection::Dictionary if embedded => Err(format!(
            "a dictionary of embedded objects is not supported yet: use one (\"{0}?\") or a list (\"{0}[]\")",
            p.ty.name()
        )),
        _ if embedded && p.indexed => Err("an embedded object cannot be indexed".into()),
        _ if owner.embedded && (embedded || p.is_collection()) => {
            Err("an embedded type's properties are single values and links, not yet collections or embedded objects"
                .into())
        }
        _ => Ok(()),
    }
}

/// Backlinks are computed, so any may come or go: `want`'s, and with
/// `keep_missing` also those of `have` that `want` lacks.
fn merge_backlinks(have: &mut Vec<Backlink>, want: &[Backlink], keep_missing: bool) {
    if !keep_missing {
        have.clear();
    }
    have.retain(|b| !want.iter().any(|w| w.name == b.name));
    have.extend(want.iter().cloned());
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// A validated list of object types.
///
/// ```
/// use haven_core::Schema;
/// let schema = Schema::from_json(r#"[
///   {"name":"Dog","primaryKey":"_id",
///    "properties":{"_id":"int","name":"string","age":"int?","tags":"string[]",
///                  "owner":"Person","score":{"type":"double","optional":true,"indexed":true}}},
///   {"name":"Person","primaryKey":"_id","properties":{"_id":"uuid","name":"string"}}
/// ]"#).unwrap();
/// assert_eq!(schema.object_type("Dog").unwrap().properties().len(), 6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    types: Vec<ObjectSchema>,
}

impl Schema {
    /// Validates and builds a schema. A property naming an embedded type
    /// holds an embedded object ([`PropertyType::Embedded`]).
    pub fn new(mut types: Vec<ObjectSchema>) -> Result<Schema, SchemaError> {
        let embedded: Vec<String> = types.iter().filter(|t| t.embedded).map(|t| t.name.clone()).collect();
        for p in types.iter_mut().flat_map(|t| t.properties.iter_mut()) {
            if let PropertyType::Link(target) = &p.ty {
                if embedded.contains(target) {
                    p.ty = PropertyType::Embedded(target.clone());
                    p.optional |= p.collection == Collection::Single;
                }
            }
        }
        let mut names = HashMap::new();
        for (i, t) in types.iter().enumerate() {
            if names.insert(t.name.as_str(), i).is_some() {
                return Err(SchemaError::new(Some(&t.name), None, "the type is declared twice"));
            }
        }
        for t in &types {
            t.validate(&names)?;
            t.validate_backlinks(&types)?;
        }
        Ok(Schema { types })
    }

    /// Parses the Realm-style JSON form: an array of
    /// `{"name", "primaryKey", "properties": {name: type}}` where a type is a
    /// string (`"int"`, `"int?"`, `"string[]"`, `"Dog"`, `"Dog[]"`) or an object
    /// (`{"type": "int", "optional": true, "indexed": true}`,
    /// `{"type": "list", "objectType": "string"}`).
    pub fn from_json(text: &str) -> Result<Schema, SchemaError> {
        let json: Json =
            serde_json::from_str(text).map_err(|e| SchemaError::new(None, None, format!("not valid JSON: {e}")))?;
        let items = match json {
            Json::Array(items) => items,
            obj @ Json::Object(_) => vec![obj],
            _ => return Err(SchemaError::new(None, None, "expected an array of object types")),
        };
        let types = items.iter().map(type_from_json).collect::<Result<Vec<_>, _>>()?;
        Schema::new(types)
    }

    /// The JSON form, as accepted by [`Schema::from_json`].
    pub fn to_json(&self) -> String {
        let types: Vec<Json> = self
            .types
            .iter()
            .map(|t| {
                let mut props = Map::new();
                for p in &t.properties {
                    let ty = if p.indexed {
                        json!({"type": p.type_string(), "indexed": true})
                    } else {
                        Json::String(p.type_string())
                    };
                    props.insert(p.name.clone(), ty);
                }
                for b in &t.backlinks {
                    let spec = json!({"type": "linkingObjects", "objectType": b.object_type, "property": b.property});
                    props.insert(b.name.clone(), spec);
                }
                match t.embedded {
                    true => json!({"name": t.name, "embedded": true, "properties": props}),
                    false => json!({"name": t.name, "primaryKey": t.primary_key, "properties": props}),
                }
            })
            .collect();
        Json::Array(types).to_string()
    }

    /// The object types.
    pub fn types(&self) -> &[ObjectSchema] {
        &self.types
    }

    /// An object type by name.
    pub fn object_type(&self, name: &str) -> Option<&ObjectSchema> {
        self.types.iter().find(|t| t.name == name)
    }

    /// Checks that `requested` can open a file whose schema is `self`, and
    /// returns the schema to store: the existing types and properties in
    /// their storage order, with what `requested` adds appended. Allowed:
    /// new types, new optional or list properties, adding or removing an
    /// index. A type the request omits is kept. Anything else is an error
    /// that names the change.
    pub fn evolve(&self, requested: &Schema) -> Result<Schema, SchemaError> {
        self.merged(requested, false)
    }

    /// The schema a file takes when its app's schema replaces this one in
    /// a way [`Schema::evolve`] refuses (a synced file starting again from
    /// the server's state): `requested` as it is, and the types of `self`
    /// it omits, kept as `evolve` keeps them. `requested` then evolves it
    /// without change.
    ///
    /// ```
    /// use haven_core::Schema;
    /// let file = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","age":"int?"}},
    ///     {"name":"Cat","primaryKey":"_id","properties":{"_id":"int"}}]"#).unwrap();
    /// let app = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","age":"string?"}}]"#).unwrap();
    /// assert!(file.evolve(&app).is_err());
    /// let next = file.superseded_by(&app).unwrap();
    /// assert_eq!(next.evolve(&app).unwrap(), next);
    /// assert!(next.object_type("Cat").is_some());
    /// ```
    pub fn superseded_by(&self, requested: &Schema) -> Result<Schema, SchemaError> {
        let kept = self.types.iter().filter(|t| requested.object_type(&t.name).is_none());
        Schema::new(requested.types.iter().chain(kept).cloned().collect())
    }

    /// The union of two schemas that agree where they overlap: what the
    /// sync server keeps as clients with older and newer schemas bind. A
    /// property one side lacks is kept; the rules for additions are
    /// [`Schema::evolve`]'s.
    ///
    /// ```
    /// use haven_core::Schema;
    /// let old = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string"}}]"#).unwrap();
    /// let new = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","age":"int?"}}]"#).unwrap();
    /// let both = old.union(&new).unwrap();
    /// assert_eq!(both.object_type("Dog").unwrap().properties().len(), 3);
    /// ```
    pub fn union(&self, other: &Schema) -> Result<Schema, SchemaError> {
        self.merged(other, true)
    }

    /// Combines two schemas whatever their conflicts, for a server whose
    /// operator changes the schema: every type and property of either
    /// side, and where both define a property (or a type's primary key)
    /// differently, `other`'s definition if `other_wins`, else `self`'s.
    /// Returns the combined schema and each conflict, described; a new
    /// required property in an existing type counts as one (objects that
    /// lack it no longer fit). Fails if the result is not a valid schema (a
    /// link to a type whose primary key changed type, say).
    ///
    /// ```
    /// use haven_core::Schema;
    /// let old = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","age":"int?"}}]"#).unwrap();
    /// let new = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","age":"string?"}}]"#).unwrap();
    /// let (combined, breaking) = old.combine(&new, true)?;
    /// assert_eq!(combined, new);
    /// assert_eq!(breaking, vec!["Dog.age: int? becomes string?".to_string()]);
    /// assert_eq!(old.combine(&new, false)?, (old.clone(), breaking));
    /// # Ok::<(), haven_core::SchemaError>(())
    /// ```
    pub fn combine(&self, other: &Schema, other_wins: bool) -> Result<(Schema, Vec<String>), SchemaError> {
        let mut types = self.types.clone();
        let mut conflicts = Vec::new();
        for theirs in &other.types {
            let Some(ours) = types.iter_mut().find(|t| t.name == theirs.name) else {
                types.push(theirs.clone());
                continue;
            };
            if ours.identity() != theirs.identity() {
                conflicts.push(format!("{}: the primary key changes", theirs.name));
                if other_wins {
                    *ours = theirs.clone();
                }
                continue;
            }
            for p in &theirs.properties {
                match ours.properties.iter_mut().find(|o| o.name == p.name) {
                    Some(o) if o.ty != p.ty || o.optional != p.optional || o.collection != p.collection => {
                        conflicts.push(format!(
                            "{}.{}: {} becomes {}",
                            theirs.name,
                            p.name,
                            o.type_string(),
                            p.type_string()
                        ));
                        if other_wins {
                            *o = p.clone();
                        }
                    }
                    Some(o) => o.indexed = if other_wins { p.indexed } else { o.indexed },
                    None if p.default_value().is_none() => {
                        // Objects that lack it would no longer fit.
                        conflicts.push(format!("{}.{}: a new required property", theirs.name, p.name));
                        if other_wins {
                            ours.properties.push(p.clone());
                        }
                    }
                    None => ours.properties.push(p.clone()),
                }
            }
            merge_backlinks(&mut ours.backlinks, &theirs.backlinks, true);
        }
        Ok((Schema::new(types)?, conflicts))
    }

    fn merged(&self, requested: &Schema, keep_missing: bool) -> Result<Schema, SchemaError> {
        let mut merged = self.types.clone();
        for want in &requested.types {
            let Some(have) = merged.iter_mut().find(|t| t.name == want.name) else {
                merged.push(want.clone());
                continue;
            };
            let t = Some(want.name.as_str());
            if have.embedded != want.embedded {
                let message = "the type changed between embedded and not; that is a breaking change (a new type)";
                return Err(SchemaError::new(t, None, message));
            }
            if have.primary_key != want.primary_key {
                return Err(SchemaError::new(
                    t,
                    None,
                    format!(
                        "the primary key changed from '{}' to '{}'; changing a primary key needs a new database",
                        have.primary_key_name(),
                        want.primary_key_name()
                    ),
                ));
            }
            for old in &have.properties {
                if !keep_missing && want.property_named(&old.name).is_none() {
                    return Err(SchemaError::new(t, Some(&old.name),
                        "the property is in the file but not in the schema; removing a property is a breaking change (keep it in the schema)"));
                }
            }
            for p in &want.properties {
                match have.properties.iter_mut().find(|o| o.name == p.name) {
                    Some(old) if old.ty != p.ty || old.optional != p.optional || old.collection != p.collection => {
                        return Err(SchemaError::new(
                            t,
                            Some(&p.name),
                            format!(
                            "the property changed from '{}' to '{}'; changing a property's type is a breaking change",
                            old.type_string(), p.type_string()),
                        ));
                    }
                    Some(old) => old.indexed = p.indexed,
                    None if p.default_value().is_none() => {
                        return Err(SchemaError::new(t, Some(&p.name),
                            "a new required property cannot be added to an existing type; make it optional ('?') or a collection (a list, set or dictionary)"));
                    }
                    None => have.properties.push(p.clone()),
                }
            }
            merge_backlinks(&mut have.backlinks, &want.backlinks, keep_missing);
        }
        Schema::new(merged)
    }

    /// Converts a loosely typed value (from JSON or an argument) to what the
    /// property stores, or says why it does not fit.
    pub fn coerce(&self, ty: &ObjectSchema, prop: &Property, value: Value) -> Result<Value, ValueError> {
        let fail = |message: String| ValueError { object_type: ty.name.clone(), property: prop.name.clone(), message };
        let elements = |items: Vec<Value>| -> Result<Vec<Value>, ValueError> {
            items.into_iter().enumerate().map(|(i, v)| self.coerce_list_element(ty, prop, i, v)).collect()
        };
        match (prop.collection, value) {
            (Collection::Single, value) => self.coerce_element(prop, value).map_err(fail),
            (Collection::List, Value::List(items)) => elements(items).map(Value::List),
            (Collection::Set, Value::List(items) | Value::Set(items)) => {
                elements(items).map(|items| Value::Set(crate::value::canonical_set(items)))
            }
            (Collection::Dictionary, Value::Dictionary(entries)) => entries
                .into_iter()
                .map(|(key, v)| Ok((key.clone(), self.coerce_dictionary_value(ty, prop, &key, v)?)))
                .collect::<Result<_, ValueError>>()
                .map(Value::Dictionary),
            (collection, other) => {
                let what = match collection {
                    Collection::Dictionary => "a dictionary (a JSON object) of",
                    Collection::Set => "a set (an array) of",
                    _ => "a list of",
                };
                Err(fail(format!("expected {what} {}, got {}", prop.ty.name(), other.kind())))
            }
        }
    }

    /// Converts a value to what an element of set property `prop` stores,
    /// or says why it does not fit.
    pub fn coerce_set_element(&self, ty: &ObjectSchema, prop: &Property, value: Value) -> Result<Value, ValueError> {
        self.coerce_element(prop, value).map_err(|message| ValueError {
            object_type: ty.name.clone(),
            property: prop.name.clone(),
            message,
        })
    }

    /// Converts a value to what dictionary property `prop` stores under
    /// `key`, or says why the key or the value does not fit, naming the key.
    ///
    /// ```
    /// use haven_core::Schema;
    /// let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","scores":"int{}"}}]"#).unwrap();
    /// let dog = schema.object_type("Dog").unwrap();
    /// let scores = dog.property_named("scores").unwrap();
    /// let err = schema.coerce_dictionary_value(dog, scores, "a.b", 1.into()).unwrap_err();
    /// assert!(err.to_string().contains("key \"a.b\": a dictionary key cannot contain '.'"), "{err}");
    /// ```
    pub fn coerce_dictionary_value(
        &self,
        ty: &ObjectSchema,
        prop: &Property,
        key: &str,
        value: Value,
    ) -> Result<Value, ValueError> {
        let fail = |message: String| ValueError {
            object_type: ty.name.clone(),
            property: prop.name.clone(),
            message: format!("at key {key:?}: {message}"),
        };
        check_dictionary_key(key).map_err(|m| fail(m.into()))?;
        self.coerce_element(prop, value).map_err(fail)
    }

    /// Converts a value to what an element of list property `prop` stores,
    /// or says why it does not fit, naming the element's `index`.
    ///
    /// ```
    /// use haven_core::Schema;
    /// let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","tags":"string[]"}}]"#).unwrap();
    /// let dog = schema.object_type("Dog").unwrap();
    /// let tags = dog.property_named("tags").unwrap();
    /// let err = schema.coerce_list_element(dog, tags, 2, 7.into()).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid value for Dog.tags: at index 2: expected string, got int");
    /// ```
    pub fn coerce_list_element(
        &self,
        ty: &ObjectSchema,
        prop: &Property,
        index: usize,
        value: Value,
    ) -> Result<Value, ValueError> {
        self.coerce_element(prop, value).map_err(|message| ValueError {
            object_type: ty.name.clone(),
            property: prop.name.clone(),
            message: format!("at index {index}: {message}"),
        })
    }

    fn coerce_element(&self, prop: &Property, value: Value) -> Result<Value, String> {
        if value.is_null() {
            // A list or set of objects (linked or embedded) holds objects only.
            let object_element = prop.is_collection()
                && prop.collection != Collection::Dictionary
                && matches!(prop.ty, PropertyType::Link(_) | PropertyType::Embedded(_));
            return match (prop.optional, object_element) {
                (true, false) => Ok(Value::Null),
                (_, true) => Err(format!("null is not allowed: the elements of '{}' are objects", prop.type_string())),
                (false, false) => {
                    Err(format!("null is not allowed: the property is '{}' (not optional)", prop.type_string()))
                }
            };
        }
        let ty = match &prop.ty {
            PropertyType::Link(target) => match self.object_type(target) {
                Some(t) => &t.primary_key_property().ty,
                None => return Err(format!("unknown link target type '{target}'")),
            },
            PropertyType::Embedded(target) => return self.coerce_embedded(target, value),
            ty => ty,
        };
        coerce_scalar(ty, value)
    }

    /// An embedded object's fields, each checked against its type, with
    /// the defaults of those not given.
    fn coerce_embedded(&self, target: &str, value: Value) -> Result<Value, String> {
        let ty = self.object_type(target).ok_or_else(|| format!("unknown embedded type '{target}'"))?;
        let Value::Dictionary(mut given) = value else {
            return Err(format!("expected an embedded {target} (an object of its fields), got {}", value.kind()));
        };
        if let Some(unknown) = given.keys().find(|k| ty.property_named(k).is_none()) {
            return Err(format!("{target} has no property '{unknown}'"));
        }
        // Fields not given stay absent (reads show their defaults:
        // `with_embedded_defaults`), so that a write from an app whose
        // schema lacks a field added since is stored as it was sent.
        let mut fields = BTreeMap::new();
        for p in ty.properties() {
            match given.remove(&p.name) {
                Some(v) => {
                    let v = self.coerce_element(p, v).map_err(|m| format!("at field \"{}\": {m}", p.name))?;
                    fields.insert(p.name.clone(), v);
                }
                None if p.default_value().is_none() => {
                    return Err(format!("field \"{}\" ('{}') is required", p.name, p.type_string()))
                }
                None => {}
            }
        }
        Ok(Value::Dictionary(fields))
    }

    /// An embedded object (or list of them) of type `target` as apps read
    /// it: every field of the type, those it does not hold with their
    /// defaults.
    pub fn with_embedded_defaults(&self, target: &str, value: Value) -> Value {
        let Some(ty) = self.object_type(target) else { return value };
        let fill = |mut fields: BTreeMap<String, Value>| {
            for p in ty.properties() {
                fields.entry(p.name.clone()).or_insert_with(|| p.fallback_value());
            }
            Value::Dictionary(fields)
        };
        match value {
            Value::Dictionary(fields) => fill(fields),
            Value::List(items) => Value::List(
                items.into_iter().map(|item| if let Value::Dictionary(f) = item { fill(f) } else { item }).collect(),
            ),
            other => other,
        }
    }

    /// Converts a value to what field `field` of embedded property `prop`
    /// stores (of its element `index`, for a list of embedded objects), or
    /// says why the field or the value does not fit.
    pub fn coerce_embedded_field(
        &self,
        ty: &ObjectSchema,
        prop: &Property,
        index: Option<usize>,
        field: &str,
        value: Value,
    ) -> Result<Value, ValueError> {
        match index {
            Some(i) => self.embedded_field(
                ty,
                prop,
                Collection::List,
                format!("at index {i}, field \"{field}\""),
                field,
                value,
            ),
            None => self.embedded_field(ty, prop, Collection::Single, format!("at field \"{field}\""), field, value),
        }
    }

    /// [`coerce_embedded_field`](Self::coerce_embedded_field) of an element
    /// named by identity, not index (an uploaded field edit).
    pub(crate) fn coerce_element_field(
        &self,
        ty: &ObjectSchema,
        prop: &Property,
        field: &str,
        value: Value,
    ) -> Result<Value, ValueError> {
        self.embedded_field(ty, prop, Collection::List, format!("in an element, at field \"{field}\""), field, value)
    }

    /// Converts a value for field `field` of the embedded objects of `prop`,
    /// which must be `collection` of them; errors say `at` where.
    fn embedded_field(
        &self,
        ty: &ObjectSchema,
        prop: &Property,
        collection: Collection,
        at: String,
        field: &str,
        value: Value,
    ) -> Result<Value, ValueError> {
        let fail = |message: String| ValueError {
            object_type: ty.name.clone(),
            property: prop.name.clone(),
            message: format!("{at}: {message}"),
        };
        let target = match &prop.ty {
            PropertyType::Embedded(target) if prop.collection == collection => target,
            _ => {
                let expected = match collection {
                    Collection::List => "a list of embedded objects",
                    _ => "an embedded object",
                };
                return Err(fail(format!("'{}' is not {expected}", prop.type_string())));
            }
        };
        let embedded = self.object_type(target).ok_or_else(|| fail(format!("unknown embedded type '{target}'")))?;
        let p = embedded.property_named(field).ok_or_else(|| fail(format!("{target} has no such property")))?;
        self.coerce_element(p, value).map_err(fail)
    }
}

/// Why a dictionary key cannot be stored, if it cannot: the query
/// language addresses entries as `prices["key"]` and paths with `.`, and
/// Realm reserves keys that start with `$`.
pub(crate) fn check_dictionary_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        Err("a dictionary key cannot be empty")
    } else if key.contains('.') {
        Err("a dictionary key cannot contain '.'")
    } else if key.starts_with('$') {
        Err("a dictionary key cannot start with '$'")
    } else if key.contains('\0') {
        Err("a dictionary key cannot contain a NUL character")
    } else {
        Ok(())
    }
}

fn coerce_scalar(ty: &PropertyType, value: Value) -> Result<Value, String> {
    let kind = value.kind();
    let converted = match (ty, value) {
        (PropertyType::Bool, v @ Value::Bool(_)) => Some(v),
        (PropertyType::Int, v @ Value::Int(_)) => Some(v),
        (PropertyType::Int, Value::Double(d)) if d.fract() == 0.0 && d.abs() < 9.0e15 => Some(Value::Int(d as i64)),
        // NaN equals nothing, not even itself: it could be neither found nor sorted.
        (PropertyType::Double, Value::Double(d)) if d.is_nan() => return Err("NaN is not a storable double".into()),
        // -0.0 == 0.0, so both must have one key in an index.
        (PropertyType::Double, Value::Double(d)) => Some(Value::Double(if d == 0.0 { 0.0 } else { d })),
        (PropertyType::Double, Value::Int(i)) => Some(Value::Double(i as f64)),
        (PropertyType::String, v @ Value::String(_)) => Some(v),
        (PropertyType::Data, v @ Value::Data(_)) => Some(v),
        (PropertyType::Data, Value::List(items)) => items
            .iter()
            .map(|v| v.as_int().and_then(|i| u8::try_from(i).ok()))
            .collect::<Option<Vec<u8>>>()
            .map(Value::Data),
        (PropertyType::Date, v @ Value::Date(_)) => Some(v),
        (PropertyType::Date, Value::Int(i)) => Some(Value::Date(i)),
        (PropertyType::ObjectId, v @ Value::ObjectId(_)) => Some(v),
        (PropertyType::ObjectId, Value::String(s)) => {
            return parse_hex::<12>(&s).map(Value::ObjectId).ok_or(format!("'{s}' is not an objectId (24 hex digits)"))
        }
        (PropertyType::Uuid, v @ Value::Uuid(_)) => Some(v),
        (PropertyType::Uuid, Value::String(s)) => {
            return parse_hex::<16>(&s).map(Value::Uuid).ok_or(format!("'{s}' is not a UUID"))
        }
        (PropertyType::Decimal128, v @ Value::Decimal128(_)) => Some(v),
        (PropertyType::Decimal128, Value::Int(i)) => Some(Value::Decimal128(crate::Decimal128::from_int(i))),
        // A double's shortest exact text: 0.1 becomes 0.1, not 0.1000000000000000055….
        (PropertyType::Decimal128, Value::Double(d)) if d.is_finite() => {
            return format!("{d:?}").parse().map(Value::Decimal128).map_err(|e: crate::NotADecimal| e.to_string())
        }
        (PropertyType::Decimal128, Value::String(s)) => {
            return s.parse().map(Value::Decimal128).map_err(|e: crate::NotADecimal| e.to_string())
        }
        (PropertyType::Mixed, v @ (Value::List(_) | Value::Set(_) | Value::Dictionary(_))) => {
            return Err(format!("a mixed value is one value: a {} inside mixed is not supported yet", v.kind()))
        }
        (PropertyType::Mixed, Value::Double(d)) if d.is_nan() => return Err("NaN is not a storable double".into()),
        (PropertyType::Mixed, Value::Double(d)) => Some(Value::Double(if d == 0.0 { 0.0 } else { d })),
        (PropertyType::Mixed, v) => Some(v),
        _ => None,
    };
    converted.ok_or_else(|| format!("expected {}, got {kind}", ty.name()))
}

/// Converts JSON to a loosely typed [`Value`]: numbers become `Int` when
/// integral, strings `String`, arrays `List`, objects `Dictionary`. An
/// object inside an object is not a value (a nested object is a link
/// written inline) and returns `None`.
pub fn value_from_json(json: &Json) -> Option<Value> {
    Some(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Double(n.as_f64()?),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(value_from_json).collect::<Option<_>>()?),
        Json::Object(entries) => Value::Dictionary(
            entries
                .iter()
                .map(|(k, v)| match v {
                    Json::Object(_) => None,
                    v => Some((k.clone(), value_from_json(v)?)),
                })
                .collect::<Option<_>>()?,
        ),
    })
}

fn type_from_json(json: &Json) -> Result<ObjectSchema, SchemaError> {
    let obj = json.as_object().ok_or_else(|| SchemaError::new(None, None, "each object type must be a JSON object"))?;
    let name = obj
        .get("name")
        .and_then(Json::as_str)
        .ok_or_else(|| SchemaError::new(None, None, "an object type has no \"name\""))?;
    let t = Some(name);
    let mut ty = ObjectSchema::new(name);
    match obj.get("primaryKey") {
        None | Some(Json::Null) => {}
        Some(Json::String(pk)) => ty.primary_key = Some(pk.clone()),
        Some(_) => return Err(SchemaError::new(t, None, "\"primaryKey\" must be a property name")),
    }
    ty.embedded = obj.get("embedded").and_then(Json::as_bool).unwrap_or(false);
    let props = obj
        .get("properties")
        .and_then(Json::as_object)
        .ok_or_else(|| SchemaError::new(t, None, "\"properties\" must be an object of name: type"))?;
    for (pname, spec) in props {
        if spec.get("type").and_then(Json::as_str) == Some("linkingObjects") {
            let field = |k: &str| spec.get(k).and_then(Json::as_str);
            let (Some(object_type), Some(property)) = (field("objectType"), field("property")) else {
                let message = "linkingObjects needs an \"objectType\" and a \"property\" (the link that points here)";
                return Err(SchemaError::new(t, Some(pname), message));
            };
            ty = ty.linking_objects(pname, object_type, property);
            continue;
        }
        let prop = property_from_json(pname, spec).map_err(|m| SchemaError::new(t, Some(pname), m))?;
        ty = ty.with_property(prop);
    }
    Ok(ty)
}

fn property_from_json(name: &str, spec: &Json) -> Result<Property, String> {
    let (text, optional, indexed) = match spec {
        Json::String(s) => (s.clone(), false, false),
        Json::Object(o) => {
            let ty = o.get("type").and_then(Json::as_str).ok_or("a property object needs a \"type\"")?;
            let text = match (ty, o.get("objectType").and_then(Json::as_str)) {
                ("list", Some(inner)) => format!("{inner}[]"),
                ("set", Some(inner)) => format!("{inner}<>"),
                ("dictionary", Some(inner)) => format!("{inner}{{}}"),
                ("object", Some(inner)) => inner.to_owned(),
                ("list" | "set" | "dictionary" | "object", None) => {
                    return Err(format!("type '{ty}' needs an \"objectType\""))
                }
                (ty, _) => ty.to_owned(),
            };
            let flag = |k: &str| o.get(k).and_then(Json::as_bool).unwrap_or(false);
            (text, flag("optional"), flag("indexed"))
        }
        _ => return Err("a property type must be a string like \"int?\" or an object".into()),
    };
    let suffixes = [Collection::List, Collection::Set, Collection::Dictionary];
    let (base, collection) = suffixes
        .into_iter()
        .find_map(|c| text.strip_suffix(c.suffix()).map(|b| (b, c)))
        .unwrap_or((text.as_str(), Collection::Single));
    let (base, q) = match base.strip_suffix('?') {
        Some(b) => (b, true),
        None => (base, false),
    };
    if base.is_empty() || matches!(base, "float" | "list" | "set" | "dictionary" | "linkingObjects") {
        return Err(format!("unsupported property type '{text}' (supported: bool, int, double, string, data, date, objectId, uuid, decimal128, mixed, links, and lists, sets and dictionaries of them)"));
    }
    let p = Property::new(name, PropertyType::parse(base)).collection_of(collection);
    Ok(Property { optional: p.optional || q || optional, indexed, ..p })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOGS: &str = r#"[
      {"name":"Dog","primaryKey":"_id",
       "properties":{"_id":"int","name":"string","age":"int?","lastUpdated":{"type":"int","indexed":true},
                     "owner":"Person?","friends":"Dog[]","tags":"string[]",
                     "score":{"type":"double","optional":true,"indexed":true},
                     "extra":"mixed","extras":"mixed[]",
                     "colors":"string<>","scores":"int?{}","pals":{"type":"dictionary","objectType":"Dog"},
                     "bestFriends":"Dog<>"}},
      {"name":"Person","primaryKey":"_id","properties":{"_id":"uuid","name":"string"}}
    ]"#;

    #[test]
    fn parses_every_form() {
        let s = Schema::from_json(DOGS).unwrap();
        let dog = s.object_type("Dog").unwrap();
        let p = |n| dog.property_named(n).unwrap();
        assert!(p("age").optional && !p("age").is_collection());
        assert!(p("lastUpdated").indexed && !p("lastUpdated").optional);
        assert_eq!(p("owner").ty, PropertyType::Link("Person".into()));
        assert!(p("owner").optional);
        assert!(p("friends").is_list() && p("tags").is_list());
        assert!(p("score").optional && p("score").indexed);
        assert!(p("extra").ty == PropertyType::Mixed && p("extra").optional && !p("extra").is_collection());
        assert!(p("extras").is_list() && p("extras").optional, "a mixed list's elements may be null");
        assert_eq!((p("extra").type_string(), p("extras").type_string()), ("mixed".into(), "mixed[]".into()));
        assert_eq!(dog.primary_key_index(), 0);
        assert_eq!((p("colors").collection, p("colors").optional), (Collection::Set, false));
        assert_eq!((p("scores").collection, p("scores").optional), (Collection::Dictionary, true));
        assert_eq!((p("pals").type_string(), p("pals").optional), ("Dog{}".into(), true));
        assert_eq!((p("bestFriends").type_string(), p("bestFriends").optional), ("Dog<>".into(), false));
        assert_eq!(p("scores").type_string(), "int?{}");
    }

    #[test]
    fn json_round_trip() {
        let s = Schema::from_json(DOGS).unwrap();
        assert_eq!(Schema::from_json(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn errors_name_type_and_property() {
        let e = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","owner":"Cat"}}]"#)
            .unwrap_err();
        assert_eq!((e.object_type.as_deref(), e.property.as_deref()), (Some("Dog"), Some("owner")));
        assert!(e.to_string().contains("Dog.owner") && e.to_string().contains("Cat"), "{e}");
        let e = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"double"}}]"#).unwrap_err();
        assert_eq!(e.property.as_deref(), Some("_id"));
        let e = Schema::from_json(r#"[{"name":"Dog","properties":{"_id":"int"}}]"#).unwrap_err();
        assert!(e.to_string().contains("primary key"), "{e}");
        let e = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","x":"float"}}]"#)
            .unwrap_err();
        assert_eq!(e.property.as_deref(), Some("x"));
        let e = Schema::from_json(
            r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","x":{"type":"decimal128","indexed":true}}}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("decimal128 properties cannot be indexed yet"), "{e}");
        assert!(Schema::from_json("{").unwrap_err().to_string().contains("JSON"));
    }

    #[test]
    fn evolve_allows_additive_changes_only() {
        let v1 = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string"}}]"#)
            .unwrap();
        let v2 = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"age":"int?","_id":"int","name":{"type":"string","indexed":true}}},
                                     {"name":"Cat","primaryKey":"_id","properties":{"_id":"int"}}]"#).unwrap();
        let merged = v1.evolve(&v2).unwrap();
        let dog = merged.object_type("Dog").unwrap();
        let names: Vec<_> = dog.properties().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["_id", "name", "age"], "storage order is kept, additions appended");
        assert!(dog.property_named("name").unwrap().indexed);
        assert!(merged.object_type("Cat").is_some());

        let retyped =
            Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"int"}}]"#)
                .unwrap();
        assert_eq!(v1.evolve(&retyped).unwrap_err().property.as_deref(), Some("name"));
        let required = Schema::from_json(
            r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int"}}]"#,
        )
        .unwrap();
        assert_eq!(v1.evolve(&required).unwrap_err().property.as_deref(), Some("age"));
        let removed = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int"}}]"#).unwrap();
        assert_eq!(v1.evolve(&removed).unwrap_err().property.as_deref(), Some("name"));
    }

    #[test]
    fn coerce_checks_types() {
        let s = Schema::from_json(DOGS).unwrap();
        let dog = s.object_type("Dog").unwrap();
        let p = |n| dog.property_named(n).unwrap();
        assert_eq!(s.coerce(dog, p("score"), Value::Int(2)).unwrap(), Value::Double(2.0));
        assert!(s.coerce(dog, p("name"), Value::Null).unwrap_err().to_string().contains("Dog.name"));
        assert!(s.coerce(dog, p("age"), "x".into()).is_err());
        assert_eq!(s.coerce(dog, p("age"), Value::Null).unwrap(), Value::Null);
        let owner = s.coerce(dog, p("owner"), "123e4567-e89b-12d3-a456-426614174000".into()).unwrap();
        assert!(matches!(owner, Value::Uuid(_)));
        assert!(s.coerce(dog, p("tags"), "x".into()).is_err());
        assert!(s.coerce(dog, p("friends"), Value::List(vec![Value::Null])).is_err());
    }

    #[test]
    fn an_embedded_object_stores_the_fields_given_and_reads_every_field() {
        let s = Schema::from_json(
            r#"[{"name":"P","primaryKey":"_id","properties":{"_id":"int","home":"A"}},
                {"name":"A","embedded":true,"properties":{"city":"string","zip":"int?"}}]"#,
        )
        .unwrap();
        let p = s.object_type("P").unwrap();
        let home = p.property_named("home").unwrap();
        let given = Value::Dictionary([("city".to_owned(), Value::from("Oslo"))].into());
        let stored = s.coerce(p, home, given.clone()).unwrap();
        assert_eq!(stored, given, "an app without `zip` writes what it knows; that is what is stored");
        let read = s.with_embedded_defaults("A", stored);
        assert_eq!(read.to_json(), serde_json::json!({"city": "Oslo", "zip": null}));
        let (same, conflicts) = s.combine(&s, true).unwrap();
        assert_eq!((same, conflicts), (s.clone(), vec![]), "an embedded type has no key to compare");
        let empty = r#"[{"name":"A","embedded":true,"properties":{}}]"#;
        assert!(Schema::from_json(empty).unwrap_err().to_string().contains("at least one property"));
    }

    #[test]
    fn coerce_decimals_exactly() {
        let s = Schema::from_json(
            r#"[{"name":"Item","primaryKey":"_id","properties":{"_id":"int","price":"decimal128?"}}]"#,
        )
        .unwrap();
        let item = s.object_type("Item").unwrap();
        let price = item.property_named("price").unwrap();
        let as_text = |v: Value| s.coerce(item, price, v).map(|d| d.to_json());
        assert_eq!(as_text("12.50".into()).unwrap(), "12.50");
        assert_eq!(as_text(Value::Int(3)).unwrap(), "3");
        assert_eq!(as_text(Value::Double(0.1)).unwrap(), "0.1");
        assert_eq!(as_text(Value::Null).unwrap(), serde_json::Value::Null);
        let err = as_text("twelve".into()).unwrap_err().to_string();
        assert!(err.contains("Item.price") && err.contains("'twelve' is not a decimal128"), "{err}");
        assert!(as_text(Value::Double(f64::INFINITY)).is_err());
    }

    #[test]
    fn coerce_sets_and_dictionaries() {
        let s = Schema::from_json(DOGS).unwrap();
        let dog = s.object_type("Dog").unwrap();
        let p = |n| dog.property_named(n).unwrap();
        let colors = s.coerce(dog, p("colors"), Value::List(vec!["red".into(), "blue".into(), "red".into()]));
        assert_eq!(colors.unwrap(), Value::Set(vec!["blue".into(), "red".into()]), "distinct, in order");
        let err = s.coerce(dog, p("colors"), Value::List(vec!["red".into(), 3.into()])).unwrap_err();
        assert_eq!(err.to_string(), "invalid value for Dog.colors: at index 1: expected string, got int");
        assert!(s.coerce(dog, p("colors"), Value::List(vec![Value::Null])).is_err(), "a string<> holds no null");
        assert!(s.coerce(dog, p("bestFriends"), Value::List(vec![Value::Null])).is_err());

        let scores: std::collections::BTreeMap<_, _> = [("a", Value::Int(1)), ("b", Value::Null)].into();
        assert_eq!(s.coerce(dog, p("scores"), scores.clone().into()).unwrap(), scores.into());
        let bad = |key: &str, value: Value| {
            s.coerce(dog, p("scores"), Value::Dictionary([(key.to_owned(), value)].into())).unwrap_err().to_string()
        };
        assert_eq!(bad("x", "1".into()), "invalid value for Dog.scores: at key \"x\": expected int, got string");
        assert!(bad("a.b", 1.into()).contains("cannot contain '.'"));
        assert!(bad("$x", 1.into()).contains("cannot start with '$'"));
        assert!(bad("", 1.into()).contains("cannot be empty"));
        assert!(s.coerce(dog, p("scores"), Value::List(vec![])).unwrap_err().to_string().contains("a dictionary"));
        let pals = Value::Dictionary([("rex".to_owned(), Value::Null)].into());
        assert_eq!(s.coerce(dog, p("pals"), pals.clone()).unwrap(), pals, "a dictionary's link may be null");
    }
}
