//! `is_public_address` against the IANA IPv4 and IPv6 Special-Purpose Address
//! Registries, row by row.
//!
//! Each row below is restated from the registries (and, for the blocks the
//! issue adds, from their RFCs), independently of the table in the crate.
//! For every row the test computes the block's first and last address from
//! the CIDR text and checks four addresses: the one just before the block,
//! the first and last inside, and the first after it. The expected verdicts
//! are written by hand; where a narrower row or a neighbouring block decides
//! an edge, the verdict is that row's, and the comment says which.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use prets_destinations::address::{embedded_ipv4, is_public_address};
use proptest::prelude::*;
use proptest::sample::select;

use crate::support::regressions_beside_module;

/// (block, source, [before, first, last, after]) where `true` means public.
#[rustfmt::skip]
const V4_ROWS: &[(&str, &str, [bool; 4])] = &[
    // The default row: unicast space allocated to the RIRs is public; every
    // edge of 0.0.0.0/0 is itself 0.0.0.0 or broadcast. Inside it, 1.0.0.0
    // and 223.255.255.255 are checked by the rows around them.
    ("0.0.0.0/0", "IANA IPv4 address space", [false, false, false, false]),
    // before wraps to 255.255.255.255 (broadcast).
    ("0.0.0.0/8", "RFC 791 this network", [false, false, false, true]),
    ("0.0.0.0/32", "RFC 1122 this host", [false, false, false, false]),
    ("10.0.0.0/8", "RFC 1918", [true, false, false, true]),
    ("100.64.0.0/10", "RFC 6598 shared", [true, false, false, true]),
    ("127.0.0.0/8", "RFC 1122 loopback", [true, false, false, true]),
    ("169.254.0.0/16", "RFC 3927 link local", [true, false, false, true]),
    ("172.16.0.0/12", "RFC 1918", [true, false, false, true]),
    // last 192.0.0.255 and after 192.0.1.0.
    ("192.0.0.0/24", "RFC 6890 IETF protocol assignments", [true, false, false, true]),
    // after is 192.0.0.8, the dummy address.
    ("192.0.0.0/29", "RFC 7335 service continuity", [true, false, false, false]),
    // before is 192.0.0.7 (/29), after is 192.0.0.9 (PCP anycast, global).
    ("192.0.0.8/32", "RFC 7600 dummy", [false, false, false, true]),
    ("192.0.0.9/32", "RFC 7723 PCP anycast", [false, true, true, true]),
    // after is 192.0.0.11, back in the /24.
    ("192.0.0.10/32", "RFC 8155 TURN anycast", [true, true, true, false]),
    ("192.0.0.170/32", "RFC 8880 NAT64 discovery", [false, false, false, false]),
    ("192.0.0.171/32", "RFC 8880 NAT64 discovery", [false, false, false, false]),
    ("192.0.2.0/24", "RFC 5737 TEST-NET-1", [true, false, false, true]),
    ("192.31.196.0/24", "RFC 7535 AS112-v4", [true, true, true, true]),
    ("192.52.193.0/24", "RFC 7450 AMT", [true, true, true, true]),
    ("192.88.99.0/24", "RFC 7526 deprecated 6to4 relay anycast", [true, false, false, true]),
    ("192.168.0.0/16", "RFC 1918", [true, false, false, true]),
    ("198.18.0.0/15", "RFC 2544 benchmarking", [true, false, false, true]),
    ("198.51.100.0/24", "RFC 5737 TEST-NET-2", [true, false, false, true]),
    ("203.0.113.0/24", "RFC 5737 TEST-NET-3", [true, false, false, true]),
    // after is 240.0.0.0, reserved.
    ("224.0.0.0/4", "RFC 5771 multicast", [true, false, false, false]),
    // before is 239.255.255.255 (multicast); after wraps to 0.0.0.0.
    ("240.0.0.0/4", "RFC 1112 reserved", [false, false, false, false]),
    ("255.255.255.255/32", "RFC 919 limited broadcast", [false, false, false, false]),
];

/// (block, source, [before, first, last, after]) where `true` means public.
#[rustfmt::skip]
const V6_ROWS: &[(&str, &str, [bool; 4])] = &[
    // The default row: nothing outside 2000::/3 is allocated for unicast.
    ("::/0", "IANA IPv6 address space", [false, false, false, false]),
    // before wraps to ff..ff (multicast); after is ::1.
    ("::/128", "RFC 4291 unspecified", [false, false, false, false]),
    // after is ::2, inside ::/96.
    ("::1/128", "RFC 4291 loopback", [false, false, false, false]),
    // after is ::1:0:0, outside 2000::/3.
    ("::/96", "RFC 4291 IPv4-compatible, deprecated", [false, false, false, false]),
    // first embeds 0.0.0.0, last embeds 255.255.255.255: both not public.
    ("::ffff:0:0/96", "RFC 4291 IPv4-mapped", [false, false, false, false]),
    ("64:ff9b::/96", "RFC 6052 IPv4-IPv6 translation", [false, false, false, false]),
    ("64:ff9b:1::/48", "RFC 8215 local-use translation", [false, false, false, false]),
    ("100::/64", "RFC 6666 discard-only", [false, false, false, false]),
    ("100:0:0:1::/64", "RFC 9780 dummy prefix", [false, false, false, false]),
    // first is Teredo; after is 2001:200::, outside the /23.
    ("2001::/23", "RFC 2928 IETF protocol assignments", [true, false, false, true]),
    // after is 2001:1::, in the /23.
    ("2001::/32", "RFC 4380 TEREDO", [true, false, false, false]),
    ("2001:1::1/128", "RFC 7723 PCP anycast", [false, true, true, true]),
    ("2001:1::2/128", "RFC 8155 TURN anycast", [true, true, true, true]),
    ("2001:1::3/128", "RFC 9665 DNS-SD SRP anycast", [true, true, true, false]),
    ("2001:2::/48", "RFC 5180 benchmarking", [false, false, false, false]),
    ("2001:3::/32", "RFC 7450 AMT", [false, true, true, false]),
    ("2001:4:112::/48", "RFC 7535 AS112-v6", [false, true, true, false]),
    // after is 2001:20::, ORCHIDv2.
    ("2001:10::/28", "RFC 4843 deprecated ORCHID", [false, false, false, true]),
    ("2001:20::/28", "RFC 7343 ORCHIDv2", [false, true, true, true]),
    // after is 2001:40::, back in the /23.
    ("2001:30::/28", "RFC 9374 drone remote ID DETs", [true, true, true, false]),
    ("2001:db8::/32", "RFC 3849 documentation", [true, false, false, true]),
    // first embeds 0.0.0.0, last embeds 255.255.255.255.
    ("2002::/16", "RFC 3056 6to4", [true, false, false, true]),
    ("2620:4f:8000::/48", "RFC 7534 AS112 direct delegation", [true, true, true, true]),
    ("3fff::/20", "RFC 9637 documentation", [true, false, false, true]),
    // before is 5eff:ff..ff, after 5f01::: both outside 2000::/3.
    ("5f00::/16", "RFC 9602 SRv6 SIDs", [false, false, false, false]),
    ("fc00::/7", "RFC 4193 unique-local", [false, false, false, false]),
    ("fe80::/10", "RFC 4291 link-local", [false, false, false, false]),
    ("fec0::/10", "RFC 3879 site-local, deprecated", [false, false, false, false]),
    // after wraps to ::.
    ("ff00::/8", "RFC 4291 multicast", [false, false, false, false]),
    // last is 3fff:ffff:..., past 3fff::/20; before and after are unallocated.
    ("2000::/3", "RFC 4291 global unicast", [false, true, true, false]),
];

fn v4_edges(cidr: &str) -> [Ipv4Addr; 4] {
    let (addr, len) = cidr.split_once('/').unwrap();
    let first: Ipv4Addr = addr.parse().unwrap();
    let len: u32 = len.parse().unwrap();
    let host_bits = u32::MAX.checked_shr(len).unwrap_or(0);
    assert_eq!(
        first.to_bits() & host_bits,
        0,
        "{cidr} is not a network address"
    );
    let last = first.to_bits() | host_bits;
    [
        first.to_bits().wrapping_sub(1),
        first.to_bits(),
        last,
        last.wrapping_add(1),
    ]
    .map(Ipv4Addr::from_bits)
}

fn v6_edges(cidr: &str) -> [Ipv6Addr; 4] {
    let (addr, len) = cidr.split_once('/').unwrap();
    let first: Ipv6Addr = addr.parse().unwrap();
    let len: u32 = len.parse().unwrap();
    let host_bits = u128::MAX.checked_shr(len).unwrap_or(0);
    assert_eq!(
        first.to_bits() & host_bits,
        0,
        "{cidr} is not a network address"
    );
    let last = first.to_bits() | host_bits;
    [
        first.to_bits().wrapping_sub(1),
        first.to_bits(),
        last,
        last.wrapping_add(1),
    ]
    .map(Ipv6Addr::from_bits)
}

const EDGE: [&str; 4] = ["before", "first", "last", "after"];

#[test]
fn every_ipv4_registry_row_is_judged_at_its_edges() {
    let mut wrong = Vec::new();
    for &(cidr, source, expected) in V4_ROWS {
        for ((addr, want), edge) in v4_edges(cidr).into_iter().zip(expected).zip(EDGE) {
            if is_public_address(IpAddr::V4(addr)) != want {
                wrong.push(format!(
                    "{cidr} ({source}) {edge} {addr}: want public={want}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_ipv6_registry_row_is_judged_at_its_edges() {
    let mut wrong = Vec::new();
    for &(cidr, source, expected) in V6_ROWS {
        for ((addr, want), edge) in v6_edges(cidr).into_iter().zip(expected).zip(EDGE) {
            if is_public_address(IpAddr::V6(addr)) != want {
                wrong.push(format!(
                    "{cidr} ({source}) {edge} {addr}: want public={want}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn embedded_ipv4_addresses_are_judged_by_the_ipv4_address() {
    let cases: &[(&str, bool)] = &[
        // IPv4-mapped: a dual-stack socket connects to the IPv4 address.
        ("::ffff:8.8.8.8", true),
        ("::ffff:93.184.215.14", true),
        ("::ffff:127.0.0.1", false),
        ("::ffff:10.0.0.1", false),
        ("::ffff:169.254.169.254", false),
        ("::ffff:192.168.1.1", false),
        // NAT64 well-known prefix: the translator forwards to the IPv4 address.
        ("64:ff9b::8.8.8.8", true),
        ("64:ff9b::1.1.1.1", true),
        ("64:ff9b::127.0.0.1", false),
        ("64:ff9b::a9fe:a9fe", false),
        ("64:ff9b::192.168.0.1", false),
        // 6to4: the IPv4 address sits in bits 16 to 48.
        ("2002:808:808::", true),
        ("2002:808:808:1234:5678:9abc:def0:1", true),
        ("2002:7f00:1::", false),
        ("2002:a9fe:a9fe::1", false),
        ("2002:c0a8:101::", false),
        ("2002:a00:1::", false),
        // Local-use NAT64: the embedding depends on the operator; refused.
        ("64:ff9b:1::808:808", false),
        ("64:ff9b:1:ffff::808:808", false),
        // Deprecated IPv4-compatible and SIIT IPv4-translated: refused even
        // for a public IPv4 address.
        ("::8.8.8.8", false),
        ("::169.254.169.254", false),
        ("::ffff:0:8.8.8.8", false),
    ];
    for &(text, want) in cases {
        let ip: Ipv6Addr = text.parse().unwrap();
        assert_eq!(is_public_address(IpAddr::V6(ip)), want, "{text}");
    }
}

/// Every IPv6 form that carries an IPv4 address, with the addresses its
/// RFC puts in it, restated from the RFCs' own examples where they have one.
#[test]
fn embedded_ipv4_finds_the_address_where_each_rfc_puts_it() {
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], &str)] = &[
        ("::ffff:192.0.2.33", &["192.0.2.33"], "RFC 4291 IPv4-mapped"),
        ("::ffff:0:192.0.2.33", &["192.0.2.33"], "RFC 2765 IPv4-translated (SIIT)"),
        ("::192.0.2.33", &["192.0.2.33"], "RFC 4291 IPv4-compatible"),
        ("::2", &["0.0.0.2"], "IPv4-compatible, the lowest after ::1"),
        ("::", &[], "unspecified, not IPv4-compatible"),
        ("::1", &[], "loopback, not IPv4-compatible"),
        ("::1:0:0", &[], "just past ::/96"),
        ("64:ff9b::192.0.2.33", &["192.0.2.33"], "RFC 6052 well-known prefix"),
        ("64:ff9b:0:0:1::c000:221", &[], "64:ff9b::/32 but outside the /96"),
        ("2002:c000:221::", &["192.0.2.33"], "RFC 3056 6to4"),
        ("2002:c000:221:ffff:1:2:3:4", &["192.0.2.33"], "6to4 with a subnet and host"),
        // RFC 4380 §4 and RFC 5991's example: server 65.54.227.120, client
        // 192.0.2.45 behind port 40000, both inverted on the wire.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", &["65.54.227.120", "192.0.2.45"], "RFC 4380 Teredo"),
        ("2001:0:0:0:0:0:ffff:ffff", &["0.0.0.0", "0.0.0.0"], "Teredo, all zero after inversion"),
        ("fe80::5efe:192.0.2.143", &["192.0.2.143"], "RFC 5214 ISATAP, link-local, private IPv4"),
        ("2001:db8:1:2:200:5efe:192.0.2.143", &["192.0.2.143"], "ISATAP, universal bit set"),
        ("2001:db8:1:2:100:5efe:192.0.2.143", &["192.0.2.143"], "ISATAP, group bit set"),
        ("2001:db8:1:2:400:5efe:192.0.2.143", &[], "not ISATAP: another bit of the identifier"),
        ("2001:db8:1:2:0:5eff:192.0.2.143", &[], "not ISATAP: 5eff"),
        ("2002:c000:221:1:0:5efe:c633:6401", &["192.0.2.33", "198.51.100.1"], "6to4 and ISATAP"),
        ("2001:db8::1", &[], "documentation, nothing embedded"),
        ("2606:4700:4700::1111", &[], "global unicast, nothing embedded"),
        ("fe80::1", &[], "link-local, nothing embedded"),
    ];
    for &(text, want, what) in cases {
        let got: Vec<Ipv4Addr> = embedded_ipv4(text.parse().unwrap()).collect();
        let want: Vec<Ipv4Addr> = want.iter().map(|w| w.parse().unwrap()).collect();
        assert_eq!(got, want, "{what}: {text}");
    }
}

/// RFC 6052 §2.4's table of 192.0.2.33 under each prefix length, moved into
/// the local-use block `64:ff9b:1::/48` (RFC 8215), where the operator picks
/// the length: the address is among those found for every length the block
/// can hold, and so is the one at each other length for the same bits.
#[test]
fn local_use_nat64_yields_the_address_for_every_prefix_length_the_block_holds() {
    let expected: Ipv4Addr = "192.0.2.33".parse().unwrap();
    for (text, length) in [
        ("64:ff9b:1:c000:2:2100::", 48),
        ("64:ff9b:1:3c0:0:221::", 56),
        ("64:ff9b:1:344:c0:2:2100:0", 64),
        ("64:ff9b:1:344::192.0.2.33", 96),
    ] {
        let got: Vec<Ipv4Addr> = embedded_ipv4(text.parse().unwrap()).collect();
        assert_eq!(got.len(), 4, "/{length}: {text} {got:?}");
        assert!(got.contains(&expected), "/{length}: {text} {got:?}");
    }
    // The "u" octet (bits 64 to 72) is skipped, not read as part of the
    // address.
    let got: Vec<Ipv4Addr> = embedded_ipv4("64:ff9b:1:c000:ff02:2100::".parse().unwrap()).collect();
    assert!(got.contains(&expected), "{got:?}");
    // The well-known /96 is not read as local-use, and 64:ff9b:2:: is neither.
    assert_eq!(
        embedded_ipv4("64:ff9b:2:c000:2:2100::".parse().unwrap()).count(),
        0
    );
}

/// Unwrapping feeds the deny lists only: the classifier still judges the
/// IPv6 block first, so a public IPv4 address inside a refused block does
/// not make it public.
#[test]
fn an_embedded_public_address_does_not_lift_a_refused_block() {
    for text in [
        // Teredo carrying public server and client addresses.
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        // Local-use NAT64 and IPv4-compatible carrying 8.8.8.8.
        "64:ff9b:1::808:808",
        "::808:808",
        // ISATAP with a public IPv4 address under a refused prefix.
        "fe80::200:5efe:808:808",
        "2001:db8::200:5efe:808:808",
    ] {
        let ip: Ipv6Addr = text.parse().unwrap();
        assert!(embedded_ipv4(ip).count() > 0, "{text}");
        assert!(!is_public_address(IpAddr::V6(ip)), "{text}");
    }
    // ISATAP under a public prefix keeps the prefix's verdict either way.
    for text in ["2a00:1450::5efe:10.0.0.1", "2a00:1450::200:5efe:808:808"] {
        assert!(is_public_address(text.parse().unwrap()), "{text}");
    }
}

#[test]
fn ordinary_public_addresses_are_public() {
    for text in [
        "1.1.1.1",
        "8.8.8.8",
        "9.9.9.9",
        "93.184.215.14",
        "151.101.1.69",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4001:80b::200e",
        "2620:fe::fe",
        "2c0f:fb50:4003::",
    ] {
        assert!(is_public_address(text.parse().unwrap()), "{text}");
    }
}

/// IPv4 addresses: half uniform, half in and next to 169.254.0.0/16.
fn v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        any::<u32>(),
        (0..1u32 << 24).prop_map(|low| low | 0xa9fe_0000),
    ]
    .prop_map(Ipv4Addr::from_bits)
}

/// IPv6 addresses: half uniform, half with their top 16 bits in the blocks
/// std knows about (and two public ones).
fn v6() -> impl Strategy<Value = Ipv6Addr> {
    let top = prop_oneof![
        Just(None),
        select(
            &[
                0x0000u64, 0xfc00, 0xfd12, 0xfe80, 0xfebf, 0xff02, 0xff0e, 0x2001, 0x2a00
            ][..]
        )
        .prop_map(Some),
    ];
    (any::<u64>(), top, any::<u64>()).prop_map(|(hi, top, lo)| {
        let hi = match top {
            None => hi,
            Some(top) => (hi & 0x0000_ffff_ffff_ffff) | (top << 48),
        };
        Ipv6Addr::from_bits(u128::from(hi) << 64 | u128::from(lo))
    })
}

proptest! {
    #![proptest_config(regressions_beside_module(ProptestConfig {
        cases: 200_000,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }))]

    // The standard library's stable predicates are an independent oracle for
    // a subset of the registries: whatever they flag must not be public.
    #[test]
    fn nothing_std_calls_special_is_public(v4 in v4(), v6 in v6()) {
        let std_special = v4.is_private()
            || v4.is_loopback()
            || v4.is_link_local()
            || v4.is_multicast()
            || v4.is_broadcast()
            || v4.is_documentation()
            || v4.is_unspecified();
        if std_special {
            prop_assert!(!is_public_address(IpAddr::V4(v4)), "{}", v4);
        }
        let std_special6 = v6.is_loopback()
            || v6.is_unspecified()
            || v6.is_multicast()
            || v6.is_unique_local()
            || v6.is_unicast_link_local();
        if std_special6 {
            prop_assert!(!is_public_address(IpAddr::V6(v6)), "{}", v6);
        }
        // Mapped addresses agree with their IPv4 address.
        prop_assert_eq!(
            is_public_address(IpAddr::V6(v4.to_ipv6_mapped())),
            is_public_address(IpAddr::V4(v4)),
            "{}",
            v4
        );
    }
}
