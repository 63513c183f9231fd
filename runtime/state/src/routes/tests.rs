use super::*;
use crate::testing::{Harness, deploy, fail, rollback, tenants};
use crate::{Command, CommandError};

fn two_tenants() -> Harness {
    tenants(&["acme", "globex"])
}

#[track_caller]
fn assert_rejected(h: &mut Harness, command: Command, message: &str) {
    assert_eq!(h.rejected(command).to_string(), message);
}

#[test]
fn host_patterns_overlap() {
    let p = HostPattern::parse;
    assert!(p("a.com").overlaps(p("a.com")));
    assert!(!p("a.com").overlaps(p("b.com")));
    assert!(p("*.a.com").overlaps(p("x.a.com")));
    assert!(p("x.y.a.com").overlaps(p("*.a.com")));
    assert!(!p("a.com").overlaps(p("*.a.com")));
    assert!(!p("ba.com").overlaps(p("*.a.com")));
    assert!(p("*.a.com").overlaps(p("*.a.com")));
    assert!(p("*.a.com").overlaps(p("*.x.a.com")));
    assert!(p("*.x.a.com").overlaps(p("*.a.com")));
    assert!(!p("*.a.com").overlaps(p("*.b.com")));
    assert!(!p("*.a.com").overlaps(p("*.ba.com")));
    assert!(is_under("x.a.com", "a.com"));
    assert!(!is_under("a.com", "a.com"));
    assert!(!is_under("xa.com", "a.com"));
}

#[test]
fn routes_display_and_normalize() {
    let route = Route::new(Some("Shop.Example.com"), "/api/").unwrap();
    assert_eq!(route.to_string(), "shop.example.com/api");
    assert_eq!(Route::new(None, "/").unwrap().to_string(), "/");
    assert!(Route::new(Some("a.com"), "api").is_err());
    let json = serde_json::to_string(&Route::new(None, "/x").unwrap()).unwrap();
    assert_eq!(json, r#"{"path_prefix":"/x"}"#);
}

#[test]
fn exact_host_of_another_tenant_is_refused() {
    let mut h = two_tenants();
    h.deploy_active("acme", "shop", &["shop.example.com/"]);
    // Another path on the same host is still the other tenant's host, and the
    // message reveals neither the tenant nor the app.
    for spec in [
        "shop.example.com/",
        "shop.example.com/other",
        "SHOP.example.com/x",
    ] {
        assert_rejected(
            &mut h,
            deploy("globex", "site", &[spec]),
            "host shop.example.com belongs to another tenant",
        );
    }
    // Other hosts are free.
    h.deploy_active("globex", "site", &["example.com/", "www.example.com/"]);
}

#[test]
fn exact_host_under_another_tenants_wildcard_is_refused() {
    let mut h = two_tenants();
    h.deploy_active("acme", "shop", &["*.example.com/"]);
    for spec in ["x.example.com/", "a.b.example.com/api"] {
        assert_rejected(
            &mut h,
            deploy("globex", "site", &[spec]),
            &format!(
                "host {} belongs to another tenant",
                &spec[..spec.find('/').unwrap()]
            ),
        );
    }
    // The wildcard does not cover the bare domain.
    h.deploy_active("globex", "site", &["example.com/"]);
}

#[test]
fn wildcard_overlapping_another_tenant_is_refused() {
    let mut h = two_tenants();
    h.deploy_active("acme", "shop", &["shop.example.com/", "*.acme.io/"]);
    let cases = [
        "*.example.com/", // covers acme's exact host
        "*.acme.io/",     // the same wildcard
        "*.eu.acme.io/",  // covered by acme's wildcard
    ];
    for spec in cases {
        let wildcard = &spec[..spec.find('/').unwrap()];
        assert_rejected(
            &mut h,
            deploy("globex", "site", &[spec]),
            &format!("wildcard {wildcard} overlaps hosts that belong to another tenant"),
        );
    }
    h.deploy_active("globex", "site", &["*.shop.example.org/", "*.io.example/"]);
    // And the other way round: acme may not take hosts under globex's wildcard.
    assert_rejected(
        &mut h,
        deploy("acme", "shop", &["x.shop.example.org/"]),
        "host x.shop.example.org belongs to another tenant",
    );
}

#[test]
fn same_pair_is_refused_even_within_a_tenant() {
    let mut h = two_tenants();
    h.deploy_active("acme", "shop", &["shop.example.com/", "/api", "*.acme.io/"]);
    assert_rejected(
        &mut h,
        deploy("acme", "cart", &["shop.example.com/"]),
        "route shop.example.com/ is already used by app `shop` of tenant `acme`",
    );
    assert_rejected(
        &mut h,
        deploy("acme", "cart", &["/api/"]),
        "route /api is already used by app `shop` of tenant `acme`",
    );
    assert_rejected(
        &mut h,
        deploy("acme", "cart", &["*.acme.io/"]),
        "route *.acme.io/ is already used by app `shop` of tenant `acme`",
    );
    // Same tenant, other paths or overlapping patterns: fine.
    h.deploy_active(
        "acme",
        "cart",
        &[
            "shop.example.com/cart",
            "/cart",
            "eu.acme.io/",
            "*.eu.acme.io/",
        ],
    );
}

#[test]
fn hostless_routes_are_shared_by_path() {
    let mut h = two_tenants();
    h.deploy_active("acme", "shop", &["/"]);
    assert_rejected(
        &mut h,
        deploy("globex", "site", &["/"]),
        "route / is already used by another tenant",
    );
    h.deploy_active("globex", "site", &["/globex"]);
    assert!(matches!(
        h.rejected(deploy("acme", "blog", &["/globex"])),
        CommandError::RouteOfAnotherTenant { .. }
    ));
}

#[test]
fn an_apps_own_claims_never_block_its_new_versions() {
    let mut h = two_tenants();
    h.deploy_active("acme", "shop", &["shop.example.com/", "/"]);
    h.deploy("acme", "shop", &["shop.example.com/", "/"]);
    h.deploy_active("acme", "shop", &["shop.example.com/", "/"]);
    assert_eq!(h.state.app("acme", "shop").unwrap().current, Some(3));
}

#[test]
fn pending_versions_claim_routes() {
    let mut h = two_tenants();
    h.deploy("acme", "shop", &["shop.example.com/"]);
    assert!(matches!(
        h.rejected(deploy("globex", "site", &["shop.example.com/"])),
        CommandError::HostOfAnotherTenant { .. }
    ));
    assert!(matches!(
        h.rejected(deploy("acme", "cart", &["shop.example.com/"])),
        CommandError::RouteInUse { .. }
    ));
}

#[test]
fn failed_stale_and_replaced_versions_release_their_claims() {
    let mut h = two_tenants();
    // Failed.
    h.deploy("acme", "a", &["failed.com/"]);
    h.ok(fail("acme", "a", 1));
    h.deploy_active("globex", "x", &["failed.com/"]);
    // Replaced by a newer current version.
    h.deploy_active("acme", "b", &["old.com/"]);
    h.deploy_active("acme", "b", &["new.com/"]);
    h.deploy_active("globex", "y", &["old.com/"]);
    // Stale: pending but older than an activated version.
    h.deploy_active("acme", "c", &["/c"]);
    h.deploy("acme", "c", &["stale.com/"]);
    h.deploy_active("acme", "c", &["/c"]);
    h.deploy_active("globex", "z", &["stale.com/"]);
    // ...but the current version of c still holds /c.
    assert!(matches!(
        h.rejected(deploy("globex", "w", &["/c"])),
        CommandError::RouteOfAnotherTenant { .. }
    ));
}

#[test]
fn rollback_rechecks_claims_released_meanwhile() {
    let mut h = two_tenants();
    h.deploy_active("acme", "shop", &["old.com/"]);
    h.deploy_active("acme", "shop", &["new.com/"]);
    h.deploy_active("globex", "site", &["old.com/"]);
    assert_rejected(
        &mut h,
        rollback("acme", "shop", None),
        "host old.com belongs to another tenant",
    );
    h.deploy_active("acme", "other", &["new.com/x"]);
    h.ok(Command::DeleteApp {
        tenant: "globex".into(),
        app: "site".into(),
    });
    h.ok(rollback("acme", "shop", None));
    // Back on new.com: the route of v2 is free again for its own app.
    h.ok(rollback("acme", "shop", Some(2)));
    assert_eq!(h.state.app("acme", "shop").unwrap().current, Some(2));
}
