//! The DNS names that identify hosts in certificates and in the TLS server name.
//!
//! A host's certificate carries exactly one subject alternative name,
//! `node-<id>.cluster.cloudware`. The name is the same in every cluster: what separates
//! clusters is the CA that signed the certificate, not the name, so a host can name the
//! peer it dials knowing only the peer's node id.

use rustls::pki_types::{DnsName, ServerName};

/// The DNS suffix shared by every host name: `node-<id>.` + this.
pub const HOST_NAME_SUFFIX: &str = "cluster.cloudware";

/// The server name a joining host dials when it does not know the peer's node id: the join
/// verifier ([`join_client_config`](crate::join_client_config)) then accepts any host of
/// the pinned cluster. Host certificates never carry this name.
pub const JOIN_SERVER_NAME: &str = "join.cluster.cloudware";

/// The DNS name of host `node_id`: `node-<id>.cluster.cloudware`.
pub fn host_dns_name(node_id: u64) -> String {
    format!("node-{node_id}.{HOST_NAME_SUFFIX}")
}

/// The TLS server name of host `node_id` (see [`host_dns_name`]), for dialling it.
pub fn host_server_name(node_id: u64) -> ServerName<'static> {
    let name = DnsName::try_from(host_dns_name(node_id))
        .expect("node-<digits>.cluster.cloudware is a valid DNS name");
    ServerName::DnsName(name)
}

/// The node id named by a host DNS name, if `name` is one (`node-<id>.cluster.cloudware`,
/// with the id in canonical decimal form).
pub fn node_id_from_dns_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix("node-")?
        .strip_suffix(HOST_NAME_SUFFIX)?
        .strip_suffix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u64 = digits.parse().ok()?;
    // Reject "007": one node, one spelling.
    (id.to_string() == digits).then_some(id)
}

pub(crate) fn join_server_name() -> ServerName<'static> {
    let name = DnsName::try_from(JOIN_SERVER_NAME).expect("JOIN_SERVER_NAME is a valid DNS name");
    ServerName::DnsName(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_round_trip() {
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(node_id_from_dns_name(&host_dns_name(id)), Some(id));
        }
        assert_eq!(host_dns_name(7), "node-7.cluster.cloudware");
        assert_eq!(
            host_server_name(7).to_str(),
            "node-7.cluster.cloudware".to_string()
        );
    }

    #[test]
    fn other_names_are_not_hosts() {
        for name in [
            "node-.cluster.cloudware",
            "node-07.cluster.cloudware",
            "node-+7.cluster.cloudware",
            "node-7.other.cloudware",
            "node-7cluster.cloudware",
            "node-18446744073709551616.cluster.cloudware",
            "join.cluster.cloudware",
            "node-7.cluster.cloudware.evil",
        ] {
            assert_eq!(node_id_from_dns_name(name), None, "{name}");
        }
    }
}
