use super::*;
use crate::testing::{Harness, digest, tenants};

fn target(tenant: &str, app: &str, routes: &[&str]) -> RouteTarget {
    RouteTarget {
        capabilities: Default::default(),
        tenant: tenant.into(),
        app: app.into(),
        version: 1,
        package: digest(1),
        routes: routes
            .iter()
            .map(|spec| crate::testing::route(spec).normalized().unwrap())
            .collect(),
        limits: DeploymentLimits::default(),
        scale: Scale::default(),
        placement: BTreeMap::new(),
        allow_outbound: vec![],
        config: BTreeMap::new(),
    }
}

/// The app that serves `host` and `path`, or `-`.
fn app<'a>(table: &'a RoutingTable, host: &str, path: &str) -> &'a str {
    table.route(host, path).map_or("-", |t| t.app.as_str())
}

fn table() -> RoutingTable {
    RoutingTable::new(vec![
        target(
            "acme",
            "shop",
            &["shop.example.com/", "shop.example.com/api"],
        ),
        target("acme", "api", &["shop.example.com/api/v2"]),
        target("acme", "wild", &["*.example.com/"]),
        target(
            "acme",
            "eu",
            &["*.eu.example.com/", "*.eu.example.com/static"],
        ),
        target("globex", "site", &["globex.com/blog"]),
        target("globex", "root", &["/"]),
        target("initech", "docs", &["/docs"]),
    ])
}

#[test]
fn exact_host_beats_wildcard() {
    let t = table();
    assert_eq!(app(&t, "shop.example.com", "/"), "shop");
    assert_eq!(app(&t, "other.example.com", "/"), "wild");
    assert_eq!(app(&t, "a.b.example.com", "/"), "wild");
}

#[test]
fn longest_wildcard_wins() {
    let t = table();
    assert_eq!(app(&t, "x.eu.example.com", "/"), "eu");
    assert_eq!(app(&t, "y.x.eu.example.com", "/"), "eu");
    // The wildcard's own domain is not covered by it.
    assert_eq!(app(&t, "eu.example.com", "/"), "wild");
    assert_eq!(app(&t, "example.com", "/"), "root");
}

#[test]
fn longest_prefix_wins_on_segment_boundaries() {
    let t = table();
    assert_eq!(app(&t, "shop.example.com", "/api"), "shop");
    assert_eq!(app(&t, "shop.example.com", "/api/v1"), "shop");
    assert_eq!(app(&t, "shop.example.com", "/api/v2"), "api");
    assert_eq!(app(&t, "shop.example.com", "/api/v2/x"), "api");
    assert_eq!(app(&t, "shop.example.com", "/api/v20"), "shop");
    assert_eq!(app(&t, "shop.example.com", "/apix"), "shop");
    assert_eq!(app(&t, "x.eu.example.com", "/static/app.js"), "eu");
    assert_eq!(app(&t, "nobody.org", "/docs"), "docs");
    assert_eq!(app(&t, "nobody.org", "/docs/intro"), "docs");
    assert_eq!(app(&t, "nobody.org", "/docsx"), "root");
}

#[test]
fn owned_hosts_never_fall_through() {
    let t = table();
    // globex.com is routed only for /blog: other paths do not reach the
    // host-less routes.
    assert_eq!(app(&t, "globex.com", "/blog/post"), "site");
    assert_eq!(app(&t, "globex.com", "/"), "-");
    assert_eq!(app(&t, "globex.com", "/docs"), "-");
    // An exact host does not fall through to the wildcard covering it.
    let t = RoutingTable::new(vec![
        target("acme", "exact", &["a.example.com/only"]),
        target("acme", "wild", &["*.example.com/"]),
    ]);
    assert_eq!(app(&t, "a.example.com", "/"), "-");
    assert_eq!(app(&t, "a.example.com", "/only/x"), "exact");
}

#[test]
fn unowned_hosts_use_hostless_routes() {
    let t = table();
    assert_eq!(app(&t, "unknown.net", "/"), "root");
    assert_eq!(app(&t, "localhost:8080", "/anything"), "root");
    assert_eq!(app(&t, "10.0.0.1", "/"), "root");
    assert_eq!(app(&t, "[::1]:8080", "/docs"), "docs");
    let no_default = RoutingTable::new(vec![target("acme", "shop", &["/shop"])]);
    assert_eq!(app(&no_default, "x", "/"), "-");
    assert_eq!(app(&RoutingTable::default(), "x", "/"), "-");
}

#[test]
fn request_hosts_are_normalized() {
    let t = table();
    assert_eq!(app(&t, "SHOP.Example.COM", "/"), "shop");
    assert_eq!(app(&t, "shop.example.com:443", "/"), "shop");
    assert_eq!(app(&t, "shop.example.com.", "/"), "shop");
    assert_eq!(app(&t, "X.EU.example.com:8443", "/"), "eu");
    assert_eq!(request_host("[::1]:80"), "[::1]");
    assert_eq!(request_host("[::1]"), "[::1]");
    assert!(matches!(request_host("lower.case"), Cow::Borrowed(_)));
}

#[test]
fn queries_and_odd_paths() {
    let t = table();
    assert_eq!(app(&t, "shop.example.com", "/api/v2?x=/"), "api");
    assert_eq!(app(&t, "shop.example.com", "/api/v2#frag"), "api");
    assert_eq!(app(&t, "nobody.org", "/docs?q"), "docs");
    assert_eq!(app(&t, "nobody.org", ""), "root");
    assert_eq!(app(&t, "nobody.org", "*"), "root");
    assert_eq!(app(&t, "", "/docs"), "docs");
}

#[test]
fn prefix_matching() {
    assert!(prefix_matches("/", "/"));
    assert!(prefix_matches("/", "/x"));
    assert!(prefix_matches("/", ""));
    assert!(prefix_matches("/a", "/a"));
    assert!(prefix_matches("/a", "/a/"));
    assert!(prefix_matches("/a", "/a/b"));
    assert!(!prefix_matches("/a", "/ab"));
    assert!(!prefix_matches("/a", "/"));
    assert!(!prefix_matches("/a/b", "/a"));
}

#[test]
fn duplicate_claims_resolve_to_the_first_target() {
    let t = RoutingTable::new(vec![
        target("a", "first", &["/"]),
        target("b", "second", &["/"]),
    ]);
    assert_eq!(app(&t, "x", "/"), "first");
}

#[test]
fn state_builds_the_table_from_current_versions() {
    let mut h: Harness = tenants(&["acme", "globex"]);
    h.deploy_active("acme", "shop", &["shop.acme.com/"]);
    h.deploy("acme", "shop", &["shop.acme.com/", "shop.acme.com/new"]);
    h.deploy("acme", "draft", &["/draft"]);
    h.deploy_active("globex", "site", &["/"]);
    let table = h.state.routing_table();
    let targets: Vec<_> = table
        .targets()
        .iter()
        .map(|t| (t.tenant.as_str(), t.app.as_str(), t.version))
        .collect();
    assert_eq!(targets, [("acme", "shop", 1), ("globex", "site", 1)]);
    // Pending versions do not route yet.
    assert_eq!(app(&table, "shop.acme.com", "/new"), "shop");
    assert_eq!(table.route("shop.acme.com", "/new").unwrap().version, 1);
    assert_eq!(app(&table, "x.org", "/draft"), "site");
    let shop = &table.targets()[0];
    assert_eq!(
        shop.package,
        crate::testing::digest(crate::testing::package_of("acme"))
    );
    assert_eq!(shop.scale, Scale::default());
}
