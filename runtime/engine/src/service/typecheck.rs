//! Do an importer's and an exporter's view of a service interface agree?
//!
//! Components are compiled separately, so the same WIT interface has two
//! descriptions: the one the caller imports and the one the service
//! exports. A link is allowed only if every function the caller imports
//! exists in the export with a structurally equal signature, and only
//! value types cross: records, variants, enums, flags, lists, tuples,
//! options, results and scalars. Resources, futures and streams are refused.

use wasmtime::component::types::{ComponentFunc, ComponentInstance, ComponentItem, Type};

/// Checks that `export` offers everything `import` needs, with the same
/// types. The error names the first difference, e.g.
/// `create: parameter order: field qty: expected u32, found string`.
pub fn check_interface(
    engine: &wasmtime::Engine,
    import: &ComponentInstance,
    export: &ComponentInstance,
) -> Result<(), String> {
    for (name, item) in import.exports(engine) {
        let ComponentItem::ComponentFunc(wanted) = item.ty else {
            // Type exports are checked through the functions that use them.
            continue;
        };
        let found = export.get_export(engine, name).map(|e| e.ty);
        let Some(ComponentItem::ComponentFunc(found)) = found else {
            return Err(format!("`{name}` is not exported by the service"));
        };
        check_function(&wanted, &found).map_err(|why| format!("{name}: {why}"))?;
    }
    Ok(())
}

/// Checks one function's parameters and results.
pub fn check_function(wanted: &ComponentFunc, found: &ComponentFunc) -> Result<(), String> {
    if wanted.params().len() != found.params().len() {
        return Err(format!(
            "takes {} parameters, the service's takes {}",
            wanted.params().len(),
            found.params().len()
        ));
    }
    for ((name, a), (_, b)) in wanted.params().zip(found.params()) {
        same(&a, &b).map_err(|why| format!("parameter {name}: {why}"))?;
    }
    if wanted.results().len() != found.results().len() {
        return Err("the number of results differs".into());
    }
    for (a, b) in wanted.results().zip(found.results()) {
        same(&a, &b).map_err(|why| format!("result: {why}"))?;
    }
    Ok(())
}

/// Checks that `ty` holds only values (no resources, futures or streams).
pub fn check_value_type(ty: &Type) -> Result<(), String> {
    same(ty, ty)
}

/// The WIT spelling of a type's kind, for messages.
pub fn describe(ty: &Type) -> &'static str {
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
        Type::List(_) => "list",
        Type::Map(_) => "map",
        Type::Record(_) => "record",
        Type::Tuple(_) => "tuple",
        Type::Variant(_) => "variant",
        Type::Enum(_) => "enum",
        Type::Option(_) => "option",
        Type::Result(_) => "result",
        Type::Flags(_) => "flags",
        Type::Own(_) => "resource",
        Type::Borrow(_) => "borrowed resource",
        Type::Future(_) => "future",
        Type::Stream(_) => "stream",
        Type::ErrorContext => "error-context",
        Type::FixedLengthList(_) => "fixed-length list",
    }
}

fn same(a: &Type, b: &Type) -> Result<(), String> {
    let mismatch = || Err(format!("expected {}, found {}", describe(a), describe(b)));
    match (a, b) {
        (Type::Own(_) | Type::Borrow(_), _) | (_, Type::Own(_) | Type::Borrow(_)) => {
            Err("resources cannot cross a service boundary (only value types)".into())
        }
        (Type::Future(_) | Type::Stream(_) | Type::ErrorContext, _)
        | (_, Type::Future(_) | Type::Stream(_) | Type::ErrorContext) => Err(format!(
            "{} cannot cross a service boundary (only value types)",
            describe(a)
        )),
        (Type::List(x), Type::List(y)) => {
            same(&x.ty(), &y.ty()).map_err(|w| format!("list element: {w}"))
        }
        (Type::FixedLengthList(x), Type::FixedLengthList(y)) => {
            if x.len() != y.len() {
                return Err(format!("list length {} vs {}", x.len(), y.len()));
            }
            same(&x.ty(), &y.ty())
        }
        (Type::Map(x), Type::Map(y)) => {
            same(&x.key(), &y.key()).map_err(|w| format!("map key: {w}"))?;
            same(&x.value(), &y.value()).map_err(|w| format!("map value: {w}"))
        }
        (Type::Record(x), Type::Record(y)) => {
            if x.fields().len() != y.fields().len() {
                return Err(format!(
                    "record has {} fields, the service's has {}",
                    x.fields().len(),
                    y.fields().len()
                ));
            }
            for (f, g) in x.fields().zip(y.fields()) {
                if f.name != g.name {
                    return Err(format!("field `{}` vs `{}`", f.name, g.name));
                }
                same(&f.ty, &g.ty).map_err(|w| format!("field {}: {w}", f.name))?;
            }
            Ok(())
        }
        (Type::Tuple(x), Type::Tuple(y)) => {
            if x.types().len() != y.types().len() {
                return Err("tuple sizes differ".into());
            }
            for (i, (s, t)) in x.types().zip(y.types()).enumerate() {
                same(&s, &t).map_err(|w| format!("tuple item {i}: {w}"))?;
            }
            Ok(())
        }
        (Type::Variant(x), Type::Variant(y)) => {
            if x.cases().len() != y.cases().len() {
                return Err("variants have different cases".into());
            }
            for (c, d) in x.cases().zip(y.cases()) {
                if c.name != d.name {
                    return Err(format!("case `{}` vs `{}`", c.name, d.name));
                }
                match (&c.ty, &d.ty) {
                    (None, None) => {}
                    (Some(s), Some(t)) => {
                        same(s, t).map_err(|w| format!("case {}: {w}", c.name))?
                    }
                    _ => return Err(format!("case {}: payloads differ", c.name)),
                }
            }
            Ok(())
        }
        (Type::Enum(x), Type::Enum(y)) => names_equal("enum", x.names(), y.names()),
        (Type::Flags(x), Type::Flags(y)) => names_equal("flags", x.names(), y.names()),
        (Type::Option(x), Type::Option(y)) => {
            same(&x.ty(), &y.ty()).map_err(|w| format!("option: {w}"))
        }
        (Type::Result(x), Type::Result(y)) => {
            optional_same(x.ok(), y.ok()).map_err(|w| format!("ok: {w}"))?;
            optional_same(x.err(), y.err()).map_err(|w| format!("err: {w}"))
        }
        (Type::Bool, Type::Bool)
        | (Type::S8, Type::S8)
        | (Type::U8, Type::U8)
        | (Type::S16, Type::S16)
        | (Type::U16, Type::U16)
        | (Type::S32, Type::S32)
        | (Type::U32, Type::U32)
        | (Type::S64, Type::S64)
        | (Type::U64, Type::U64)
        | (Type::Float32, Type::Float32)
        | (Type::Float64, Type::Float64)
        | (Type::Char, Type::Char)
        | (Type::String, Type::String) => Ok(()),
        _ => mismatch(),
    }
}

fn optional_same(a: Option<Type>, b: Option<Type>) -> Result<(), String> {
    match (a, b) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) => same(&a, &b),
        _ => Err("one side has no payload".into()),
    }
}

fn names_equal<'a>(
    kind: &str,
    a: impl Iterator<Item = &'a str>,
    b: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    let a: Vec<_> = a.collect();
    let b: Vec<_> = b.collect();
    if a == b {
        Ok(())
    } else {
        Err(format!(
            "{kind} {{{}}} vs {{{}}}",
            a.join(", "),
            b.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::Component;

    /// Imports of several views of an `orders` interface; no core code.
    const WAT: &str = r#"
(component
  (import "same" (instance
    (type $o' (record (field "sku" string) (field "qty" u32)))
    (export "order" (type $o (eq $o')))
    (type $e' (variant (case "invalid" string) (case "sold-out")))
    (export "error" (type $e (eq $e')))
    (export "create" (func (param "order" $o) (result (result u64 (error $e)))))
    (export "count" (func (result u32)))))
  (import "subset" (instance
    (type $o' (record (field "sku" string) (field "qty" u32)))
    (export "order" (type $o (eq $o')))
    (type $e' (variant (case "invalid" string) (case "sold-out")))
    (export "error" (type $e (eq $e')))
    (export "create" (func (param "o" $o) (result (result u64 (error $e)))))))
  (import "wrong-field" (instance
    (type $o' (record (field "sku" string) (field "qty" string)))
    (export "order" (type $o (eq $o')))
    (type $e' (variant (case "invalid" string) (case "sold-out")))
    (export "error" (type $e (eq $e')))
    (export "create" (func (param "order" $o) (result (result u64 (error $e)))))))
  (import "wrong-case" (instance
    (type $o' (record (field "sku" string) (field "qty" u32)))
    (export "order" (type $o (eq $o')))
    (type $e' (variant (case "invalid" string) (case "gone")))
    (export "error" (type $e (eq $e')))
    (export "create" (func (param "order" $o) (result (result u64 (error $e)))))))
  (import "missing" (instance
    (export "delete" (func (param "id" u64)))))
  (import "resourceful" (instance
    (export "conn" (type $c (sub resource)))
    (export "open" (func (result (own $c))))))
)
"#;

    fn instance(engine: &wasmtime::Engine, component: &Component, name: &str) -> ComponentInstance {
        match component
            .component_type()
            .get_import(engine, name)
            .map(|e| e.ty)
        {
            Some(ComponentItem::ComponentInstance(instance)) => instance,
            _ => panic!("no instance import {name}"),
        }
    }

    #[test]
    fn links_are_checked_structurally() {
        let engine = wasmtime::Engine::default();
        let component = Component::new(&engine, WAT).expect("component");
        let export = instance(&engine, &component, "same");
        let check =
            |name: &str| check_interface(&engine, &instance(&engine, &component, name), &export);
        assert_eq!(check("same"), Ok(()));
        // Importing fewer functions, with other parameter names, is fine.
        assert_eq!(check("subset"), Ok(()));
        let err = check("wrong-field").expect_err("field type differs");
        assert!(err.contains("create") && err.contains("field qty"), "{err}");
        assert!(err.contains("expected string, found u32"), "{err}");
        let err = check("wrong-case").expect_err("case differs");
        assert!(err.contains("case `gone` vs `sold-out`"), "{err}");
        let err = check("missing").expect_err("not exported");
        assert!(err.contains("`delete` is not exported"), "{err}");
        let resourceful = instance(&engine, &component, "resourceful");
        let err = check_interface(&engine, &resourceful, &resourceful).expect_err("resource");
        assert!(err.contains("only value types"), "{err}");
    }
}
