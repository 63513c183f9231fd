//! JSON ↔ component-model values, driven by the function's WIT types.
//!
//! `biz_content` is a JSON object whose keys are the function's parameter
//! names (as in WIT, kebab-case); a missing key is allowed only for an
//! `option` parameter (= `none`), and unknown keys are refused. A function's
//! single result becomes the `result` field of the reply (a function with no
//! result has no `result` field).
//!
//! | WIT type | JSON |
//! | --- | --- |
//! | `bool` | `true` / `false` |
//! | `u8` … `u64`, `s8` … `s64` | an integer number within the type's range (`1.0` and `1e3` are refused; 64-bit values are written as exact numbers, which JavaScript clients should read with a big-number parser) |
//! | `f32`, `f64` | a number; `"NaN"`, `"Infinity"`, `"-Infinity"` for the non-finite values (a finite `f64` outside the `f32` range is refused) |
//! | `char` | a string of exactly one Unicode scalar value |
//! | `string` | a string |
//! | `list<T>` | an array (also `list<u8>`: an array of numbers, not base64) |
//! | `list<T, N>` | an array of exactly `N` elements |
//! | `tuple<…>` | an array with one element per member |
//! | `record` | an object with the WIT field names; a missing field is allowed only for `option` fields (= `none`); unknown fields are refused |
//! | `option<T>` | `null` for `none`, the value for `some`; when `T` is itself an option, `some(x)` is `{"some": x}` so that `some(none)` ≠ `none` |
//! | `result<T, E>` | `{"ok": v}` or `{"err": e}` (`null` for an absent payload) |
//! | `variant` | `{"case-name": payload}`, or `"case-name"` for a case without payload (`{"case-name": null}` is accepted too) |
//! | `enum` | the case name as a string |
//! | `flags` | an array of the set flags' names (written in declaration order) |
//! | `map<K, V>` | an object when `K` is `string`, otherwise an array of `[key, value]` pairs |
//!
//! Resources (`own`, `borrow`), `future`, `stream` and `error-context`
//! cannot cross the partner API: a function using them can be exposed but
//! every call is refused with a message naming the parameter.
//!
//! Errors name the path of the offending value, e.g.
//! `biz_content.order.items[2].qty: expected u32, got "x"`.

mod decode;
mod encode;

pub use decode::json_to_val;
pub use encode::val_to_json;

use serde_json::Value as Json;
use std::fmt;
use wasmtime::component::Val;
use wasmtime::component::types::{ComponentFunc, Type};

/// The root of argument paths in error messages.
pub const ARGS_ROOT: &str = "biz_content";

/// The root of result paths in error messages.
pub const RESULT_ROOT: &str = "result";

/// A value that does not match its type, with the path where it occurs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// Where the value is, e.g. `biz_content.order.items[2].qty`.
    pub path: String,
    /// What is wrong, e.g. `expected u32, got "x"`.
    pub message: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for CodecError {}

/// A position in a value, rendered only when an error needs it.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root(&'a str),
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self, out: &mut String) {
        match self {
            Path::Root(name) => out.push_str(name),
            Path::Field(parent, name) => {
                parent.render(out);
                out.push('.');
                out.push_str(name);
            }
            Path::Index(parent, index) => {
                parent.render(out);
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> CodecError {
        let mut path = String::new();
        self.render(&mut path);
        CodecError {
            path,
            message: message.into(),
        }
    }
}

/// A short name of a WIT type for messages.
pub(crate) fn type_name(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::List(_) => "list (an array)",
        Type::FixedLengthList(_) => "fixed-length list (an array)",
        Type::Map(_) => "map",
        Type::Record(_) => "record (an object)",
        Type::Tuple(_) => "tuple (an array)",
        Type::Variant(_) => "variant",
        Type::Enum(_) => "enum (a string)",
        Type::Option(_) => "option",
        Type::Result(_) => "result (an object with `ok` or `err`)",
        Type::Flags(_) => "flags (an array of strings)",
        Type::Own(_) | Type::Borrow(_) => "resource",
        Type::Future(_) => "future",
        Type::Stream(_) => "stream",
        Type::ErrorContext => "error-context",
    }
}

/// Decodes `biz_content` (a JSON text) into the arguments of `func`, in
/// parameter order.
pub fn decode_args(func: &ComponentFunc, biz_content: &str) -> Result<Vec<Val>, CodecError> {
    let root = Path::Root(ARGS_ROOT);
    let json: Json = serde_json::from_str(biz_content)
        .map_err(|e| root.error(format!("not valid JSON: {e}")))?;
    let Json::Object(mut object) = json else {
        return Err(root.error(format!(
            "expected an object, got {}",
            decode::describe(&json)
        )));
    };
    let mut args = Vec::with_capacity(func.params().len());
    for (name, ty) in func.params() {
        let path = Path::Field(&root, name);
        let value = match object.remove(name) {
            Some(value) => decode::decode(&value, &ty, &path)?,
            None if matches!(ty, Type::Option(_)) => Val::Option(None),
            None => return Err(path.error(format!("missing (expected {})", type_name(&ty)))),
        };
        args.push(value);
    }
    if let Some(unknown) = object.keys().next() {
        let expected: Vec<&str> = func.params().map(|(name, _)| name).collect();
        return Err(Path::Field(&root, unknown).error(format!(
            "unknown parameter (the function takes: {})",
            if expected.is_empty() {
                "nothing".to_string()
            } else {
                expected.join(", ")
            }
        )));
    }
    Ok(args)
}

/// Encodes the results of `func` for the reply's `result` field: `None`
/// for a function without results, the value for one result, an array for
/// several.
pub fn encode_results(func: &ComponentFunc, results: &[Val]) -> Result<Option<Json>, CodecError> {
    let types: Vec<Type> = func.results().collect();
    let root = Path::Root(RESULT_ROOT);
    if types.len() != results.len() {
        return Err(root.error(format!(
            "the function returned {} values for {} result types",
            results.len(),
            types.len()
        )));
    }
    match types.len() {
        0 => Ok(None),
        1 => Ok(Some(encode::encode(&results[0], &types[0], &root)?)),
        _ => {
            let mut out = Vec::with_capacity(types.len());
            for (i, (val, ty)) in results.iter().zip(&types).enumerate() {
                out.push(encode::encode(val, ty, &Path::Index(&root, i))?);
            }
            Ok(Some(Json::Array(out)))
        }
    }
}

#[cfg(test)]
mod tests;
