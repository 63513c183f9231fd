//! Packages: uploaded `.wasm` components, named by their content digest.
//!
//! Only metadata lives here; the bytes live in a blob store elsewhere.

use crate::command::{Outcome, PackageRegistration};
use crate::error::{CommandError, SnapshotError};
use crate::validation;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The metadata of an uploaded component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// `sha256:` followed by the 64 lowercase hex digits of the bytes' sha256.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// The interfaces the component imports.
    pub imports: Vec<String>,
    /// The interfaces the component exports.
    pub exports: Vec<String>,
    /// The tenants that uploaded it; only they may deploy it.
    pub owners: BTreeSet<String>,
    /// When it was first uploaded (unix milliseconds, from the command).
    pub uploaded_at: u64,
}

impl Package {
    /// Whether `tenant` uploaded the package (and so may deploy it).
    pub fn is_owned_by(&self, tenant: &str) -> bool {
        self.owners.contains(tenant)
    }
}

/// What a `RegisterPackage` command carries.
pub(crate) struct NewPackage<'a> {
    pub(crate) digest: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) size: u64,
    pub(crate) imports: &'a [String],
    pub(crate) exports: &'a [String],
    pub(crate) at: u64,
}

/// All packages, by digest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Packages {
    by_digest: BTreeMap<String, Package>,
}

impl Packages {
    /// Rebuilds the registry from a snapshot, checking that each package is
    /// stored under its own digest and has owners.
    pub(crate) fn from_parts(by_digest: BTreeMap<String, Package>) -> Result<Self, SnapshotError> {
        for (key, package) in &by_digest {
            if *key != package.digest || package.owners.is_empty() {
                return Err(SnapshotError::Inconsistent(format!(
                    "package `{key}` has a different digest or no owner"
                )));
            }
        }
        Ok(Packages { by_digest })
    }

    pub(crate) fn map(&self) -> &BTreeMap<String, Package> {
        &self.by_digest
    }

    pub(crate) fn get(&self, digest: &str) -> Option<&Package> {
        self.by_digest.get(digest)
    }

    /// The package, if `tenant` owns it. The error does not reveal whether
    /// another tenant uploaded the same bytes.
    pub(crate) fn require_owned(
        &self,
        digest: &str,
        tenant: &str,
    ) -> Result<&Package, CommandError> {
        validation::check_digest(digest)?;
        self.by_digest
            .get(digest)
            .filter(|package| package.is_owned_by(tenant))
            .ok_or_else(|| CommandError::UnknownPackage {
                tenant: tenant.to_owned(),
                digest: digest.to_owned(),
            })
    }

    /// Registers a package for a tenant, whose existence the caller has checked.
    pub(crate) fn register(&mut self, new: NewPackage<'_>) -> Result<Outcome, CommandError> {
        validation::check_digest(new.digest)?;
        let registration = match self.by_digest.get_mut(new.digest) {
            Some(existing) => {
                if existing.size != new.size
                    || existing.imports != new.imports
                    || existing.exports != new.exports
                {
                    return Err(CommandError::PackageMismatch {
                        digest: new.digest.to_owned(),
                    });
                }
                if existing.owners.insert(new.tenant.to_owned()) {
                    PackageRegistration::OwnerAdded
                } else {
                    PackageRegistration::AlreadyPresent
                }
            }
            None => {
                self.by_digest.insert(
                    new.digest.to_owned(),
                    Package {
                        digest: new.digest.to_owned(),
                        size: new.size,
                        imports: new.imports.to_vec(),
                        exports: new.exports.to_vec(),
                        owners: BTreeSet::from([new.tenant.to_owned()]),
                        uploaded_at: new.at,
                    },
                );
                PackageRegistration::New
            }
        };
        Ok(Outcome::PackageRegistered { registration })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::testing::{Harness, digest, register};

    #[test]
    fn registers_packages_and_owners() {
        let mut h = Harness::with_tenants(&["acme", "globex"]);
        assert_eq!(
            h.ok(register(1, "acme")),
            Outcome::PackageRegistered {
                registration: PackageRegistration::New
            }
        );
        assert_eq!(
            h.ok(register(1, "acme")),
            Outcome::PackageRegistered {
                registration: PackageRegistration::AlreadyPresent
            }
        );
        assert_eq!(
            h.ok(register(1, "globex")),
            Outcome::PackageRegistered {
                registration: PackageRegistration::OwnerAdded
            }
        );
        h.ok(register(2, "globex"));

        let package = h.state.package(&digest(1)).unwrap();
        assert_eq!(
            package.owners,
            BTreeSet::from(["acme".into(), "globex".into()])
        );
        assert_eq!(package.size, 100);
        assert_eq!(package.imports, ["wasi:http/outgoing-handler"]);
        assert_eq!(package.exports, ["wasi:http/incoming-handler"]);
        assert!(package.is_owned_by("acme"));
        assert_eq!(h.state.packages().count(), 2);
        assert_eq!(h.state.packages_of("acme").count(), 1);
        assert_eq!(h.state.packages_of("globex").count(), 2);
        assert_eq!(h.state.packages_of("nobody").count(), 0);
    }

    #[test]
    fn rejects_bad_registrations() {
        let mut h = Harness::with_tenants(&["acme"]);
        h.ok(register(1, "acme"));
        assert_eq!(
            h.rejected(register(2, "nope")).to_string(),
            "tenant `nope` does not exist"
        );
        let mut bad = register(2, "acme");
        if let Command::RegisterPackage { digest, .. } = &mut bad {
            *digest = "sha256:abc".into();
        }
        assert!(matches!(
            h.rejected(bad),
            CommandError::InvalidDigest { .. }
        ));
        let mut changed = register(1, "acme");
        if let Command::RegisterPackage { size, .. } = &mut changed {
            *size = 101;
        }
        assert!(matches!(
            h.rejected(changed),
            CommandError::PackageMismatch { .. }
        ));
    }

    #[test]
    fn ownership_is_required_and_not_revealed() {
        let mut h = Harness::with_tenants(&["acme", "globex"]);
        h.ok(register(1, "acme"));
        let packages = &h.state.packages;
        assert!(packages.require_owned(&digest(1), "acme").is_ok());
        let foreign = packages.require_owned(&digest(1), "globex").unwrap_err();
        let missing = packages.require_owned(&digest(9), "globex").unwrap_err();
        assert_eq!(
            foreign.to_string(),
            format!(
                "package {} has not been uploaded by tenant `globex`",
                digest(1)
            )
        );
        assert!(matches!(missing, CommandError::UnknownPackage { .. }));
    }
}
