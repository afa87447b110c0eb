//! `HostPolicy`: which addresses a webhook may be sent to, as a value the
//! operator configures once and both checks take (create time: literal IP
//! hosts of a URL; delivery time: every address a host resolves to).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::address::{embedded_ipv4, is_public_address};

/// Which IP addresses deliveries may go to.
///
/// The default is [`is_public_address`]: globally
/// reachable unicast only. An operator may add networks to **allow** (a
/// private range where on-premises receivers live, or `127.0.0.1/32` in
/// tests) and networks to **deny** (public addresses that must never be
/// reached, such as the operator's own public network). Deny wins over
/// allow, and allow wins over the default verdict; the cloud metadata
/// addresses below are denied in every policy.
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
///
/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is judged as the IPv4
/// address it carries, so a network written in IPv4 also covers its mapped
/// form. Only addresses are judged by network: host names such as
/// `localhost` stay refused at create time whatever the allow list says.
///
/// **Deny lists see through IPv6.** An IPv6 address is denied when it, or
/// any IPv4 address it carries in one of the forms [`embedded_ipv4`] lists
/// (NAT64, 6to4, Teredo server and client, ISATAP, IPv4-compatible, SIIT),
/// is in a denied network: a denied IPv4 address written as
/// `64:ff9b::a.b.c.d` or `2002:aabb:ccdd::` is denied. An allow list does
/// not see through: it admits the addresses it names (and their
/// IPv4-mapped form), never an IPv6 address because of the IPv4 address
/// inside, since that would admit traffic through translators and tunnels
/// the operator did not name. Without an allow entry, an IPv6 address keeps
/// the verdict of [`is_public_address`] for its own block (a Teredo address
/// stays refused, whatever it carries).
///
/// **Cloud metadata addresses are always denied**, whatever the allow list
/// says, in every form a deny list sees: the instance metadata and
/// credential endpoints a webhook must never reach, even from a host whose
/// operator allowed a private range around them.
///
/// | address | what answers there |
/// |---|---|
/// | `169.254.169.254` | instance metadata of AWS, Azure, Google Cloud, Oracle Cloud, OpenStack, DigitalOcean and others |
/// | `169.254.170.2` | AWS ECS task metadata and credentials |
/// | `169.254.170.23`, `fd00:ec2::23` | AWS EKS Pod Identity agent (credentials) |
/// | `fd00:ec2::254` | AWS instance metadata over IPv6 |
/// | `fd20:ce::254` | Google Compute Engine metadata over IPv6 |
/// | `100.100.100.200` | Alibaba Cloud ECS metadata |
/// | `192.0.0.192` | Oracle Cloud Infrastructure Classic metadata |
/// | `169.254.42.42`, `fd00:42::42` | Scaleway instance metadata |
/// | `fe80::a9fe:a9fe` | OpenStack metadata over IPv6 |
/// | `168.63.129.16` | Azure WireServer: the VM agent's channel to the platform (extension settings), DNS and DHCP; a public address that only answers inside Azure |
///
/// ```
/// use prets_destinations::HostPolicy;
///
/// let everything = HostPolicy::default()
///     .allow("0.0.0.0/0".parse()?)
///     .allow("::/0".parse()?)
///     .deny("10.66.0.0/16".parse()?);
/// assert!(everything.is_allowed("169.254.169.1".parse()?));
/// for refused in [
///     "169.254.169.254",    // metadata, allowed or not
///     "fd00:ec2::254",      // metadata over IPv6
///     "64:ff9b::a9fe:a9fe", // metadata through NAT64
///     "10.66.1.2",          // denied
///     "2002:a42:102::",     // denied, through 6to4
/// ] {
///     assert!(!everything.is_allowed(refused.parse()?), "{refused}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HostPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

/// The cloud metadata addresses of the table in [`HostPolicy`]'s docs:
/// denied in every policy.
const METADATA: [IpAddr; 12] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V6(Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 42, 42)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x42, 0, 0, 0, 0, 0, 0x42)),
    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
];

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

    /// Whether a webhook may be sent to `ip`: neither it nor an IPv4
    /// address it embeds is a cloud metadata address or in a denied
    /// network, and it is either in an allowed network or public.
    #[must_use]
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let denied =
            |ip: IpAddr| METADATA.contains(&ip) || self.deny.iter().any(|n| n.contains(&ip));
        let embedded_denied = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).any(|v4| denied(IpAddr::V4(v4))),
            IpAddr::V4(_) => false,
        };
        if denied(ip) || embedded_denied {
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
