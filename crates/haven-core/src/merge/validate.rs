//! Checking an uploaded changeset against the schema before anything of
//! it is integrated: the server refuses the whole upload if one
//! instruction does not fit, and names it.

use super::changeset::{Changeset, Instruction};
use crate::schema::{check_dictionary_key, Collection, ObjectSchema, Property, PropertyType, Schema};
use crate::value::Value;

/// An instruction that does not fit the schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("changeset {client_version}, instruction {index}: {message}")]
pub struct InvalidChangeset {
    /// The changeset's client version.
    pub client_version: u64,
    /// The instruction's position in it.
    pub index: usize,
    /// What is wrong, naming the type and property.
    pub message: String,
}

/// Checks every instruction: known type and properties, values of the
/// property's type, primary keys of the key's type, numeric increments,
/// creates that give every required property and do not change the key.
pub fn validate(schema: &Schema, changeset: &Changeset) -> Result<(), InvalidChangeset> {
    for (index, instruction) in changeset.instructions.iter().enumerate() {
        check(schema, instruction).map_err(|message| InvalidChangeset {
            client_version: changeset.client_version,
            index,
            message,
        })?;
    }
    Ok(())
}

/// Checks one instruction; `Err` names what does not fit.
pub(crate) fn check(schema: &Schema, instruction: &Instruction) -> Result<(), String> {
    let (type_name, pk) = instruction.object();
    let ty = schema.object_type(type_name).ok_or_else(|| format!("unknown object type '{type_name}'"))?;
    value_fits(schema, ty, ty.primary_key_name(), pk)?;
    match instruction {
        Instruction::Create { fields, .. } => {
            for (name, value) in fields {
                value_fits(schema, ty, name, value)?;
                if name == ty.primary_key_name() && value != pk {
                    return Err(format!(
                        "{}.{name}: the primary key in the fields differs from the object's",
                        ty.name()
                    ));
                }
            }
            match ty
                .properties()
                .iter()
                .find(|p| p.default_value().is_none() && !fields.iter().any(|(n, _)| *n == p.name))
            {
                Some(p) => Err(format!("{}.{} is required but was not given", ty.name(), p.name)),
                None => Ok(()),
            }
        }
        Instruction::Set { field, value, .. } => {
            if field == ty.primary_key_name() {
                return Err(format!("{}.{field}: a primary key cannot change", ty.name()));
            }
            value_fits(schema, ty, field, value)
        }
        Instruction::Increment { field, delta, .. } => {
            let prop = ty.property_named(field).ok_or_else(|| format!("{} has no property '{field}'", ty.name()))?;
            let numeric = matches!(
                (&prop.ty, prop.is_collection(), delta),
                (crate::PropertyType::Int, false, Value::Int(_))
                    | (crate::PropertyType::Double, false, Value::Int(_) | Value::Double(_))
            );
            if numeric && field != ty.primary_key_name() {
                Ok(())
            } else {
                Err(format!("{}.{field}: cannot add {} to {}", ty.name(), delta.kind(), prop.type_string()))
            }
        }
        Instruction::Delete { .. } => Ok(()),
        Instruction::ListAssign { field, elements, .. } => {
            let prop = list_property(ty, field)?;
            elements.iter().enumerate().try_for_each(|(i, (_, value))| element_fits(schema, ty, prop, value, i))
        }
        Instruction::ListInsert { field, value, .. } | Instruction::ListSet { field, value, .. } => {
            element_fits(schema, ty, list_property(ty, field)?, value, 0)
        }
        Instruction::ListMove { field, .. } | Instruction::ListRemove { field, .. } => {
            list_property(ty, field).map(|_| ())
        }
        Instruction::SetAdd { field, value, .. } | Instruction::SetRemove { field, value, .. } => {
            let prop = collection_property(ty, field, Collection::Set)?;
            match schema.coerce_set_element(ty, prop, value.clone()) {
                Ok(converted) if as_sent(&converted, value) => Ok(()),
                Ok(_) => Err(format!("{}.{field}: {} is not in its stored form", ty.name(), value.kind())),
                Err(e) => Err(e.to_string()),
            }
        }
        Instruction::DictionaryPut { field, key, value, .. } => match ty.property_named(field) {
            // One field of an embedded object.
            Some(prop @ Property { ty: PropertyType::Embedded(_), .. }) => {
                field_fits(ty, field, key, value, schema.coerce_embedded_field(ty, prop, None, key, value.clone()))
            }
            _ => entry_fits(schema, ty, collection_property(ty, field, Collection::Dictionary)?, key, value.clone()),
        },
        Instruction::ListElementPut { field, key, value, .. } => {
            let prop = list_property(ty, field)?;
            field_fits(ty, field, key, value, schema.coerce_element_field(ty, prop, key, value.clone()))
        }
        Instruction::DictionaryRemove { field, key, .. } => {
            collection_property(ty, field, Collection::Dictionary)?;
            check_dictionary_key(key).map_err(|m| format!("{}.{field}: at key {key:?}: {m}", ty.name()))
        }
    }
}

/// The list property `name` of `ty`, or why it is not one.
fn list_property<'s>(ty: &'s ObjectSchema, name: &str) -> Result<&'s Property, String> {
    collection_property(ty, name, Collection::List)
}

/// The property `name` of `ty` holding a `collection`, or why it is not one.
fn collection_property<'s>(ty: &'s ObjectSchema, name: &str, collection: Collection) -> Result<&'s Property, String> {
    let what = match collection {
        Collection::Set => "a set",
        Collection::Dictionary => "a dictionary",
        _ => "a list",
    };
    match ty.property_named(name) {
        Some(p) if p.collection == collection => Ok(p),
        Some(p) => Err(format!("{}.{name} is '{}', not {what}", ty.name(), p.type_string())),
        None => Err(format!("{} has no property '{name}'", ty.name())),
    }
}

/// Whether `value`, sent for field `key` of an embedded object in
/// `ty.field`, is what `converted` (the schema's conversion of it) says
/// the field stores.
fn field_fits(
    ty: &ObjectSchema,
    field: &str,
    key: &str,
    value: &Value,
    converted: Result<Value, crate::error::ValueError>,
) -> Result<(), String> {
    match converted {
        Ok(converted) if as_sent(&converted, value) => Ok(()),
        Ok(_) => Err(format!("{}.{field}: at field {key:?}: {} is not in its stored form", ty.name(), value.kind())),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `key` and `value` are exactly what dictionary `prop` stores.
fn entry_fits(schema: &Schema, ty: &ObjectSchema, prop: &Property, key: &str, value: Value) -> Result<(), String> {
    match schema.coerce_dictionary_value(ty, prop, key, value.clone()) {
        Ok(converted) if as_sent(&converted, &value) => Ok(()),
        Ok(_) => Err(format!(
            "{}.{}: at key {key:?}: expected {}, got {}",
            ty.name(),
            prop.name,
            prop.ty.name(),
            value.kind()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `value` is exactly what an element of list `prop` stores.
fn element_fits(schema: &Schema, ty: &ObjectSchema, prop: &Property, value: &Value, at: usize) -> Result<(), String> {
    match schema.coerce_list_element(ty, prop, at, value.clone()) {
        Ok(converted) if as_sent(&converted, value) => Ok(()),
        Ok(converted) => Err(format!(
            "{}.{}: at index {at}: expected {}, got {} ({converted} after conversion)",
            ty.name(),
            prop.name,
            prop.ty.name(),
            value.kind()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether a value was sent in exactly the form it is stored in: the same
/// bytes, so that `-0.0` (equal to `0.0`, but not its stored form) cannot
/// become a second element of a set. Doubles are the one kind whose equal
/// values can differ in their bytes; they are compared by their bits, and
/// everything else by equality, without encoding (this runs for every
/// value a client uploads).
fn as_sent(converted: &Value, sent: &Value) -> bool {
    match (converted, sent) {
        (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
        (Value::List(a), Value::List(b)) | (Value::Set(a), Value::Set(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| as_sent(x, y))
        }
        (Value::Dictionary(a), Value::Dictionary(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|((ka, x), (kb, y))| ka == kb && as_sent(x, y))
        }
        _ => converted == sent,
    }
}

/// Whether `value` is exactly what property `name` stores (no conversion:
/// a client sends values already converted).
pub(crate) fn value_fits(schema: &Schema, ty: &ObjectSchema, name: &str, value: &Value) -> Result<(), String> {
    let prop = ty.property_named(name).ok_or_else(|| format!("{} has no property '{name}'", ty.name()))?;
    match schema.coerce(ty, prop, value.clone()) {
        Ok(converted) if as_sent(&converted, value) => Ok(()),
        Ok(converted) => Err(format!(
            "{}.{name}: expected {}, got {} ({converted} after conversion)",
            ty.name(),
            prop.type_string(),
            value.kind()
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::Hlc;

    fn schema() -> Schema {
        Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?","score":"double?","tags":"string[]","marks":"double<>"}}]"#).unwrap()
    }

    fn changeset(instructions: Vec<Instruction>) -> Changeset {
        Changeset { replica: 1, client_version: 7, base_version: 0, hlc: Hlc::default(), instructions }
    }

    fn create(fields: Vec<(&str, Value)>) -> Instruction {
        Instruction::Create {
            object_type: "Dog".into(),
            pk: 1.into(),
            fields: fields.into_iter().map(|(n, v)| (n.into(), v)).collect(),
        }
    }

    fn set(field: &str, value: Value) -> Instruction {
        Instruction::Set { object_type: "Dog".into(), pk: 1.into(), field: field.into(), value }
    }

    #[test]
    fn fitting_changesets_pass() {
        let ok = changeset(vec![
            create(vec![
                ("_id", 1.into()),
                ("name", "Rex".into()),
                ("age", Value::Null),
                ("tags", Value::List(vec!["a".into()])),
            ]),
            set("score", Value::Double(1.5)),
            Instruction::Increment { object_type: "Dog".into(), pk: 1.into(), field: "score".into(), delta: 1.into() },
            Instruction::Delete { object_type: "Dog".into(), pk: 1.into() },
        ]);
        assert_eq!(validate(&schema(), &ok), Ok(()));
    }

    #[test]
    fn each_misfit_is_named() {
        let cases = [
            (set("name", 5.into()), "Dog.name"),
            (
                Instruction::ListInsert {
                    object_type: "Dog".into(),
                    pk: 1.into(),
                    field: "tags".into(),
                    after: None,
                    id: crate::merge::ElementId { origin: 1, hlc: Hlc::default(), seq: 0 },
                    value: 5.into(),
                },
                "Dog.tags: at index 0: expected string, got int",
            ),
            (
                Instruction::ListAssign {
                    object_type: "Dog".into(),
                    pk: 1.into(),
                    field: "tags".into(),
                    elements: vec![(crate::merge::ElementId { origin: 1, hlc: Hlc::default(), seq: 0 }, Value::Null)],
                },
                "Dog.tags: at index 0: null is not allowed",
            ),
            (
                Instruction::ListRemove {
                    object_type: "Dog".into(),
                    pk: 1.into(),
                    field: "name".into(),
                    id: crate::merge::ElementId { origin: 1, hlc: Hlc::default(), seq: 0 },
                },
                "Dog.name is 'string', not a list",
            ),
            (set("color", "red".into()), "no property 'color'"),
            (set("score", 1.into()), "Dog.score"),
            (set("_id", 2.into()), "primary key cannot change"),
            (
                Instruction::SetAdd {
                    object_type: "Dog".into(),
                    pk: 1.into(),
                    field: "marks".into(),
                    value: Value::Double(-0.0),
                },
                "not in its stored form",
            ),
            (set("name", Value::Null), "Dog.name"),
            (create(vec![("_id", 1.into())]), "Dog.name is required"),
            (create(vec![("_id", 2.into()), ("name", "x".into())]), "primary key in the fields differs"),
            (Instruction::Delete { object_type: "Cat".into(), pk: 1.into() }, "unknown object type 'Cat'"),
            (Instruction::Delete { object_type: "Dog".into(), pk: "one".into() }, "Dog._id"),
            (
                Instruction::Increment {
                    object_type: "Dog".into(),
                    pk: 1.into(),
                    field: "name".into(),
                    delta: 1.into(),
                },
                "cannot add int to string",
            ),
            (
                Instruction::Increment {
                    object_type: "Dog".into(),
                    pk: 1.into(),
                    field: "age".into(),
                    delta: Value::Double(0.5),
                },
                "cannot add double to int?",
            ),
        ];
        for (instruction, fragment) in cases {
            let err = validate(&schema(), &changeset(vec![set("name", "ok".into()), instruction.clone()])).unwrap_err();
            assert_eq!((err.client_version, err.index), (7, 1));
            assert!(err.to_string().contains(fragment), "{instruction:?}: {err}");
        }
    }
}
