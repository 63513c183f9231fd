//! The fixture of the `OpenApi::handle` tests: an in-test partner directory
//! and an invoker stub that records the values it is called with. Function
//! types come from a real (WAT) component.

#![allow(dead_code, reason = "each test binary uses part of the fixture")]

use bytes::Bytes;
use cloudware_partner::client::{request_fields, sign_request};
use cloudware_partner::keys::{PlatformKey, parse_private_key, parse_public_key};
use cloudware_partner::reply::{PartnerReply, verify_reply};
use cloudware_partner::service::{
    InvokeError, OpenApi, OpenApiConfig, PartnerDirectory, PartnerInfo, PartnerInvoker,
};
use futures::future::BoxFuture;
use rsa::RsaPrivateKey;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, Val};
use wasmtime::{Config, Engine};

pub const FORM: &str = "application/x-www-form-urlencoded";
pub const PARTNER: &str = "2021000000000001";
/// 2024-05-01 12:00:00 UTC, the tests' "now".
pub const NOW_MS: u64 = 1_714_564_800_000;

const WAT: &str = r#"
(component
  (type $item' (record (field "sku" string) (field "qty" u32)))
  (import "item" (type $item (eq $item')))
  (type $order' (record (field "id" u64) (field "items" (list $item))))
  (import "order" (type $order (eq $order')))
  (import "place-order" (func (param "order" $order) (result u32)))
  (import "ping" (func))
  (import "secret" (func (result string)))
)
"#;

fn function_types() -> HashMap<String, ComponentFunc> {
    let engine = Engine::new(&Config::new()).expect("engine");
    let component = Component::new(&engine, WAT).expect("component");
    let ty = component.component_type();
    ["place-order", "ping", "secret"]
        .into_iter()
        .map(|name| match ty.get_import(&engine, name).map(|e| e.ty) {
            Some(ComponentItem::ComponentFunc(f)) => (name.to_string(), f),
            other => panic!("{name}: {other:?}"),
        })
        .collect()
}

pub struct Directory(pub Vec<PartnerInfo>);

impl PartnerDirectory for Directory {
    fn partner(&self, app_id: &str) -> Option<PartnerInfo> {
        self.0.iter().find(|p| p.app_id == app_id).cloned()
    }
}

pub type Call = (String, String, String, Vec<Val>);
pub type Responder = dyn Fn(&str) -> Result<Vec<Val>, InvokeError> + Send + Sync;

pub struct Invoker {
    pub types: HashMap<String, ComponentFunc>,
    pub calls: Mutex<Vec<Call>>,
    pub respond: Box<Responder>,
}

impl PartnerInvoker for Invoker {
    fn function_type(&self, tenant: &str, app: &str, function: &str) -> Option<ComponentFunc> {
        (tenant == "acme" && app == "shop")
            .then(|| self.types.get(function).cloned())
            .flatten()
    }

    fn invoke(
        &self,
        tenant: &str,
        app: &str,
        function: &str,
        args: Vec<Val>,
    ) -> BoxFuture<'static, Result<Vec<Val>, InvokeError>> {
        let result = (self.respond)(function);
        self.calls
            .lock()
            .expect("calls")
            .push((tenant.into(), app.into(), function.into(), args));
        Box::pin(async move { result })
    }
}

pub struct Fixture {
    pub api: OpenApi,
    pub invoker: Arc<Invoker>,
    pub partner_key: RsaPrivateKey,
    pub platform: PlatformKey,
}

pub fn fixture_with(respond: Box<Responder>) -> Fixture {
    let partner_key =
        parse_private_key(include_str!("../../testdata/partner.key.pem")).expect("partner key");
    let public_key =
        parse_public_key(include_str!("../../testdata/partner.pub.pem")).expect("partner pub");
    let platform =
        PlatformKey::from_pem(include_str!("../../testdata/platform.key.pem")).expect("platform");
    let directory = Arc::new(Directory(vec![PartnerInfo {
        app_id: PARTNER.into(),
        tenant: "acme".into(),
        public_key,
        // `shop.missing` is exposed but does not exist.
        exposed: vec![
            "shop.place-order".into(),
            "shop.ping".into(),
            "shop.missing".into(),
        ],
    }]));
    let invoker = Arc::new(Invoker {
        types: function_types(),
        calls: Mutex::new(Vec::new()),
        respond,
    });
    let api = OpenApi::new(
        directory,
        invoker.clone(),
        platform.clone(),
        OpenApiConfig::default(),
    )
    .with_clock(Arc::new(|| UNIX_EPOCH + Duration::from_millis(NOW_MS)));
    Fixture {
        api,
        invoker,
        partner_key,
        platform,
    }
}

pub fn fixture() -> Fixture {
    fixture_with(Box::new(|function| match function {
        "place-order" => Ok(vec![Val::U32(42)]),
        _ => Ok(vec![]),
    }))
}

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(NOW_MS)
}

pub const ORDER: &str = r#"{"order":{"id":7,"items":[{"sku":"A-1","qty":2}]}}"#;

pub fn fields(method: &str, biz: &str) -> BTreeMap<String, String> {
    request_fields(PARTNER, method, biz, now())
}

impl Fixture {
    pub fn body(&self, fields: &BTreeMap<String, String>) -> Bytes {
        Bytes::from(sign_request(&self.partner_key, fields).expect("sign"))
    }

    /// Sends `body`, checks the reply's signature and that its status
    /// matches its code, and returns the reply.
    pub async fn send(&self, content_type: &str, body: Bytes) -> (u16, PartnerReply) {
        let response = self.api.handle(Some(content_type), body).await;
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        let status = response.status().as_u16();
        let reply = verify_reply(self.platform.public_key(), response.body())
            .expect("every reply is signed by the platform key");
        (status, reply)
    }

    pub async fn send_form(&self, fields: &BTreeMap<String, String>) -> (u16, PartnerReply) {
        self.send(FORM, self.body(fields)).await
    }

    pub fn calls(&self) -> Vec<Call> {
        self.invoker.calls.lock().expect("calls").clone()
    }
}
