//! `HostPolicy`: which addresses a webhook may be sent to, as a value the
//! operator configures once and both checks take (create time: literal IP
//! hosts of a URL; delivery time: every address a host resolves to).

use core::net::IpAddr;

use ipnet::IpNet;

use crate::address::is_public_address;

/// Which IP addresses deliveries may go to.
///
/// The default is [`is_public_address`]: globally
/// reachable unicast only. An operator may add networks to **allow** (a
/// private range where on-premises receivers live, or `127.0.0.1/32` in
/// tests) and networks to **deny** (a public address that must never be
/// reached, such as a cloud's wire server `168.63.129.16/32`). Deny wins over
/// allow, and allow wins over the default verdict.
///
/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is judged as the IPv4
/// address it carries, so a network written in IPv4 also covers its mapped
/// form. Only addresses are judged by network: host names such as
/// `localhost` stay refused at create time whatever the allow list says.
///
/// ```
/// use prets_destinations::HostPolicy;
///
/// let policy = HostPolicy::default()
///     .allow("10.20.0.0/16".parse()?)
///     .deny("10.20.9.0/24".parse()?);
/// assert!(policy.is_allowed("10.20.1.2".parse()?));
/// assert!(!policy.is_allowed("10.20.9.9".parse()?));
/// assert!(!policy.is_allowed("10.30.0.1".parse()?));
/// assert!(policy.is_allowed("93.184.215.14".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HostPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; every other address unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

impl HostPolicy {
    /// The default policy: public addresses only, nothing added.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }

    /// This policy with `net` allowed (unless a denied network covers an
    /// address).
    #[must_use]
    pub fn allow(mut self, net: IpNet) -> Self {
        self.allow.push(net.trunc());
        self
    }

    /// This policy with `net` denied, whatever else allows it.
    #[must_use]
    pub fn deny(mut self, net: IpNet) -> Self {
        self.deny.push(net.trunc());
        self
    }

    /// The allowed networks, in the order added.
    #[must_use]
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// The denied networks, in the order added.
    #[must_use]
    pub fn denied(&self) -> &[IpNet] {
        &self.deny
    }

    /// Whether a webhook may be sent to `ip`: not in a denied network, and
    /// either in an allowed network or public.
    #[must_use]
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.iter().any(|n| n.contains(&ip)) || is_public_address(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_stored_truncated_so_host_bits_do_not_matter() {
        let p = HostPolicy::new().allow("10.1.2.3/8".parse().unwrap());
        assert_eq!(p.allowed(), &["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert!(p.is_allowed("10.200.0.1".parse().unwrap()));
    }
}
