//! Codec tests against the function types of a real (WAT) component.

mod compound;
mod scalars;

use super::*;
use std::sync::OnceLock;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Config, Engine};

/// A component whose imports have every shape the codec handles. Imports
/// need no core code, so the component is only types.
const WAT: &str = r#"
(component
  (type $item' (record (field "sku" string) (field "qty" u32) (field "note" (option string))))
  (import "item" (type $item (eq $item')))
  (type $order' (record (field "id" u64) (field "items" (list $item)) (field "express" bool)))
  (import "order" (type $order (eq $order')))
  (type $shape' (variant (case "circle" f64) (case "square" (tuple f32 f32)) (case "point")))
  (import "shape" (type $shape (eq $shape')))
  (type $color' (enum "red" "green" "light-blue"))
  (import "color" (type $color (eq $color')))
  (type $perms' (flags "read" "write" "exec"))
  (import "perms" (type $perms (eq $perms')))
  (import "handle" (type $handle (sub resource)))

  (import "place-order" (func (param "order" $order) (param "coupon" (option string)) (result u32)))
  (import "ints" (func (param "a" s8) (param "b" u8) (param "c" s16) (param "d" u16)
                       (param "e" s32) (param "f" u32) (param "g" s64) (param "h" u64)))
  (import "floats" (func (param "x" f32) (param "y" f64) (result f32)))
  (import "text" (func (param "c" char) (param "s" string) (param "ok" bool) (result string)))
  (import "lists" (func (param "bytes" (list u8)) (param "pair" (tuple u32 string))
                        (param "three" (list u16 3)) (result (list $item))))
  (import "options" (func (param "o" (option u32)) (param "oo" (option (option u32)))
                          (result (option (option u32)))))
  (import "results" (func (param "r" (result u32 (error string))) (param "empty" (result))
                          (param "half" (result u32)) (result (result string (error u32)))))
  (import "shapes" (func (param "shape" $shape) (param "color" $color) (param "perms" $perms)
                         (result $shape)))
  (import "maps" (func (param "by-name" (map string u32)) (param "by-id" (map u32 string))
                       (result (map string u32))))
  (import "no-result" (func))
  (import "take-handle" (func (param "h" (own $handle))))
)
"#;

pub(super) fn func(name: &str) -> ComponentFunc {
    static COMPONENT: OnceLock<(Engine, Component)> = OnceLock::new();
    let (engine, component) = COMPONENT.get_or_init(|| {
        let mut config = Config::new();
        config
            .wasm_component_model_map(true)
            .wasm_component_model_fixed_length_lists(true);
        let engine = Engine::new(&config).expect("engine");
        let component = Component::new(&engine, WAT).expect("test component compiles");
        (engine, component)
    });
    match component.component_type().get_import(engine, name) {
        Some(ext) => match ext.ty {
            ComponentItem::ComponentFunc(f) => f,
            other => panic!("{name} is not a function: {other:?}"),
        },
        None => panic!("no import {name}"),
    }
}

/// Decodes `biz` for `name`, re-encodes each argument, and returns the
/// object of re-encoded arguments.
pub(super) fn round_trip(name: &str, biz: Json) -> Json {
    let f = func(name);
    let args = decode_args(&f, &biz.to_string()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut out = serde_json::Map::new();
    for ((param, ty), val) in f.params().zip(&args) {
        out.insert(
            param.to_string(),
            val_to_json(val, &ty, param).expect("encode"),
        );
    }
    Json::Object(out)
}

pub(super) fn decode_err(name: &str, biz: &str) -> String {
    match decode_args(&func(name), biz) {
        Ok(args) => panic!("{name} {biz}: expected an error, got {args:?}"),
        Err(e) => e.to_string(),
    }
}
