//! [`Val`] → JSON, checked against a [`Type`] (see the parent module for the
//! mapping). A value that does not match its type, or that cannot be
//! written (a resource, future or stream), is an error: the reply then
//! reports a `service-error`.

use super::{CodecError, Path, type_name};
use serde_json::{Map, Number, Value as Json};
use wasmtime::component::Val;
use wasmtime::component::types::Type;

/// Encodes `val` of type `ty` as JSON; errors name paths starting at `root`
/// (e.g. `result`).
pub fn val_to_json(val: &Val, ty: &Type, root: &str) -> Result<Json, CodecError> {
    encode(val, ty, &Path::Root(root))
}

fn float(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

/// An `f32` written with its shortest decimal form (`0.1`, not
/// `0.10000000149011612`).
fn float32(f: f32) -> Json {
    if !f.is_finite() {
        return float(f64::from(f));
    }
    float(f.to_string().parse::<f64>().unwrap_or(f64::from(f)))
}

fn encode_payload(
    payload: Option<Type>,
    val: Option<&Val>,
    path: &Path<'_>,
) -> Result<Json, CodecError> {
    match (payload, val) {
        (Some(ty), Some(val)) => encode(val, &ty, path),
        (None, None) => Ok(Json::Null),
        (Some(_), None) => Err(path.error("payload missing")),
        (None, Some(_)) => Err(path.error("unexpected payload")),
    }
}

fn encode_list(vals: &[Val], elem: &Type, path: &Path<'_>) -> Result<Json, CodecError> {
    let mut out = Vec::with_capacity(vals.len());
    for (i, val) in vals.iter().enumerate() {
        out.push(encode(val, elem, &Path::Index(path, i))?);
    }
    Ok(Json::Array(out))
}

fn single(key: &str, value: Json) -> Json {
    let mut map = Map::new();
    map.insert(key.to_string(), value);
    Json::Object(map)
}

/// Encodes `val` as `ty`, at `path`.
pub(crate) fn encode(val: &Val, ty: &Type, path: &Path<'_>) -> Result<Json, CodecError> {
    Ok(match (ty, val) {
        (Type::Bool, Val::Bool(b)) => Json::Bool(*b),
        (Type::S8, Val::S8(n)) => Json::from(*n),
        (Type::U8, Val::U8(n)) => Json::from(*n),
        (Type::S16, Val::S16(n)) => Json::from(*n),
        (Type::U16, Val::U16(n)) => Json::from(*n),
        (Type::S32, Val::S32(n)) => Json::from(*n),
        (Type::U32, Val::U32(n)) => Json::from(*n),
        (Type::S64, Val::S64(n)) => Json::from(*n),
        (Type::U64, Val::U64(n)) => Json::from(*n),
        (Type::Float32, Val::Float32(f)) => float32(*f),
        (Type::Float64, Val::Float64(f)) => float(*f),
        (Type::Char, Val::Char(c)) => Json::String(c.to_string()),
        (Type::String, Val::String(s)) => Json::String(s.clone()),
        (Type::List(list), Val::List(vals)) => encode_list(vals, &list.ty(), path)?,
        (Type::FixedLengthList(list), Val::FixedLengthList(vals)) => {
            encode_list(vals, &list.ty(), path)?
        }
        (Type::Map(map), Val::Map(pairs)) => {
            let (key_ty, value_ty) = (map.key(), map.value());
            if matches!(key_ty, Type::String) {
                let mut out = Map::new();
                for (k, v) in pairs {
                    let Val::String(k) = k else {
                        return Err(path.error("map key is not a string"));
                    };
                    let v = encode(v, &value_ty, &Path::Field(path, k))?;
                    // Last value wins, as in the component model.
                    out.insert(k.clone(), v);
                }
                Json::Object(out)
            } else {
                let mut out = Vec::with_capacity(pairs.len());
                for (i, (k, v)) in pairs.iter().enumerate() {
                    let pair = Path::Index(path, i);
                    out.push(Json::Array(vec![
                        encode(k, &key_ty, &Path::Index(&pair, 0))?,
                        encode(v, &value_ty, &Path::Index(&pair, 1))?,
                    ]));
                }
                Json::Array(out)
            }
        }
        (Type::Record(record), Val::Record(fields)) => {
            let mut out = Map::new();
            if fields.len() != record.fields().len() {
                return Err(path.error("record value has the wrong number of fields"));
            }
            for (field, (name, val)) in record.fields().zip(fields) {
                if field.name != name {
                    return Err(path.error(format!("record field {name:?} out of place")));
                }
                out.insert(
                    name.clone(),
                    encode(val, &field.ty, &Path::Field(path, name))?,
                );
            }
            Json::Object(out)
        }
        (Type::Tuple(tuple), Val::Tuple(vals)) => {
            if vals.len() != tuple.types().len() {
                return Err(path.error("tuple value has the wrong number of members"));
            }
            let mut out = Vec::with_capacity(vals.len());
            for (i, (val, member)) in vals.iter().zip(tuple.types()).enumerate() {
                out.push(encode(val, &member, &Path::Index(path, i))?);
            }
            Json::Array(out)
        }
        (Type::Variant(variant), Val::Variant(name, payload)) => {
            let Some(case) = variant.cases().find(|c| c.name == name) else {
                return Err(path.error(format!("unknown case {name:?}")));
            };
            match (case.ty, payload) {
                (None, None) => Json::String(name.clone()),
                (ty, payload) => single(
                    name,
                    encode_payload(ty, payload.as_deref(), &Path::Field(path, name))?,
                ),
            }
        }
        (Type::Enum(enum_), Val::Enum(name)) => {
            if !enum_.names().any(|n| n == name) {
                return Err(path.error(format!("unknown enum case {name:?}")));
            }
            Json::String(name.clone())
        }
        (Type::Option(option), Val::Option(value)) => match value {
            None => Json::Null,
            Some(v) => {
                let inner = option.ty();
                if matches!(inner, Type::Option(_)) {
                    single("some", encode(v, &inner, &Path::Field(path, "some"))?)
                } else {
                    encode(v, &inner, path)?
                }
            }
        },
        (Type::Result(result), Val::Result(value)) => match value {
            Ok(v) => single(
                "ok",
                encode_payload(result.ok(), v.as_deref(), &Path::Field(path, "ok"))?,
            ),
            Err(e) => single(
                "err",
                encode_payload(result.err(), e.as_deref(), &Path::Field(path, "err"))?,
            ),
        },
        (Type::Flags(flags), Val::Flags(set)) => {
            if let Some(unknown) = set.iter().find(|s| !flags.names().any(|n| n == *s)) {
                return Err(path.error(format!("unknown flag {unknown:?}")));
            }
            let ordered = flags.names().filter(|n| set.iter().any(|s| s == n));
            Json::Array(ordered.map(|n| Json::String(n.to_string())).collect())
        }
        (
            Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext,
            _,
        ) => {
            return Err(path.error(format!(
                "a {} cannot be returned through the partner API",
                type_name(ty)
            )));
        }
        _ => {
            return Err(path.error(format!(
                "the function returned a value that is not a {}",
                type_name(ty)
            )));
        }
    })
}
