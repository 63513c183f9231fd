//! JSON → [`Val`], checked against a [`Type`] (see the parent module for the
//! mapping).

use super::{CodecError, Path, type_name};
use serde_json::{Map, Value as Json};
use wasmtime::component::Val;
use wasmtime::component::types::Type;

/// Decodes `value` as a value of type `ty`; errors name paths starting at
/// `root` (e.g. `biz_content.order`).
pub fn json_to_val(value: &Json, ty: &Type, root: &str) -> Result<Val, CodecError> {
    decode(value, ty, &Path::Root(root))
}

/// A short description of a JSON value for messages: scalars as written
/// (long strings shortened), containers by kind.
pub(crate) fn describe(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if s.chars().count() > 32 => {
            let head: String = s.chars().take(32).collect();
            format!("{:?}…", head)
        }
        Json::String(s) => format!("{s:?}"),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

fn mismatch(path: &Path<'_>, ty: &Type, value: &Json) -> CodecError {
    path.error(format!(
        "expected {}, got {}",
        type_name(ty),
        describe(value)
    ))
}

fn integer<T: TryFrom<i64> + TryFrom<u64>>(
    value: &Json,
    ty: &Type,
    path: &Path<'_>,
) -> Result<T, CodecError> {
    let Json::Number(n) = value else {
        return Err(mismatch(path, ty, value));
    };
    let converted = if let Some(u) = n.as_u64() {
        T::try_from(u).ok()
    } else if let Some(i) = n.as_i64() {
        T::try_from(i).ok()
    } else {
        return Err(path.error(format!(
            "expected {}, got {} (not an integer)",
            type_name(ty),
            n
        )));
    };
    converted.ok_or_else(|| {
        path.error(format!(
            "expected {}, got {} (out of range)",
            type_name(ty),
            n
        ))
    })
}

fn float(value: &Json, ty: &Type, path: &Path<'_>) -> Result<f64, CodecError> {
    match value {
        Json::Number(n) => n.as_f64().ok_or_else(|| mismatch(path, ty, value)),
        Json::String(s) if s == "NaN" => Ok(f64::NAN),
        Json::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Json::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(mismatch(path, ty, value)),
    }
}

fn string<'v>(value: &'v Json, ty: &Type, path: &Path<'_>) -> Result<&'v str, CodecError> {
    value.as_str().ok_or_else(|| mismatch(path, ty, value))
}

fn array<'v>(value: &'v Json, ty: &Type, path: &Path<'_>) -> Result<&'v [Json], CodecError> {
    match value {
        Json::Array(items) => Ok(items),
        _ => Err(mismatch(path, ty, value)),
    }
}

fn object<'v>(
    value: &'v Json,
    ty: &Type,
    path: &Path<'_>,
) -> Result<&'v Map<String, Json>, CodecError> {
    match value {
        Json::Object(map) => Ok(map),
        _ => Err(mismatch(path, ty, value)),
    }
}

/// The single `key: value` of a one-entry object (variants, results, nested
/// options).
fn single_entry<'v>(
    map: &'v Map<String, Json>,
    path: &Path<'_>,
    what: &str,
) -> Result<(&'v str, &'v Json), CodecError> {
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((k, v)), None) => Ok((k, v)),
        _ => Err(path.error(format!(
            "expected an object with exactly one key ({what}), got {} keys",
            map.len()
        ))),
    }
}

fn decode_list(items: &[Json], elem: &Type, path: &Path<'_>) -> Result<Vec<Val>, CodecError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| decode(item, elem, &Path::Index(path, i)))
        .collect()
}

fn decode_payload(
    payload: Option<Type>,
    value: &Json,
    path: &Path<'_>,
) -> Result<Option<Box<Val>>, CodecError> {
    match payload {
        Some(ty) => Ok(Some(Box::new(decode(value, &ty, path)?))),
        None if value.is_null() => Ok(None),
        None => Err(path.error(format!(
            "expected null (no payload), got {}",
            describe(value)
        ))),
    }
}

/// Decodes `value` as `ty`, at `path`.
pub(crate) fn decode(value: &Json, ty: &Type, path: &Path<'_>) -> Result<Val, CodecError> {
    Ok(match ty {
        Type::Bool => Val::Bool(value.as_bool().ok_or_else(|| mismatch(path, ty, value))?),
        Type::S8 => Val::S8(integer(value, ty, path)?),
        Type::U8 => Val::U8(integer(value, ty, path)?),
        Type::S16 => Val::S16(integer(value, ty, path)?),
        Type::U16 => Val::U16(integer(value, ty, path)?),
        Type::S32 => Val::S32(integer(value, ty, path)?),
        Type::U32 => Val::U32(integer(value, ty, path)?),
        Type::S64 => Val::S64(integer(value, ty, path)?),
        Type::U64 => Val::U64(integer(value, ty, path)?),
        Type::Float32 => {
            let f = float(value, ty, path)?;
            if f.is_finite() && f.abs() > f64::from(f32::MAX) {
                return Err(path.error(format!(
                    "expected f32, got {} (out of range)",
                    describe(value)
                )));
            }
            Val::Float32(f as f32)
        }
        Type::Float64 => Val::Float64(float(value, ty, path)?),
        Type::Char => {
            let s = string(value, ty, path)?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => {
                    return Err(path.error(format!(
                        "expected char (a one-character string), got {}",
                        describe(value)
                    )));
                }
            }
        }
        Type::String => Val::String(string(value, ty, path)?.to_string()),
        Type::List(list) => Val::List(decode_list(array(value, ty, path)?, &list.ty(), path)?),
        Type::FixedLengthList(list) => {
            let items = array(value, ty, path)?;
            let expected = list.len() as usize;
            if items.len() != expected {
                return Err(path.error(format!(
                    "expected an array of exactly {expected} elements, got {}",
                    items.len()
                )));
            }
            Val::FixedLengthList(decode_list(items, &list.ty(), path)?)
        }
        Type::Map(map) => decode_map(value, ty, &map.key(), &map.value(), path)?,
        Type::Record(record) => {
            let fields = object(value, ty, path)?;
            let mut out = Vec::with_capacity(record.fields().len());
            for field in record.fields() {
                let field_path = Path::Field(path, field.name);
                let val = match fields.get(field.name) {
                    Some(v) => decode(v, &field.ty, &field_path)?,
                    None if matches!(field.ty, Type::Option(_)) => Val::Option(None),
                    None => {
                        return Err(field_path
                            .error(format!("missing (expected {})", type_name(&field.ty))));
                    }
                };
                out.push((field.name.to_string(), val));
            }
            if let Some(unknown) = fields
                .keys()
                .find(|k| !record.fields().any(|f| f.name == k.as_str()))
            {
                let names: Vec<&str> = record.fields().map(|f| f.name).collect();
                return Err(Path::Field(path, unknown).error(format!(
                    "unknown field (the record has: {})",
                    names.join(", ")
                )));
            }
            Val::Record(out)
        }
        Type::Tuple(tuple) => {
            let items = array(value, ty, path)?;
            if items.len() != tuple.types().len() {
                return Err(path.error(format!(
                    "expected an array of {} elements (tuple), got {}",
                    tuple.types().len(),
                    items.len()
                )));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, member)) in items.iter().zip(tuple.types()).enumerate() {
                out.push(decode(item, &member, &Path::Index(path, i))?);
            }
            Val::Tuple(out)
        }
        Type::Variant(variant) => {
            let names = || {
                variant
                    .cases()
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (name, payload) = match value {
                Json::String(name) => (name.as_str(), None),
                Json::Object(map) => {
                    let (k, v) = single_entry(map, path, "the case name")?;
                    (k, Some(v))
                }
                _ => return Err(mismatch(path, ty, value)),
            };
            let Some(case) = variant.cases().find(|c| c.name == name) else {
                return Err(path.error(format!("unknown case {name:?} (cases: {})", names())));
            };
            let case_path = Path::Field(path, name);
            let payload = match (case.ty, payload) {
                (Some(_), None) => {
                    return Err(path.error(format!(
                        "case {name:?} needs a payload: write {{{name:?}: …}}"
                    )));
                }
                (ty, Some(v)) => decode_payload(ty, v, &case_path)?,
                (None, None) => None,
            };
            Val::Variant(name.to_string(), payload)
        }
        Type::Enum(enum_) => {
            let name = string(value, ty, path)?;
            if !enum_.names().any(|n| n == name) {
                let names: Vec<&str> = enum_.names().collect();
                return Err(path.error(format!(
                    "unknown enum case {name:?} (cases: {})",
                    names.join(", ")
                )));
            }
            Val::Enum(name.to_string())
        }
        Type::Option(option) => {
            let inner = option.ty();
            if value.is_null() {
                Val::Option(None)
            } else if matches!(inner, Type::Option(_)) {
                let map = object(value, ty, path).map_err(|_| {
                    path.error(format!(
                        "expected null or {{\"some\": …}} (nested option), got {}",
                        describe(value)
                    ))
                })?;
                let (key, v) = single_entry(map, path, "\"some\"")?;
                if key != "some" {
                    return Err(path.error(format!("expected key \"some\", got {key:?}")));
                }
                Val::Option(Some(Box::new(decode(
                    v,
                    &inner,
                    &Path::Field(path, "some"),
                )?)))
            } else {
                Val::Option(Some(Box::new(decode(value, &inner, path)?)))
            }
        }
        Type::Result(result) => {
            let (key, v) = single_entry(object(value, ty, path)?, path, "\"ok\" or \"err\"")?;
            let sub = Path::Field(path, key);
            match key {
                "ok" => Val::Result(Ok(decode_payload(result.ok(), v, &sub)?)),
                "err" => Val::Result(Err(decode_payload(result.err(), v, &sub)?)),
                _ => return Err(path.error(format!("expected key \"ok\" or \"err\", got {key:?}"))),
            }
        }
        Type::Flags(flags) => {
            let items = array(value, ty, path)?;
            let mut set = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let item_path = Path::Index(path, i);
                let Some(name) = item.as_str() else {
                    return Err(
                        item_path.error(format!("expected a flag name, got {}", describe(item)))
                    );
                };
                if !flags.names().any(|n| n == name) {
                    let names: Vec<&str> = flags.names().collect();
                    return Err(item_path.error(format!(
                        "unknown flag {name:?} (flags: {})",
                        names.join(", ")
                    )));
                }
                if set.iter().any(|s| s == name) {
                    return Err(item_path.error(format!("flag {name:?} given twice")));
                }
                set.push(name.to_string());
            }
            // Declaration order, whatever order the partner wrote.
            let ordered = flags.names().filter(|n| set.iter().any(|s| s == n));
            Val::Flags(ordered.map(str::to_string).collect())
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err(path.error(format!(
                "a {} cannot be passed through the partner API",
                type_name(ty)
            )));
        }
    })
}

fn decode_map(
    value: &Json,
    ty: &Type,
    key_ty: &Type,
    value_ty: &Type,
    path: &Path<'_>,
) -> Result<Val, CodecError> {
    let mut pairs = Vec::new();
    if matches!(key_ty, Type::String) {
        let map = object(value, ty, path).map_err(|_| {
            path.error(format!("expected map (an object), got {}", describe(value)))
        })?;
        for (k, v) in map {
            let val = decode(v, value_ty, &Path::Field(path, k))?;
            pairs.push((Val::String(k.clone()), val));
        }
    } else {
        let items = array(value, ty, path).map_err(|_| {
            path.error(format!(
                "expected map (an array of [key, value] pairs), got {}",
                describe(value)
            ))
        })?;
        for (i, item) in items.iter().enumerate() {
            let item_path = Path::Index(path, i);
            match item.as_array().map(Vec::as_slice) {
                Some([k, v]) => pairs.push((
                    decode(k, key_ty, &Path::Index(&item_path, 0))?,
                    decode(v, value_ty, &Path::Index(&item_path, 1))?,
                )),
                _ => {
                    return Err(item_path.error(format!(
                        "expected a [key, value] pair, got {}",
                        describe(item)
                    )));
                }
            }
        }
    }
    Ok(Val::Map(pairs))
}
