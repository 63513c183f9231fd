//! What a host keeps in `DATA_DIR/cluster`: its membership record (`host.json`: id and name),
//! its TLS identity (`host.key` 0600, `host.crt`, `ca.crt`), the cluster CA
//! (`cluster-ca.key` 0600, `cluster-ca.crt`) and the join token (`join.token`, 0600).
//! Every host keeps the CA, so any host can admit new ones.

use cloudware_cluster_tls::{ClusterCa, HostIdentity, JoinToken};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// This host's place in its cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Host id (= raft node id).
    pub node_id: u64,
    /// Host name.
    pub name: String,
    /// Whether the raft group has accepted it as a voter (a joining host records this once
    /// its `members` call succeeded).
    #[serde(default)]
    pub voter: bool,
}

/// The `cluster` directory of a host's data directory.
#[derive(Clone, Debug)]
pub struct ClusterDir {
    dir: PathBuf,
}

impl ClusterDir {
    /// `data_dir/cluster`, created (0700) if missing.
    pub fn open(data_dir: &Path) -> std::io::Result<ClusterDir> {
        let dir = data_dir.join("cluster");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(ClusterDir { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The membership record, if this host founded or joined a cluster.
    pub fn membership(&self) -> std::io::Result<Option<Membership>> {
        match std::fs::read(self.dir.join("host.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records the membership (durably).
    pub fn save_membership(&self, membership: &Membership) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(membership).map_err(std::io::Error::other)?;
        write_private(&self.dir.join("host.json"), &json)
    }

    /// This host's TLS identity.
    pub fn identity(&self) -> Result<HostIdentity, cloudware_cluster_tls::Error> {
        HostIdentity::load(&self.dir)
    }

    /// Stores this host's TLS identity.
    pub fn save_identity(
        &self,
        identity: &HostIdentity,
    ) -> Result<(), cloudware_cluster_tls::Error> {
        identity.save(&self.dir)
    }

    /// The cluster CA (every member keeps it).
    pub fn ca(&self) -> Result<ClusterCa, cloudware_cluster_tls::Error> {
        ClusterCa::load(&self.dir)
    }

    /// Stores the cluster CA.
    pub fn save_ca(&self, ca: &ClusterCa) -> Result<(), cloudware_cluster_tls::Error> {
        ca.save(&self.dir)
    }

    /// The join token new hosts present, if this host has it.
    pub fn join_token(&self) -> std::io::Result<Option<JoinToken>> {
        match std::fs::read_to_string(self.dir.join("join.token")) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores the join token (0600).
    pub fn save_join_token(&self, token: &JoinToken) -> std::io::Result<()> {
        write_private(
            &self.dir.join("join.token"),
            format!("{token}\n").as_bytes(),
        )
    }
}

/// Writes `bytes` to `path` through a temporary file (mode 0600), fsynced and renamed.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn membership_and_token_round_trip_privately() {
        let data = tempfile::tempdir().unwrap();
        let dir = ClusterDir::open(data.path()).unwrap();
        assert_eq!(dir.membership().unwrap(), None);
        assert!(dir.join_token().unwrap().is_none());
        let membership = Membership {
            node_id: 3,
            name: "c".into(),
            voter: false,
        };
        dir.save_membership(&membership).unwrap();
        assert_eq!(dir.membership().unwrap(), Some(membership));
        let ca = ClusterCa::generate("test").unwrap();
        let token = JoinToken::new(&ca.fingerprint());
        dir.save_join_token(&token).unwrap();
        assert_eq!(dir.join_token().unwrap(), Some(token));
        for file in ["host.json", "join.token"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
}
