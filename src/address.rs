//! The delivery-time classifier: may a webhook be sent to this address?
//!
//! The tables below are the IANA IPv4 and IPv6 Special-Purpose Address
//! Registries, judged by their "Globally Reachable" column, plus the blocks the
//! registries leave out but that no public endpoint can live in (multicast,
//! the IPv6 space IANA has not allocated for global unicast, deprecated
//! site-local and IPv4-compatible addresses). An address takes the verdict of
//! the most specific row that contains it.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a row says about the addresses inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// Globally reachable: a public endpoint may live here.
    Global,
    /// Not globally reachable, deprecated, or reserved.
    Local,
    /// The address carries an IPv4 address starting at this bit (counted from
    /// the most significant bit); the verdict is that of the IPv4 address.
    Embeds(u32),
}

/// One block of a registry: prefix, prefix length, verdict, name, source.
type Row<A> = (A, u32, Reach, &'static str, &'static str);

use Reach::{Embeds, Global, Local};

const fn v4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

const fn v6(s: [u16; 8]) -> u128 {
    (s[0] as u128) << 112
        | (s[1] as u128) << 96
        | (s[2] as u128) << 80
        | (s[3] as u128) << 64
        | (s[4] as u128) << 48
        | (s[5] as u128) << 32
        | (s[6] as u128) << 16
        | (s[7] as u128)
}

/// IPv4: the IANA IPv4 Special-Purpose Address Registry plus multicast.
#[rustfmt::skip]
static IPV4: &[Row<u32>] = &[
    (v4(0, 0, 0, 0), 0, Global, "unicast space allocated to the regional registries", "IANA IPv4 Address Space"),
    (v4(0, 0, 0, 0), 8, Local, "\"this network\"", "RFC 791"),
    (v4(0, 0, 0, 0), 32, Local, "\"this host on this network\"", "RFC 1122"),
    (v4(10, 0, 0, 0), 8, Local, "private-use", "RFC 1918"),
    (v4(100, 64, 0, 0), 10, Local, "shared address space", "RFC 6598"),
    (v4(127, 0, 0, 0), 8, Local, "loopback", "RFC 1122"),
    (v4(169, 254, 0, 0), 16, Local, "link local", "RFC 3927"),
    (v4(172, 16, 0, 0), 12, Local, "private-use", "RFC 1918"),
    (v4(192, 0, 0, 0), 24, Local, "IETF protocol assignments", "RFC 6890"),
    (v4(192, 0, 0, 0), 29, Local, "IPv4 service continuity prefix", "RFC 7335"),
    (v4(192, 0, 0, 8), 32, Local, "IPv4 dummy address", "RFC 7600"),
    (v4(192, 0, 0, 9), 32, Global, "port control protocol anycast", "RFC 7723"),
    (v4(192, 0, 0, 10), 32, Global, "traversal using relays around NAT anycast", "RFC 8155"),
    (v4(192, 0, 0, 170), 32, Local, "NAT64/DNS64 discovery", "RFC 8880"),
    (v4(192, 0, 0, 171), 32, Local, "NAT64/DNS64 discovery", "RFC 8880"),
    (v4(192, 0, 2, 0), 24, Local, "documentation (TEST-NET-1)", "RFC 5737"),
    (v4(192, 31, 196, 0), 24, Global, "AS112-v4", "RFC 7535"),
    (v4(192, 52, 193, 0), 24, Global, "AMT", "RFC 7450"),
    (v4(192, 88, 99, 0), 24, Local, "deprecated (6to4 relay anycast)", "RFC 7526"),
    (v4(192, 168, 0, 0), 16, Local, "private-use", "RFC 1918"),
    (v4(198, 18, 0, 0), 15, Local, "benchmarking", "RFC 2544"),
    (v4(198, 51, 100, 0), 24, Local, "documentation (TEST-NET-2)", "RFC 5737"),
    (v4(203, 0, 113, 0), 24, Local, "documentation (TEST-NET-3)", "RFC 5737"),
    (v4(224, 0, 0, 0), 4, Local, "multicast", "RFC 5771"),
    (v4(240, 0, 0, 0), 4, Local, "reserved", "RFC 1112"),
    (v4(255, 255, 255, 255), 32, Local, "limited broadcast", "RFC 919"),
];

/// IPv6: the IANA IPv6 Special-Purpose Address Registry, the global unicast
/// allocation, multicast, and the deprecated site-local and IPv4-compatible
/// blocks.
#[rustfmt::skip]
static IPV6: &[Row<u128>] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0]), 0, Local, "not allocated for global unicast", "RFC 4291"),
    (v6([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3, Global, "global unicast", "RFC 4291"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0]), 128, Local, "unspecified address", "RFC 4291"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1]), 128, Local, "loopback address", "RFC 4291"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0]), 96, Local, "IPv4-compatible (deprecated)", "RFC 4291"),
    (v6([0, 0, 0, 0, 0, 0xffff, 0, 0]), 96, Embeds(96), "IPv4-mapped", "RFC 4291"),
    (v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]), 96, Embeds(96), "IPv4-IPv6 translation", "RFC 6052"),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48, Local, "local-use IPv4/IPv6 translation", "RFC 8215"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0]), 64, Local, "discard-only address block", "RFC 6666"),
    (v6([0x100, 0, 0, 1, 0, 0, 0, 0]), 64, Local, "dummy IPv6 prefix", "RFC 9780"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 23, Local, "IETF protocol assignments", "RFC 2928"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32, Local, "TEREDO", "RFC 4380"),
    (v6([0x2001, 1, 0, 0, 0, 0, 0, 1]), 128, Global, "port control protocol anycast", "RFC 7723"),
    (v6([0x2001, 1, 0, 0, 0, 0, 0, 2]), 128, Global, "traversal using relays around NAT anycast", "RFC 8155"),
    (v6([0x2001, 1, 0, 0, 0, 0, 0, 3]), 128, Global, "DNS-SD service registration protocol anycast", "RFC 9665"),
    (v6([0x2001, 2, 0, 0, 0, 0, 0, 0]), 48, Local, "benchmarking", "RFC 5180"),
    (v6([0x2001, 3, 0, 0, 0, 0, 0, 0]), 32, Global, "AMT", "RFC 7450"),
    (v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0]), 48, Global, "AS112-v6", "RFC 7535"),
    (v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0]), 28, Local, "deprecated (previously ORCHID)", "RFC 4843"),
    (v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0]), 28, Global, "ORCHIDv2", "RFC 7343"),
    (v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0]), 28, Global, "drone remote ID protocol entity tags", "RFC 9374"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]), 32, Local, "documentation", "RFC 3849"),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16, Embeds(16), "6to4", "RFC 3056"),
    (v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0]), 48, Global, "direct delegation AS112 service", "RFC 7534"),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20, Local, "documentation", "RFC 9637"),
    (v6([0x5f00, 0, 0, 0, 0, 0, 0, 0]), 16, Local, "segment routing (SRv6) SIDs", "RFC 9602"),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7, Local, "unique-local", "RFC 4193"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10, Local, "link-local unicast", "RFC 4291"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10, Local, "site-local (deprecated)", "RFC 3879"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8, Local, "multicast", "RFC 4291"),
];

/// The verdict of the longest prefix in `table` that contains `addr`.
///
/// `BITS` is the address width; every table has a `/0` row, so some row
/// always matches.
fn lookup<const BITS: u32, A>(table: &[Row<A>], addr: A) -> Reach
where
    A: Copy + PartialEq + core::ops::Shr<u32, Output = A>,
{
    let mut best: Option<(u32, Reach)> = None;
    for &(prefix, len, reach, _, _) in table {
        // A shift by the full width would overflow; a /0 row matches everything.
        let inside = len == 0 || addr >> (BITS - len) == prefix >> (BITS - len);
        if inside && best.is_none_or(|(l, _)| len > l) {
            best = Some((len, reach));
        }
    }
    best.map_or(Reach::Local, |(_, reach)| reach)
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    lookup::<32, u32>(IPV4, ip.to_bits()) == Global
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let bits = ip.to_bits();
    match lookup::<128, u128>(IPV6, bits) {
        Global => true,
        Local => false,
        Embeds(at) => {
            // The 32 bits starting at `at`; dropping the higher bits is the point.
            let embedded = (bits >> (128 - 32 - at)) as u32;
            is_public_v4(Ipv4Addr::from_bits(embedded))
        }
    }
}

/// The IPv4 addresses `ip` carries, in every IPv6 form that embeds one.
///
/// These are the addresses packets to `ip` may end up at, through a
/// dual-stack socket, a translator or a tunnel. [`HostPolicy`] judges each of
/// them against its deny list (and the cloud metadata addresses), so that a
/// denied IPv4 address written in IPv6 is denied too. The forms, by their
/// bits alone (whether a translator or relay is on the path is not knowable
/// here, so every match counts):
///
/// | form | block | where the IPv4 address is |
/// |---|---|---|
/// | IPv4-mapped (RFC 4291) | `::ffff:0:0/96` | the last 32 bits |
/// | IPv4-translated, SIIT (RFC 2765) | `::ffff:0:0:0/96` | the last 32 bits |
/// | IPv4-compatible, deprecated (RFC 4291) | `::/96` except `::` and `::1` | the last 32 bits |
/// | NAT64 well-known prefix (RFC 6052) | `64:ff9b::/96` | the last 32 bits |
/// | NAT64 local-use (RFC 8215) | `64:ff9b:1::/48` | each place RFC 6052 §2.2 puts it for a prefix of 48, 56, 64 or 96 bits, since the operator picks the length inside the block: up to four addresses |
/// | 6to4 (RFC 3056) | `2002::/16` | bits 16 to 48 |
/// | Teredo (RFC 4380) | `2001::/32` | the server, bits 32 to 64, and the client, the last 32 bits inverted |
/// | ISATAP (RFC 5214) | any prefix, interface identifier `0:5efe` or `200:5efe` (either value of the universal and group bits) | the last 32 bits |
///
/// One address may match several forms (a 6to4 address with an ISATAP
/// interface identifier); each yields its address, in the table's order.
/// An address in none of these forms yields nothing.
///
/// [`HostPolicy`]: crate::policy::HostPolicy
///
/// ```
/// use std::net::Ipv4Addr;
/// use prets_destinations::address::embedded_ipv4;
///
/// let nat64: Vec<Ipv4Addr> = embedded_ipv4("64:ff9b::a9fe:a9fe".parse()?).collect();
/// assert_eq!(nat64, [Ipv4Addr::new(169, 254, 169, 254)]);
///
/// // Teredo: the server, then the client (inverted on the wire).
/// let teredo: Vec<Ipv4Addr> =
///     embedded_ipv4("2001:0:4136:e378:8000:63bf:3fff:fdd2".parse()?).collect();
/// assert_eq!(teredo, [Ipv4Addr::new(65, 54, 227, 120), Ipv4Addr::new(192, 0, 2, 45)]);
///
/// assert_eq!(embedded_ipv4("2606:4700::1111".parse()?).count(), 0);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn embedded_ipv4(ip: Ipv6Addr) -> impl Iterator<Item = Ipv4Addr> {
    let bits = ip.to_bits();
    let inside = |prefix: [u16; 8], len: u32| bits >> (128 - len) == v6(prefix) >> (128 - len);
    // The 32 bits starting at bit `at`; dropping the higher bits is the point.
    let at = |at: u32| Ipv4Addr::from_bits((bits >> (96 - at)) as u32);
    let mut found = [None; 5];
    let mut n = 0;
    let mut found_one = |ip: Ipv4Addr| {
        if let Some(slot) = found.get_mut(n) {
            *slot = Some(ip);
            n += 1;
        }
    };
    if inside([0, 0, 0, 0, 0, 0xffff, 0, 0], 96) || inside([0, 0, 0, 0, 0xffff, 0, 0, 0], 96) {
        found_one(at(96));
    }
    // `::` and `::1` are the unspecified and loopback addresses, not IPv4.
    if inside([0; 8], 96) && bits > 1 {
        found_one(at(96));
    }
    if inside([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        found_one(at(96));
    }
    if inside([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48) {
        // RFC 6052 §2.2: bits 64 to 72 (the "u" octet) are skipped, so the
        // IPv4 address starts at the prefix length in the address without
        // them. The octet's value is not checked: a deny list errs wide.
        let squeezed = ((bits >> 64) << 56) | (bits & 0x00ff_ffff_ffff_ffff);
        for start in [48, 56, 64, 88] {
            found_one(Ipv4Addr::from_bits((squeezed >> (120 - 32 - start)) as u32));
        }
    }
    if inside([0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        found_one(at(16));
    }
    if inside([0x2001, 0, 0, 0, 0, 0, 0, 0], 32) {
        found_one(at(32));
        found_one(Ipv4Addr::from_bits(!at(96).to_bits()));
    }
    // ISATAP: `0000:5efe` with the universal (0x0200) and group (0x0100)
    // bits either way.
    if (bits >> 32) as u32 & 0xfcff_ffff == 0x0000_5efe {
        found_one(at(96));
    }
    found.into_iter().flatten()
}

/// Whether a webhook may be delivered to `ip`: true only for a globally
/// reachable unicast address.
///
/// This is the check an HTTP client's resolver or connector runs on **every**
/// address a destination host resolves to, right before connecting, because
/// DNS can point a public name at a private address at any time. The
/// create-time host policy of [`DestinationUrl`](crate::url::DestinationUrl)
/// applies the same function to IP-literal hosts.
///
/// It follows the "Globally Reachable" column of the IANA IPv4 and IPv6
/// Special-Purpose Address Registries, and also refuses multicast, the IPv4
/// limited broadcast address, IPv6 space outside the global unicast block
/// `2000::/3`, deprecated site-local `fec0::/10`, deprecated IPv4-compatible
/// `::/96`, local-use NAT64 `64:ff9b:1::/48`, Teredo `2001::/32` and the
/// deprecated 6to4 relay anycast block `192.88.99.0/24`. IPv4-mapped
/// (`::ffff:0:0/96`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`)
/// addresses are judged by the IPv4 address they carry, since that is where
/// the packets end up. The other forms [`embedded_ipv4`] knows keep the
/// verdict of their IPv6 block: Teredo, local-use NAT64 and IPv4-compatible
/// addresses are refused whatever they carry, and an ISATAP interface
/// identifier does not change the verdict of its prefix (the IPv4 address
/// is one inside the site that owns the prefix, and a prefix of one's own
/// site is a deny-list matter). [`HostPolicy`] also judges every embedded
/// IPv4 address against its deny list.
///
/// [`HostPolicy`]: crate::policy::HostPolicy
///
/// ```
/// use std::net::IpAddr;
/// use prets_destinations::address::is_public_address;
///
/// let public: IpAddr = "93.184.215.14".parse()?;
/// assert!(is_public_address(public));
///
/// for private in ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "::ffff:192.168.0.1"] {
///     assert!(!is_public_address(private.parse()?));
/// }
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[must_use]
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row's first and last address gets the row's own verdict, unless
    /// a more specific row covers that address (checked against the table,
    /// not the lookup). Guards the longest-prefix rule and each row's bounds;
    /// the integration tests check the verdicts against the registries.
    #[test]
    fn every_row_decides_its_own_edges_unless_a_narrower_row_covers_them() {
        fn check<const BITS: u32, A>(table: &[Row<A>], first_last: impl Fn(A, u32) -> [A; 2])
        where
            A: Copy + PartialEq + core::fmt::Debug + core::ops::Shr<u32, Output = A>,
        {
            for &(prefix, len, reach, name, _) in table {
                for addr in first_last(prefix, len) {
                    let narrower = table
                        .iter()
                        .any(|&(p, l, _, _, _)| l > len && addr >> (BITS - l) == p >> (BITS - l));
                    if !narrower {
                        assert_eq!(lookup::<BITS, A>(table, addr), reach, "{name}: {addr:?}");
                    }
                }
            }
        }
        check::<32, u32>(IPV4, |p, l| [p, p | u32::MAX.checked_shr(l).unwrap_or(0)]);
        check::<128, u128>(IPV6, |p, l| [p, p | u128::MAX.checked_shr(l).unwrap_or(0)]);
    }

    #[test]
    fn every_prefix_has_no_bits_past_its_length() {
        for &(p, l, _, name, _) in IPV4 {
            assert_eq!(p & u32::MAX.checked_shr(l).unwrap_or(0), 0, "{name}");
        }
        for &(p, l, _, name, _) in IPV6 {
            assert_eq!(p & u128::MAX.checked_shr(l).unwrap_or(0), 0, "{name}");
        }
    }
}
