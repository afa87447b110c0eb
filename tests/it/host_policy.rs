//! The create-time host policy of `DestinationUrl`, table-driven.
//!
//! The adversarial cases come from the WHATWG URL Standard's host parser
//! (percent-decoding, IDNA mapping, the IPv4 number parser with its hex,
//! octal and short forms, forbidden code points) and from public SSRF payload
//! collections (PayloadsAllTheThings "Server Side Request Forgery", cloud
//! metadata endpoints, "IPFuscation" notations). Each has the error code the
//! policy must report. The legitimate cases are ordinary public HTTPS
//! endpoints, which must be accepted and echoed exactly.

use std::cell::Cell;
use std::net::IpAddr;

use prets_destinations::DestinationUrl;
use prets_destinations::address::is_public_address;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{TestCaseError, TestRunner};

use crate::support::regressions_beside_module;

/// (url, expected error code, what it attacks).
const ADVERSARIAL: &[(&str, &str, &str)] = &[
    // Loopback in every IPv4 notation the WHATWG parser accepts.
    ("https://127.0.0.1/", "non_public_address", "loopback"),
    (
        "https://127.0.0.1:443/",
        "non_public_address",
        "loopback, default port",
    ),
    (
        "https://127.0.0.1:8443/admin",
        "non_public_address",
        "loopback, port and path",
    ),
    (
        "https://127.1/",
        "non_public_address",
        "two-part short form",
    ),
    (
        "https://127.0.1/",
        "non_public_address",
        "three-part short form",
    ),
    (
        "https://0x7f.1/",
        "non_public_address",
        "hex and short form",
    ),
    (
        "https://0x7f000001/",
        "non_public_address",
        "single hex number",
    ),
    (
        "https://0X7F000001/",
        "non_public_address",
        "upper-case hex prefix",
    ),
    (
        "https://2130706433/",
        "non_public_address",
        "single decimal number",
    ),
    (
        "https://017700000001/",
        "non_public_address",
        "single octal number",
    ),
    (
        "https://0177.0.0.1/",
        "non_public_address",
        "octal first part",
    ),
    ("https://0177.0.0.01/", "non_public_address", "octal parts"),
    (
        "https://0x7f.0x0.0x0.0x1/",
        "non_public_address",
        "hex parts",
    ),
    (
        "https://0x7f.0.0.1/",
        "non_public_address",
        "mixed hex and decimal",
    ),
    (
        "https://127.000000000000.1/",
        "non_public_address",
        "zero-padded octal part",
    ),
    (
        "https://00000177.0.0.1/",
        "non_public_address",
        "zero-padded octal",
    ),
    (
        "https://0x000000000007f.0x0.0x0.0x1/",
        "non_public_address",
        "zero-padded hex",
    ),
    ("https://127.0.0.1./", "non_public_address", "trailing dot"),
    (
        "https://127.1./",
        "non_public_address",
        "short form, trailing dot",
    ),
    (
        "https://127.127.127.127/",
        "non_public_address",
        "inside 127/8",
    ),
    ("https://127.0.0.0/", "non_public_address", "first of 127/8"),
    (
        "https://127.255.255.255/",
        "non_public_address",
        "last of 127/8",
    ),
    (
        "https://%31%32%37.0.0.1/",
        "non_public_address",
        "percent-encoded digits",
    ),
    (
        "https://127%2e0%2e0%2e1/",
        "non_public_address",
        "percent-encoded dots",
    ),
    (
        "https://127%2E0%2E0%2E1/",
        "non_public_address",
        "upper-case escapes",
    ),
    (
        "https://%EF%BC%91%EF%BC%92%EF%BC%97.%EF%BC%90.%EF%BC%90.%EF%BC%91/",
        "non_public_address",
        "full-width digits",
    ),
    (
        "https://127%E3%80%820%E3%80%820%E3%80%821/",
        "non_public_address",
        "ideographic full stops",
    ),
    (
        "https://%E2%91%A0%E2%91%A1%E2%91%A6.%E2%93%AA.%E2%93%AA.%E2%91%A0/",
        "non_public_address",
        "enclosed alphanumerics",
    ),
    (
        "https://127%EF%BC%8E0%EF%BC%8E0%EF%BC%8E1/",
        "non_public_address",
        "full-width full stops",
    ),
    (
        "https://127%EF%BD%A10%EF%BD%A10%EF%BD%A11/",
        "non_public_address",
        "half-width ideographic full stops",
    ),
    (
        "https://0x7f.1:8443/path",
        "non_public_address",
        "hex short form with port",
    ),
    (
        "https://2130706433:443/?q=1",
        "non_public_address",
        "decimal with port and query",
    ),
    // "This network" and the unspecified address.
    ("https://0/", "non_public_address", "zero"),
    ("https://0.0.0.0/", "non_public_address", "unspecified"),
    ("https://00000/", "non_public_address", "padded zero"),
    ("https://0x0/", "non_public_address", "hex zero"),
    (
        "https://0x/",
        "non_public_address",
        "bare hex prefix is zero",
    ),
    ("https://0.0/", "non_public_address", "short-form zero"),
    ("https://0.1.2.3/", "non_public_address", "inside 0/8"),
    // Private-use and shared address space.
    ("https://10.0.0.1/", "non_public_address", "RFC 1918"),
    (
        "https://10.255.255.255/",
        "non_public_address",
        "last of 10/8",
    ),
    ("https://012.0.0.1/", "non_public_address", "octal 10"),
    ("https://0xa.0.0.1/", "non_public_address", "hex 10"),
    (
        "https://167772161/",
        "non_public_address",
        "decimal 10.0.0.1",
    ),
    ("https://172.16.0.1/", "non_public_address", "RFC 1918"),
    (
        "https://172.31.255.254/",
        "non_public_address",
        "end of 172.16/12",
    ),
    ("https://0xac.0x10.0.1/", "non_public_address", "hex 172.16"),
    ("https://192.168.0.1/", "non_public_address", "RFC 1918"),
    ("https://192.168.1.1/", "non_public_address", "home router"),
    (
        "https://3232235777/",
        "non_public_address",
        "decimal 192.168.1.1",
    ),
    (
        "https://0xc0.0xa8.1.1/",
        "non_public_address",
        "hex 192.168",
    ),
    (
        "https://0300.0250.1.1/",
        "non_public_address",
        "octal 192.168",
    ),
    (
        "https://192.168.257/",
        "non_public_address",
        "three-part overflow into the last octets",
    ),
    (
        "https://100.64.0.1/",
        "non_public_address",
        "carrier-grade NAT",
    ),
    (
        "https://100.100.100.200/",
        "non_public_address",
        "Alibaba Cloud metadata",
    ),
    // Link-local and cloud metadata.
    (
        "https://169.254.169.254/",
        "non_public_address",
        "instance metadata",
    ),
    (
        "https://169.254.169.254/latest/meta-data/",
        "non_public_address",
        "AWS metadata path",
    ),
    (
        "https://169.254.43518/",
        "non_public_address",
        "metadata, three-part form",
    ),
    (
        "https://2852039166/",
        "non_public_address",
        "metadata, decimal",
    ),
    ("https://0xa9fea9fe/", "non_public_address", "metadata, hex"),
    (
        "https://0xA9.0xFE.0xA9.0xFE/",
        "non_public_address",
        "metadata, dotted hex",
    ),
    (
        "https://0251.0376.0251.0376/",
        "non_public_address",
        "metadata, dotted octal",
    ),
    (
        "https://0251.254.169.254/",
        "non_public_address",
        "metadata, mixed octal",
    ),
    (
        "https://169.254.170.2/v2/credentials",
        "non_public_address",
        "ECS task credentials",
    ),
    (
        "https://%31%36%39.254.169.254/",
        "non_public_address",
        "metadata, percent-encoded",
    ),
    (
        "https://192.0.0.192/",
        "non_public_address",
        "Oracle Cloud metadata, IETF block",
    ),
    // Other special-purpose blocks.
    ("https://192.0.2.1/", "non_public_address", "TEST-NET-1"),
    ("https://198.51.100.7/", "non_public_address", "TEST-NET-2"),
    ("https://203.0.113.9/", "non_public_address", "TEST-NET-3"),
    ("https://198.18.0.1/", "non_public_address", "benchmarking"),
    ("https://224.0.0.1/", "non_public_address", "multicast"),
    (
        "https://239.255.255.250/",
        "non_public_address",
        "SSDP multicast",
    ),
    ("https://240.0.0.1/", "non_public_address", "reserved"),
    (
        "https://255.255.255.255/",
        "non_public_address",
        "limited broadcast",
    ),
    (
        "https://4294967295/",
        "non_public_address",
        "broadcast as a number",
    ),
    (
        "https://192.88.99.1/",
        "non_public_address",
        "deprecated 6to4 relay anycast",
    ),
    (
        "https://192.0.0.170/",
        "non_public_address",
        "NAT64 discovery",
    ),
    (
        "https://192.0.0.8/",
        "non_public_address",
        "IPv4 dummy address",
    ),
    // Public addresses and names spelled another way than the parser's.
    (
        "https://8.8.8.8./",
        "non_canonical_host",
        "public IPv4, trailing dot",
    ),
    (
        "https://134744072/",
        "non_canonical_host",
        "public IPv4 as a number",
    ),
    (
        "https://0x8080808/",
        "non_canonical_host",
        "public IPv4 in hex",
    ),
    (
        "https://010.010.010.010/",
        "non_canonical_host",
        "public IPv4 in octal",
    ),
    (
        "https://8.8.2056/",
        "non_canonical_host",
        "public IPv4, three-part form",
    ),
    (
        "https://1.1/",
        "non_canonical_host",
        "public IPv4, two-part form",
    ),
    (
        "https://%38.8.8.8/",
        "non_canonical_host",
        "public IPv4, percent-encoded",
    ),
    (
        "https://1.1.1.01/",
        "non_canonical_host",
        "leading zero is octal",
    ),
    (
        "https://EXA%4dPLE.com/",
        "non_canonical_host",
        "percent-encoded letter",
    ),
    (
        "https://ex%61mple.com/",
        "non_canonical_host",
        "percent-encoded letter",
    ),
    (
        "https://%65xample.com/",
        "non_canonical_host",
        "percent-encoded first letter",
    ),
    (
        "https://example%2ecom/",
        "non_canonical_host",
        "percent-encoded dot",
    ),
    (
        "https://example.com./",
        "non_canonical_host",
        "trailing-dot FQDN",
    ),
    (
        "https://www.example.com./path",
        "non_canonical_host",
        "trailing-dot FQDN with path",
    ),
    (
        "https://EXAMPLE.COM./",
        "non_canonical_host",
        "trailing dot, upper case",
    ),
    (
        "https://%C3%9F.example.com/",
        "non_canonical_host",
        "Unicode label becomes punycode",
    ),
    (
        "https://b%C3%BCcher.com/",
        "non_canonical_host",
        "Unicode IDN instead of xn--",
    ),
    (
        "https://ex%C2%ADample.com/",
        "non_canonical_host",
        "soft hyphen removed by IDNA",
    ),
    (
        "https://%EF%BD%85xample.com/",
        "non_canonical_host",
        "full-width letter mapped by IDNA",
    ),
    (
        "https://example%E3%80%82com/",
        "non_canonical_host",
        "ideographic full stop mapped by IDNA",
    ),
    // Reserved and local-only names.
    ("https://localhost/", "reserved_host", "localhost"),
    ("https://LOCALHOST/", "reserved_host", "upper case"),
    ("https://LocalHost/", "reserved_host", "mixed case"),
    ("https://localhost:8443/", "reserved_host", "with port"),
    ("https://localhost./", "reserved_host", "trailing dot"),
    (
        "https://localhost%2e/",
        "reserved_host",
        "percent-encoded trailing dot",
    ),
    (
        "https://api.localhost/",
        "reserved_host",
        "*.localhost, RFC 6761",
    ),
    (
        "https://a.b.localhost/",
        "reserved_host",
        "deeper *.localhost",
    ),
    (
        "https://loc%C2%ADalhost/",
        "reserved_host",
        "soft hyphen inside localhost",
    ),
    (
        "https://%6c%6f%63%61%6c%68%6f%73%74/",
        "reserved_host",
        "percent-encoded localhost",
    ),
    (
        "https://%E2%93%9B%E2%93%9E%E2%93%92%E2%93%90%E2%93%9B%E2%93%97%E2%93%9E%E2%93%A2%E2%93%A3/",
        "reserved_host",
        "enclosed alphanumerics",
    ),
    (
        "https://%EF%BD%8C%EF%BD%8F%EF%BD%83%EF%BD%81%EF%BD%8C%EF%BD%88%EF%BD%8F%EF%BD%93%EF%BD%94/",
        "reserved_host",
        "full-width localhost",
    ),
    ("https://printer.local/", "reserved_host", "mDNS .local"),
    (
        "https://my-mac.local./",
        "reserved_host",
        ".local, trailing dot",
    ),
    (
        "https://metadata.google.internal/computeMetadata/v1/",
        "reserved_host",
        "GCP metadata",
    ),
    ("https://foo.internal/", "reserved_host", ".internal"),
    (
        "https://router.home.arpa/",
        "reserved_host",
        "RFC 8375 home.arpa",
    ),
    (
        "https://1.0.0.127.in-addr.arpa/",
        "reserved_host",
        "reverse-DNS name",
    ),
    (
        "https://ipv4only.arpa/",
        "reserved_host",
        "RFC 8880 special name",
    ),
    (
        "https://localhost.localdomain/",
        "reserved_host",
        ".localdomain",
    ),
    ("https://web.localdomain/", "reserved_host", ".localdomain"),
    ("https://svc.test/", "reserved_host", "RFC 6761 .test"),
    ("https://example.test/", "reserved_host", ".test"),
    ("https://nothing.invalid/", "reserved_host", ".invalid"),
    ("https://www.example/", "reserved_host", ".example TLD"),
    (
        "https://abcdefghijklmnop.onion/",
        "reserved_host",
        "RFC 7686 .onion",
    ),
    ("https://name.alt/", "reserved_host", "RFC 9476 .alt"),
    ("https://nas.lan/", "reserved_host", ".lan"),
    ("https://intranet.corp/", "reserved_host", ".corp"),
    ("https://server.home/", "reserved_host", ".home"),
    ("https://wiki.intranet/", "reserved_host", ".intranet"),
    ("https://vault.private/", "reserved_host", ".private"),
    ("https://exchange.mail/", "reserved_host", ".mail"),
    ("https://test/", "reserved_host", "reserved single label"),
    ("https://invalid/", "reserved_host", "reserved single label"),
    ("https://local/", "reserved_host", "reserved single label"),
    // Single labels: a resolver may complete them with a search domain.
    (
        "https://metadata/",
        "single_label_host",
        "GCP metadata short name",
    ),
    (
        "https://metadata/computeMetadata/v1/",
        "single_label_host",
        "with path",
    ),
    (
        "https://instance-data/latest/meta-data/",
        "single_label_host",
        "AWS metadata short name",
    ),
    (
        "https://intranet-wiki/",
        "single_label_host",
        "internal short name",
    ),
    ("https://com/", "single_label_host", "bare TLD"),
    (
        "https://kubernetes/",
        "single_label_host",
        "cluster service name",
    ),
    (
        "https://redis:6379/",
        "single_label_host",
        "service with port",
    ),
    (
        "https://db./",
        "single_label_host",
        "single label with trailing dot",
    ),
    (
        "https://xn--nxasmq6b/",
        "single_label_host",
        "punycode single label",
    ),
    (
        "https://%6d%65%74%61%64%61%74%61/",
        "single_label_host",
        "percent-encoded metadata",
    ),
    // Invalid DNS names and hosts the WHATWG parser refuses.
    ("https://a..example.com/", "invalid_host", "empty label"),
    ("https://.example.com/", "invalid_host", "leading dot"),
    (
        "https://example..com/",
        "invalid_host",
        "empty label before TLD",
    ),
    (
        "https://example.com../",
        "invalid_host",
        "two trailing dots",
    ),
    ("https://-example.com/", "invalid_host", "leading hyphen"),
    ("https://example-.com/", "invalid_host", "trailing hyphen"),
    (
        "https://example.-com/",
        "invalid_host",
        "TLD with leading hyphen",
    ),
    (
        "https://sub.example-.com/",
        "invalid_host",
        "inner label with trailing hyphen",
    ),
    ("https://a_b.example.com/", "invalid_host", "underscore"),
    (
        "https://_dmarc.example.com/",
        "invalid_host",
        "leading underscore",
    ),
    ("https://exa$mple.com/", "invalid_host", "dollar sign"),
    ("https://exa!mple.com/", "invalid_host", "exclamation mark"),
    ("https://exa'mple.com/", "invalid_host", "apostrophe"),
    ("https://exa(mple).com/", "invalid_host", "parentheses"),
    ("https://exa*mple.com/", "invalid_host", "asterisk"),
    ("https://exa~mple.com/", "invalid_host", "tilde"),
    ("https://exa+mple.com/", "invalid_host", "plus"),
    ("https://exa=mple.com/", "invalid_host", "equals"),
    ("https://exa;mple.com/", "invalid_host", "semicolon"),
    ("https://exa,mple.com/", "invalid_host", "comma"),
    ("https://exa&mple.com/", "invalid_host", "ampersand"),
    (
        "https://xn--a.com/",
        "invalid_host",
        "punycode that decodes to nothing valid",
    ),
    ("https://xn--.com/", "invalid_host", "empty punycode"),
    (
        "https://xn--abc-.com/",
        "invalid_host",
        "punycode of plain ASCII",
    ),
    (
        "https://xn--zz-.com/",
        "invalid_host",
        "punycode of plain ASCII",
    ),
    ("https://xn---.com/", "invalid_host", "punycode of a hyphen"),
    (
        "https://xn--cafe-yvc.com/",
        "invalid_host",
        "punycode with a combining mark after ASCII",
    ),
    ("https://1.2.3.4.5/", "invalid_host", "five numeric parts"),
    ("https://256.0.0.1/", "invalid_host", "IPv4 part over 255"),
    (
        "https://0x100000000/",
        "invalid_host",
        "IPv4 number over 32 bits",
    ),
    ("https://08.8.8.8/", "invalid_host", "invalid octal digit"),
    (
        "https://example.123/",
        "invalid_host",
        "numeric TLD goes to the IPv4 parser",
    ),
    (
        "https://example.0x1/",
        "invalid_host",
        "hex TLD goes to the IPv4 parser",
    ),
    ("https://%00/", "invalid_host", "NUL"),
    ("https://%20example.com/", "invalid_host", "space"),
    ("https://a.b%00.com/", "invalid_host", "embedded NUL"),
    (
        "https://exa%25mple.com/",
        "invalid_host",
        "percent sign after decoding",
    ),
    (
        "https://example.com%3a80/",
        "invalid_host",
        "colon after decoding",
    ),
    (
        "https://%5Bexample.com%5D/",
        "invalid_host",
        "percent-encoded brackets",
    ),
    (
        "https://%5B::1%5D/",
        "invalid_port",
        "percent-encoded IPv6: the first ':' starts the port",
    ),
    (
        "https://127.0.0.1%2f/",
        "invalid_host",
        "slash after decoding",
    ),
    (
        "https://xn--mi7cdqncpe6aj.com/",
        "invalid_host",
        "punycode of full-width localhost: not a valid IDNA label",
    ),
    (
        "https://xn--8g7ccp.0.0.1/",
        "invalid_host",
        "punycode of full-width digits",
    ),
    (
        "https://xn--example-oka.com/",
        "invalid_host",
        "punycode of a label with a soft hyphen",
    ),
    ("https://a%40b.com/", "invalid_host", "'@' after decoding"),
    (
        "https://a%5Cb.com/",
        "invalid_host",
        "backslash after decoding",
    ),
    ("https://a%23b.com/", "invalid_host", "'#' after decoding"),
    ("https://a%3Fb.com/", "invalid_host", "'?' after decoding"),
    // Credentials and '@' in the authority (the host is what follows '@').
    (
        "https://example.com@127.0.0.1/",
        "credentials",
        "userinfo hides the host",
    ),
    ("https://user:pass@example.com/", "credentials", "userinfo"),
    ("https://@example.com/", "credentials", "empty userinfo"),
    (
        "https://example.com%2f@127.0.0.1/",
        "credentials",
        "encoded slash in userinfo",
    ),
    (
        "https://127.0.0.1%23@example.com/",
        "credentials",
        "encoded hash in userinfo",
    ),
    (
        "https://example.com:443@169.254.169.254/",
        "credentials",
        "fake port in userinfo",
    ),
    // Schemes the WHATWG parser repairs or that are not https.
    ("http://example.com/", "not_https", "plain HTTP"),
    (
        "https:example.com",
        "not_https",
        "no slashes, repaired by WHATWG",
    ),
    (
        "https:/example.com",
        "not_https",
        "one slash, repaired by WHATWG",
    ),
    ("HTTP://127.0.0.1/", "not_https", "plain HTTP, upper case"),
    ("httpss://example.com/", "not_https", "misspelt scheme"),
    ("file:///etc/passwd", "not_https", "file scheme"),
    ("gopher://127.0.0.1:6379/_", "not_https", "gopher smuggling"),
    ("//example.com/", "not_https", "scheme-relative"),
    // Empty hosts.
    ("https:///", "empty_host", "no host"),
    (
        "https:///example.com/",
        "empty_host",
        "third slash, repaired by WHATWG",
    ),
    ("https://:443/", "empty_host", "port only"),
    ("https://?x", "empty_host", "query only"),
    // Ports.
    ("https://example.com:0/", "invalid_port", "port 0"),
    (
        "https://example.com:65536/",
        "invalid_port",
        "port over 65535",
    ),
    (
        "https://example.com:99999/",
        "invalid_port",
        "port far over 65535",
    ),
    ("https://example.com:8o/", "invalid_port", "letter in port"),
    ("https://example.com:/", "invalid_port", "empty port"),
    ("https://example.com:08443/", "invalid_port", "leading zero"),
    ("https://example.com:443:443/", "invalid_port", "two ports"),
    ("https://example.com:-1/", "invalid_port", "negative port"),
    // Characters outside the published pattern.
    ("https://[::1]/", "pattern", "IPv6 loopback"),
    ("https://[::ffff:127.0.0.1]/", "pattern", "IPv4-mapped IPv6"),
    ("https://[0:0:0:0:0:0:0:1]/", "pattern", "IPv6 long form"),
    (
        "https://example.com#@127.0.0.1/",
        "pattern",
        "fragment hides userinfo",
    ),
    ("https://example.com\\@127.0.0.1/", "pattern", "backslash"),
    ("https://ex ample.com/", "pattern", "space"),
    ("https://127.0.0.1\t/", "pattern", "tab, stripped by WHATWG"),
];

/// Ordinary public HTTPS endpoints.
const LEGITIMATE: &[&str] = &[
    "https://example.com/prets/events",
    "https://example.com",
    "https://example.com/",
    "https://www.example.com/prets/events",
    "https://EXAMPLE.COM/prets/events",
    "https://Example.Com:443/",
    "https://hooks.example.com:8443/prets/events",
    "https://api.eu-west-1.example-shop.com/webhooks/prets",
    "https://a.b.c.d.e.example.org/deep/path/",
    "https://example.net/?a=1&b=2",
    "https://example.org/path%20with%20spaces",
    "https://example.com/%F0%9F%98%80",
    "https://example.com/user@example.com",
    "https://example.com/?next=user:pass@host",
    "https://example.com/a:b/c@d",
    "https://example.com?x=1",
    "https://example.com/?redirect=https://127.0.0.1/",
    "https://example.com/%2e%2e/admin",
    "https://example.com/;param=1,2$*!'()~",
    "https://example.com/prets/events.",
    "https://example.com/prets/(events)",
    "https://xn--nxasmq6b.com/",
    "https://xn--bcher-kva.example.com/",
    "https://xn--ls8h.la/",
    "https://xn--caf-dma.com/",
    "https://xn--mnchen-3ya.de/hooks",
    "https://8.8.8.8/",
    "https://1.1.1.1:8443/hook",
    "https://93.184.215.14/prets",
    "https://9.9.9.9/",
    "https://123.example.com/",
    "https://2001.example.com/",
    "https://1-2-3-4.example.com/",
    "https://a.co/",
    "https://x.io/",
    "https://hooks.slack.com/services/T000/B000/XXXX",
    "https://r3---sn-4g5e6nsz.googlevideo.com/",
    "https://www.example.com.au/",
    "https://example.com:1/",
    "https://example.com:65535/",
    "https://localhost.example.com/",
    "https://local.example.com/",
    "https://internal.example.com/",
    "https://test.example.com/",
    "https://example.net/",
    "https://example.org/",
];

fn code_of(url: &str) -> Result<DestinationUrl, &'static str> {
    url.parse::<DestinationUrl>().map_err(|e| e.code())
}

#[test]
fn the_tables_are_as_large_as_the_issue_requires() {
    assert!(ADVERSARIAL.len() >= 150, "{}", ADVERSARIAL.len());
    assert!(LEGITIMATE.len() >= 30, "{}", LEGITIMATE.len());
}

#[test]
fn every_adversarial_url_is_refused_with_its_code() {
    let mut wrong = Vec::new();
    for &(url, expected, why) in ADVERSARIAL {
        match code_of(url) {
            Err(code) if code == expected => {}
            Err(code) => wrong.push(format!("{url} ({why}): got {code}, want {expected}")),
            Ok(_) => wrong.push(format!("{url} ({why}): accepted, want {expected}")),
        }
        // The other entry points agree with `FromStr`.
        assert_eq!(
            DestinationUrl::validate(url).map_err(|e| e.code()),
            Err(expected).or(Ok(())).and(code_of(url).map(|_| ()))
        );
        assert_eq!(
            DestinationUrl::try_from(url.to_owned()).map_err(|e| e.code()),
            code_of(url)
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_legitimate_url_is_accepted_and_echoed_exactly() {
    for &url in LEGITIMATE {
        let parsed = match code_of(url) {
            Ok(u) => u,
            Err(code) => panic!("{url}: refused with {code}"),
        };
        assert_eq!(parsed.as_str(), url);
        assert_eq!(parsed.to_string(), url);
        assert_eq!(String::from(parsed.clone()), url);
        let json = serde_json::to_string(&parsed).unwrap();
        assert_eq!(serde_json::from_str::<String>(&json).unwrap(), url);
        assert_eq!(
            serde_json::from_str::<DestinationUrl>(&json).unwrap(),
            parsed
        );
        // The host the WHATWG parser finds is the host as written, modulo case.
        let whatwg = url::Url::parse(url).unwrap();
        assert_eq!(
            whatwg.host_str().unwrap(),
            parsed.host().to_ascii_lowercase(),
            "{url}"
        );
    }
}

#[test]
fn every_accepted_ip_literal_is_public() {
    for &url in LEGITIMATE {
        if let Some(url::Host::Ipv4(ip)) = url::Url::parse(url).unwrap().host() {
            assert!(is_public_address(IpAddr::V4(ip)), "{url}");
        }
    }
}

#[test]
fn every_refused_ip_literal_host_is_what_the_client_would_reach() {
    // A `non_public_address` refusal is right only if the WHATWG parser,
    // which HTTP clients use, really finds a non-public IP.
    for &(url, expected, _) in ADVERSARIAL {
        if expected == "non_public_address" {
            let host = url::Url::parse(url).unwrap().host().map(|h| h.to_owned());
            let ip: IpAddr = match host {
                Some(url::Host::Ipv4(ip)) => ip.into(),
                other => panic!("{url}: {other:?}"),
            };
            assert!(!is_public_address(ip), "{url}");
        }
    }
}

#[test]
fn dns_length_limits_are_enforced_at_the_limit() {
    let label = |n: usize| "a".repeat(n);
    let ok63 = format!("https://{}.com/", label(63));
    assert!(code_of(&ok63).is_ok());
    let long64 = format!("https://{}.com/", label(64));
    assert_eq!(code_of(&long64).unwrap_err(), "invalid_host");
    // 61 + 1 + 61 + 1 + 61 + 1 + 61 + 1 + 5 = 253 octets.
    let name253 = format!("{0}.{0}.{0}.{0}.abcde", label(61));
    assert_eq!(name253.len(), 253);
    assert!(code_of(&format!("https://{name253}/")).is_ok());
    let name254 = format!("{0}.{0}.{0}.{0}.abcdef", label(61));
    assert_eq!(
        code_of(&format!("https://{name254}/")).unwrap_err(),
        "invalid_host"
    );
    // The limit applies to the name the client looks up, so a trailing dot
    // does not count: it is refused as a second spelling instead.
    assert_eq!(
        code_of(&format!("https://{name253}./")).unwrap_err(),
        "non_canonical_host"
    );
}

#[test]
fn names_that_resolve_to_private_addresses_pass_the_text_check() {
    // The create-time policy cannot see DNS. These public names resolve to
    // loopback or private addresses through wildcard DNS; refusing them is
    // the job of the delivery-time `is_public_address` check (see the
    // `delivering_safely` example).
    for url in [
        "https://127.0.0.1.nip.io/",
        "https://10.0.0.1.sslip.io/",
        "https://localtest.me/",
    ] {
        assert!(code_of(url).is_ok(), "{url}");
    }
}

#[test]
fn errors_carry_the_url_field_and_a_message_fixed_by_the_code() {
    // One code, one message: nothing from the input is interpolated, so an
    // error can be logged or returned without echoing what was sent.
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for &(url, _, _) in ADVERSARIAL {
        let err = url.parse::<DestinationUrl>().unwrap_err();
        let field = err.to_field_error();
        assert_eq!(field.field().as_str(), "url");
        assert_eq!((field.code(), field.message()), (err.code(), err.message()));
        match seen.iter().find(|(c, _)| *c == err.code()) {
            Some(&(_, message)) if err.code() != "pattern" => assert_eq!(message, err.message()),
            Some(_) => {}
            None => seen.push((err.code(), err.message())),
        }
    }
    // Every policy code is exercised by the table.
    for code in [
        "non_public_address",
        "reserved_host",
        "single_label_host",
        "invalid_host",
        "non_canonical_host",
    ] {
        assert!(seen.iter().any(|(c, _)| *c == code), "{code}");
    }
}

/// Host fragments that mix IPv4 notations, escapes, IDNA-mapped characters,
/// reserved names and ordinary labels.
const HOST_PARTS: &[&str] = &[
    "127",
    "0",
    "1",
    "10",
    "169",
    "254",
    "192",
    "168",
    "8",
    "255",
    "256",
    "0x7f",
    "0X7F",
    "0x",
    "0177",
    "017",
    "00",
    "08",
    "2130706433",
    "4294967295",
    "0xffffffff",
    "example",
    "com",
    "localhost",
    "local",
    "internal",
    "arpa",
    "home",
    "test",
    "xn--",
    "xn--nxasmq6b",
    "xn--a",
    "a",
    "hooks",
    "api",
    "b2",
    "x-y",
    "-",
    "_",
    "$",
    "!",
    "~",
    "%2e",
    "%2E",
    "%31",
    "%37",
    "%00",
    "%25",
    "%C2%AD",
    "%EF%BC%91",
    "%EF%BC%8E",
    "%E3%80%82",
    "%E2%91%A0",
    "%EF%BD%8C",
    "%6c",
    "%5B",
    "%3a",
    "",
];

const JOINERS: &[&str] = &[".", ".", ".", ".", ".", "", "..", "-"];

/// Last labels: mostly real TLDs, so that the accepting path is exercised.
const LAST: &[&str] = &[
    ".com",
    ".com",
    ".io",
    ".example.com",
    ".org",
    "",
    ".",
    ".1",
    ".0x1",
    ".localhost",
    ".local",
    ".xn--ls8h",
    ".internal",
    "%2ecom",
    ".c%6fm",
    ".com.",
];

const TAILS: &[&str] = &[
    "",
    "/",
    "/p",
    ":443/",
    ":8443",
    ":0",
    ":65536",
    ":08",
    "?q=@x:y",
    "/a@b:c",
    "@127.0.0.1/",
    "#x",
    ".",
    ")",
];

const SCHEMES: &[&str] = &[
    "https://", "https://", "https://", "https://", "https://", "HTTPS://", "https:/", "https:",
    "http://",
];

/// One part of an IPv4 literal in one of the WHATWG parser's notations.
fn number_part() -> impl Strategy<Value = String> {
    let n = prop_oneof![
        0..256u64,
        select(
            &[
                0u64, 1, 8, 10, 100, 127, 169, 172, 192, 198, 203, 224, 240, 254, 255
            ][..]
        ),
        0..65_536u64,
        0..(1u64 << 32),
    ];
    (n, 0..6u8).prop_map(|(n, notation)| match notation {
        0 => format!("0x{n:x}"),
        1 => format!("0{n:o}"),
        2 => format!("%3{}{}", n % 10, n / 10),
        _ => n.to_string(),
    })
}

/// URL-shaped inputs: a dotted quad (the only IPv4 spelling the policy can
/// accept), numbers in mixed notations, or names of mixed fragments.
fn generated_url() -> impl Strategy<Value = String> {
    let quad = (select(SCHEMES), any::<[u8; 4]>(), select(TAILS))
        .prop_map(|(scheme, [a, b, c, d], tail)| format!("{scheme}{a}.{b}.{c}.{d}{tail}"));
    let numbers = (
        select(SCHEMES),
        vec(number_part(), 1..=4),
        select(&["", "", "", ".", "%2e"][..]),
        select(TAILS),
    )
        .prop_map(|(scheme, parts, end, tail)| format!("{scheme}{}{end}{tail}", parts.join(".")));
    let names = (
        select(SCHEMES),
        select(HOST_PARTS),
        vec((select(JOINERS), select(HOST_PARTS)), 0..=4),
        select(LAST),
        select(TAILS),
    )
        .prop_map(|(scheme, first, rest, last, tail)| {
            let mut s = format!("{scheme}{first}");
            for (joiner, part) in rest {
                s.push_str(joiner);
                s.push_str(part);
            }
            s.push_str(last);
            s.push_str(tail);
            s
        });
    prop_oneof![3 => quad, 5 => numbers, 10 => names]
}

/// The fuzz target's property (`fuzz/fuzz_targets/url_host_policy.rs`) over
/// generated inputs: no accepted URL leads an HTTP client to a non-public IP
/// literal, to `localhost`, or to a host spelled differently from the text.
#[test]
fn no_generated_url_that_is_accepted_reaches_a_non_public_or_local_host() {
    let config = regressions_beside_module(ProptestConfig {
        cases: 200_000,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    });
    let (accepted, accepted_ip) = (Cell::new(0), Cell::new(0));
    let result = TestRunner::new(config).run(&generated_url(), |input| {
        let Ok(dest) = input.parse::<DestinationUrl>() else {
            return Ok(());
        };
        accepted.set(accepted.get() + 1);
        prop_assert_eq!(dest.as_str(), input.as_str());
        let whatwg =
            url::Url::parse(&input).map_err(|e| TestCaseError::fail(format!("{input}: {e}")))?;
        match whatwg.host() {
            Some(url::Host::Ipv4(ip)) => {
                accepted_ip.set(accepted_ip.get() + 1);
                prop_assert!(is_public_address(ip.into()), "{}", input);
            }
            Some(url::Host::Ipv6(ip)) => prop_assert!(is_public_address(ip.into()), "{}", input),
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.');
                prop_assert!(d != "localhost" && !d.ends_with(".localhost"), "{}", input);
                prop_assert!(d.contains('.'), "{}", input);
            }
            None => prop_assert!(false, "{}: no host", input),
        }
        prop_assert_eq!(
            whatwg.host_str().unwrap_or_default(),
            dest.host().to_ascii_lowercase(),
            "{}",
            input
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator must exercise the accepting path too, or the property is vacuous.
    let (accepted, accepted_ip) = (accepted.get(), accepted_ip.get());
    assert!(accepted > 3_000, "only {accepted} accepted");
    assert!(accepted_ip > 10, "only {accepted_ip} IP literals accepted");
}

#[test]
fn hosts_too_long_for_dns_even_after_decoding_are_refused_before_idna() {
    // IDNA's punycode step is quadratic in a label's length; such labels can
    // never become a valid DNS name, so they are refused as written.
    for url in [
        format!("https://xn--{}.com/", "a".repeat(2030)),
        format!("https://xn--{}.com/", "a".repeat(249)),
        format!("https://{}.com/", "%EF%BD%81".repeat(85)),
        format!("https://{}.com/", "b".repeat(253)),
    ] {
        assert_eq!(code_of(&url).unwrap_err(), "invalid_host", "{url}");
    }
    // Up to the decoded limit the host still reaches the WHATWG parser, so a
    // mapped spelling of a reserved name keeps its specific code.
    let wide_localhost =
        "%EF%BD%8C%EF%BD%8F%EF%BD%83%EF%BD%81%EF%BD%8C%EF%BD%88%EF%BD%8F%EF%BD%93%EF%BD%94";
    assert_eq!(
        code_of(&format!("https://{wide_localhost}/")).unwrap_err(),
        "reserved_host"
    );
}

mod operator_policy {
    use prets_destinations::{DestinationUrl, HostPolicy};

    fn policy() -> HostPolicy {
        HostPolicy::default()
            .allow("127.0.0.1/32".parse().unwrap())
            .allow("10.0.0.0/8".parse().unwrap())
            .allow("fd00::/8".parse().unwrap())
            .deny("10.66.0.0/16".parse().unwrap())
            .deny("151.101.1.69/32".parse().unwrap())
    }

    #[test]
    fn allowed_networks_admit_literal_hosts_and_from_str_keeps_the_default() {
        for ok in [
            "https://127.0.0.1/",
            "https://127.0.0.1:8443/hook",
            "https://10.1.2.3/in",
            "https://93.184.215.14/",
            "https://example.com/",
        ] {
            let url = DestinationUrl::parse_with_policy(ok, &policy()).unwrap();
            assert_eq!(url.as_str(), ok);
        }
        for refused in ["https://127.0.0.1/", "https://10.1.2.3/in"] {
            assert_eq!(
                refused.parse::<DestinationUrl>().unwrap_err().code(),
                "non_public_address"
            );
            assert!(DestinationUrl::parse_with_policy(refused, &HostPolicy::default()).is_err());
        }
    }

    #[test]
    fn deny_beats_allow_and_beats_public() {
        for (url, why) in [
            ("https://10.66.1.1/", "denied inside an allowed network"),
            ("https://151.101.1.69/", "public but denied"),
            ("https://127.0.0.2/", "next to the allowed /32"),
            ("https://192.168.1.1/", "private, not allowed"),
        ] {
            let err = DestinationUrl::parse_with_policy(url, &policy()).unwrap_err();
            assert_eq!(err.code(), "non_public_address", "{why}");
        }
    }

    #[test]
    fn other_notations_of_an_allowed_address_stay_non_canonical() {
        for url in [
            "https://127.1/",
            "https://0x7f.0.0.1/",
            "https://2130706433/",
        ] {
            let err = DestinationUrl::parse_with_policy(url, &policy()).unwrap_err();
            assert_eq!(err.code(), "non_canonical_host", "{url}");
        }
        // Other notations of a denied address are refused as not allowed.
        let err =
            DestinationUrl::parse_with_policy("https://0x97.101.1.69/", &policy()).unwrap_err();
        assert_eq!(err.code(), "non_public_address");
    }

    #[test]
    fn names_are_never_judged_by_network() {
        for (url, code) in [
            ("https://localhost/", "reserved_host"),
            ("https://localhost.localdomain/", "reserved_host"),
            ("https://printer.local/", "reserved_host"),
            ("https://hooks/", "single_label_host"),
        ] {
            let err = DestinationUrl::parse_with_policy(url, &policy()).unwrap_err();
            assert_eq!(err.code(), code, "{url}");
        }
    }

    #[test]
    fn mapped_ipv6_is_judged_as_the_ipv4_it_carries() {
        let p = policy();
        assert!(p.is_allowed("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!p.is_allowed("::ffff:151.101.1.69".parse().unwrap()));
        assert!(!p.is_allowed("::ffff:10.66.0.1".parse().unwrap()));
        assert!(p.is_allowed("fd12::1".parse().unwrap()));
        assert!(!p.is_allowed("fe80::1".parse().unwrap()));
        // An IPv4 network does not cover IPv6 space, nor the other way round.
        let v6_only = HostPolicy::default().deny("::/0".parse().unwrap());
        assert!(v6_only.is_allowed("93.184.215.14".parse().unwrap()));
        assert!(!v6_only.is_allowed("2606:2800:21f:cb07::1".parse().unwrap()));
    }
}

/// The operator's policy through the request bodies and the operations:
/// `validate_with_policy`, `create_with_policy`, `update_with_policy`.
mod request_policy {
    use prets_destinations::{
        CreateDestinationRequest, HostPolicy, UpdateDestinationRequest, ValidationErrors,
    };

    fn policy() -> HostPolicy {
        HostPolicy::default()
            .allow("127.0.0.1/32".parse().unwrap())
            .allow("10.0.0.0/8".parse().unwrap())
            .deny("10.66.0.0/16".parse().unwrap())
            .deny("93.184.215.14/32".parse().unwrap())
    }

    fn url_code(errors: &ValidationErrors) -> Vec<(&str, &str)> {
        errors
            .errors()
            .iter()
            .map(|e| (e.field().as_str(), e.code()))
            .collect()
    }

    #[test]
    fn create_validation_admits_allowed_literals_only_under_the_policy() {
        for url in ["https://127.0.0.1:8443/x", "https://10.1.2.3/in"] {
            let req = CreateDestinationRequest::new("Local", url);
            let new = req.clone().validate_with_policy(&policy()).unwrap();
            assert_eq!(new.url.as_str(), url);
            // The existing function keeps the default policy.
            let errors = req.validate().unwrap_err();
            assert_eq!(url_code(&errors), [("url", "non_public_address")]);
        }
    }

    #[test]
    fn create_validation_under_the_policy_refuses_denied_names_and_other_networks() {
        for (url, code) in [
            ("https://10.66.0.1/", "non_public_address"),
            ("https://93.184.215.14/", "non_public_address"),
            ("https://127.0.0.2/", "non_public_address"),
            ("https://192.168.0.1/", "non_public_address"),
            ("https://localhost/", "reserved_host"),
            ("https://localhost:8443/x", "reserved_host"),
            ("https://127.1/", "non_canonical_host"),
            ("http://127.0.0.1/", "not_https"),
        ] {
            let errors = CreateDestinationRequest::new("n", url)
                .validate_with_policy(&policy())
                .unwrap_err();
            assert_eq!(url_code(&errors), [("url", code)], "{url}");
        }
        // The denied public literal is fine under the default policy.
        assert!(
            CreateDestinationRequest::new("n", "https://93.184.215.14/")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn every_field_error_is_still_reported_with_a_policy() {
        let errors = CreateDestinationRequest::new("", "https://localhost/")
            .with_destination_id("nope")
            .validate_with_policy(&policy())
            .unwrap_err();
        assert_eq!(
            url_code(&errors),
            [
                ("name", "too_short"),
                ("url", "reserved_host"),
                ("destinationId", "pattern")
            ]
        );
    }

    #[test]
    fn update_validation_judges_a_new_url_under_the_policy() {
        let patch = UpdateDestinationRequest::new()
            .with_url("https://10.1.2.3/in")
            .validate_with_policy(&policy())
            .unwrap();
        assert_eq!(patch.url.unwrap().as_str(), "https://10.1.2.3/in");
        let errors = UpdateDestinationRequest::new()
            .with_url("https://10.1.2.3/in")
            .validate()
            .unwrap_err();
        assert_eq!(url_code(&errors), [("url", "non_public_address")]);
        let errors = UpdateDestinationRequest::new()
            .with_url("https://10.66.9.9/")
            .validate_with_policy(&policy())
            .unwrap_err();
        assert_eq!(url_code(&errors), [("url", "non_public_address")]);
        // A patch without a URL does not consult the policy.
        assert!(
            UpdateDestinationRequest::new()
                .with_enabled(false)
                .validate_with_policy(&HostPolicy::default().deny("0.0.0.0/0".parse().unwrap()))
                .is_ok()
        );
    }

    #[cfg(feature = "memory")]
    #[test]
    fn create_and_update_with_policy_store_allowed_literals_and_plain_ones_refuse_them() {
        use prets_destinations::ops::{create_with_policy, update_with_policy};
        use prets_destinations::{
            CreateOutcome, DestinationRepo, MemoryRepo, UpdateOutcome, create, update,
        };

        use crate::support::{block_on, keyring, now, rng, sealer, tenant};

        let repo = MemoryRepo::new();
        let org = tenant("org_policy");
        let mut rng = rng(7);
        let keys = keyring(1, &mut rng);
        let req = CreateDestinationRequest::new("Local", "https://127.0.0.1:8443/x");

        let refused = block_on(create(
            &repo,
            &org,
            req.clone(),
            now(),
            &mut rng,
            keys.current(),
        ))
        .unwrap();
        assert!(matches!(refused, CreateOutcome::Invalid(_)), "{refused:?}");

        let outcome = block_on(create_with_policy(
            &repo,
            &org,
            req,
            &policy(),
            now(),
            &mut rng,
            keys.current(),
        ))
        .unwrap();
        let CreateOutcome::Created(created) = outcome else {
            panic!("{outcome:?}")
        };
        let id = created.destination_id();
        let stored = block_on(repo.get(&org, id)).unwrap().unwrap();
        assert_eq!(stored.url.as_str(), "https://127.0.0.1:8443/x");

        let to_private = UpdateDestinationRequest::new().with_url("https://10.2.3.4/y");
        let refused = block_on(update(
            &repo,
            &org,
            id,
            to_private.clone(),
            now(),
            &mut crate::support::rng(1),
            &sealer(),
        ))
        .unwrap();
        assert!(matches!(refused, UpdateOutcome::Invalid(_)), "{refused:?}");
        let updated = block_on(update_with_policy(
            &repo,
            &org,
            id,
            to_private,
            &policy(),
            now(),
            &mut crate::support::rng(1),
            &sealer(),
        ))
        .unwrap();
        let UpdateOutcome::Updated(view) = updated else {
            panic!("{updated:?}")
        };
        assert_eq!(view.version(), 2);
        let stored = block_on(repo.get(&org, id)).unwrap().unwrap();
        assert_eq!(stored.url.as_str(), "https://10.2.3.4/y");

        let denied = UpdateDestinationRequest::new().with_url("https://10.66.0.1/");
        let refused = block_on(update_with_policy(
            &repo,
            &org,
            id,
            denied,
            &policy(),
            now(),
            &mut crate::support::rng(1),
            &sealer(),
        ))
        .unwrap();
        let UpdateOutcome::Invalid(errors) = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(url_code(&errors), [("url", "non_public_address")]);
        assert_eq!(block_on(repo.get(&org, id)).unwrap().unwrap().version, 2);
    }
}

/// Deny lists and the cloud metadata addresses, through every IPv6 form that
/// carries an IPv4 address. The forms are built here from their RFCs,
/// independently of the crate's `embedded_ipv4`.
mod through_ipv6 {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use prets_destinations::ipnet::{IpNet, Ipv4Net, Ipv6Net};
    use prets_destinations::{DestinationUrl, HostPolicy};
    use proptest::prelude::*;

    use crate::support::regressions_beside_module;

    /// The cloud metadata and credential endpoints that no policy may admit,
    /// restated from the providers' documentation.
    const METADATA: &[(&str, &str)] = &[
        (
            "169.254.169.254",
            "AWS, Azure, Google Cloud, Oracle Cloud, OpenStack instance metadata",
        ),
        ("169.254.170.2", "AWS ECS task metadata and credentials"),
        ("169.254.170.23", "AWS EKS Pod Identity agent"),
        ("fd00:ec2::23", "AWS EKS Pod Identity agent, IPv6"),
        ("fd00:ec2::254", "AWS instance metadata, IPv6"),
        ("fd20:ce::254", "Google Compute Engine metadata, IPv6"),
        ("100.100.100.200", "Alibaba Cloud ECS metadata"),
        (
            "192.0.0.192",
            "Oracle Cloud Infrastructure Classic metadata",
        ),
        ("169.254.42.42", "Scaleway metadata"),
        ("fd00:42::42", "Scaleway metadata, IPv6"),
        ("fe80::a9fe:a9fe", "OpenStack metadata, IPv6"),
        ("168.63.129.16", "Azure WireServer"),
    ];

    /// How many forms [`embed`] knows.
    const FORMS: usize = 12;

    /// `v4` written in IPv6 form number `form`; `noise` fills the bits the
    /// form leaves free. `None` where the form cannot hold `v4` (`::` and
    /// `::1` are not IPv4-compatible addresses).
    fn embed(form: usize, v4: Ipv4Addr, noise: u128) -> Option<Ipv6Addr> {
        let v4b = u128::from(v4.to_bits());
        let bits = match form {
            // RFC 4291 §2.5.5.2: ::ffff:a.b.c.d.
            0 => 0xffff << 32 | v4b,
            // RFC 2765 §2.1: ::ffff:0:a.b.c.d.
            1 => 0xffff << 48 | v4b,
            // RFC 4291 §2.5.5.1: ::a.b.c.d.
            2 if v4b > 1 => v4b,
            2 => return None,
            // RFC 6052 §2.1: 64:ff9b::/96.
            3 => 0x0064_ff9b << 96 | v4b,
            // RFC 8215 64:ff9b:1::/48, with the RFC 6052 §2.2 layout for a
            // prefix of 48, 56, 64 or 96 bits: the IPv4 octets from the
            // prefix length on, skipping octet 8 (the zero "u" octet).
            4..=7 => {
                let length = [48, 56, 64, 96][form - 4];
                let mut octets = noise.to_be_bytes();
                octets[..6].copy_from_slice(&[0, 0x64, 0xff, 0x9b, 0, 1]);
                octets[8] = 0;
                let mut at = length / 8;
                for byte in v4.octets() {
                    if at == 8 {
                        at += 1;
                    }
                    octets[at] = byte;
                    at += 1;
                }
                u128::from_be_bytes(octets)
            }
            // RFC 3056 §2: 2002:V4ADDR::/48, any subnet and host.
            8 => 0x2002 << 112 | v4b << 80 | noise & (u128::MAX >> 48),
            // RFC 4380 §4: 2001:0:server:flags:port:client, the server in
            // the clear...
            9 => 0x2001_0000 << 96 | v4b << 64 | noise & (u128::MAX >> 64),
            // ... and the client inverted.
            10 => {
                0x2001_0000 << 96 | noise & (u128::MAX >> 32) & !0xffff_ffff | (!v4b & 0xffff_ffff)
            }
            // RFC 5214 §6.1: any /64 prefix, interface identifier
            // 0000:5efe or 0200:5efe (and the group bit either way).
            11 => {
                let ug = u128::from((noise as u16) & 0x0300);
                noise & !(u128::MAX >> 64) | ug << 48 | 0x5efe << 32 | v4b
            }
            _ => unreachable!("form {form}"),
        };
        Some(Ipv6Addr::from_bits(bits))
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn allow_everything() -> HostPolicy {
        HostPolicy::default()
            .allow(net("0.0.0.0/0"))
            .allow(net("::/0"))
    }

    #[test]
    fn a_denied_ipv4_address_is_denied_in_every_ipv6_form() {
        let policies = [
            HostPolicy::default()
                .deny(net("10.66.0.0/16"))
                .deny(net("151.101.1.69/32")),
            allow_everything()
                .deny(net("10.66.0.0/16"))
                .deny(net("151.101.1.69/32")),
        ];
        for policy in &policies {
            for denied in ["10.66.1.2", "151.101.1.69"] {
                let v4: Ipv4Addr = denied.parse().unwrap();
                assert!(!policy.is_allowed(IpAddr::V4(v4)));
                for form in 0..FORMS {
                    for noise in [0, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
                        let ip = embed(form, v4, noise).unwrap();
                        assert!(!policy.is_allowed(IpAddr::V6(ip)), "form {form}: {ip}");
                    }
                }
            }
        }
        // Concrete spellings, as a client would write them.
        let policy = &policies[1];
        for text in [
            "64:ff9b::a42:102",
            "64:ff9b::151.101.1.69",
            "2002:a42:102::1",
            "2002:9765:145:1::",
            "64:ff9b:1:a42:1:200::",
            "2001:0:a42:102::",
            "2001:0:1:2:3:4:f5bd:fefd",
            "2a00:1450:4001:1::5efe:a42:102",
            "::a42:102",
        ] {
            assert!(!policy.is_allowed(text.parse().unwrap()), "{text}");
        }
        // Neighbours stay allowed: the deny is by address, not by form.
        for text in ["64:ff9b::a43:102", "2002:a43:102::1", "2001:0:a43:102::"] {
            assert!(policy.is_allowed(text.parse().unwrap()), "{text}");
        }
    }

    #[test]
    fn an_ipv6_deny_still_matches_the_ipv6_spelling() {
        let policy = allow_everything()
            .deny(net("64:ff9b::/96"))
            .deny(net("2002::/16"));
        assert!(!policy.is_allowed("64:ff9b::808:808".parse().unwrap()));
        assert!(!policy.is_allowed("2002:808:808::".parse().unwrap()));
        // The IPv4 address itself is not denied by an IPv6 network.
        assert!(policy.is_allowed("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn allow_lists_admit_what_they_name_not_what_an_ipv6_address_carries() {
        let policy = HostPolicy::default().allow(net("10.0.0.0/8"));
        assert!(policy.is_allowed("10.1.2.3".parse().unwrap()));
        assert!(policy.is_allowed("::ffff:10.1.2.3".parse().unwrap()));
        for text in [
            "64:ff9b::a01:203",
            "2002:a01:203::",
            "::a01:203",
            "2001:0:a01:203::",
        ] {
            assert!(!policy.is_allowed(text.parse().unwrap()), "{text}");
        }
        // Naming the IPv6 block admits it, and a deny still sees inside.
        let policy = HostPolicy::default()
            .allow(net("64:ff9b::/96"))
            .deny(net("10.9.0.0/16"));
        assert!(policy.is_allowed("64:ff9b::a01:203".parse().unwrap()));
        assert!(!policy.is_allowed("64:ff9b::a09:203".parse().unwrap()));
    }

    #[test]
    fn metadata_addresses_are_refused_even_when_allowed_and_their_neighbours_are_not() {
        for &(text, what) in METADATA {
            let ip: IpAddr = text.parse().unwrap();
            let exact = HostPolicy::default().allow(IpNet::from(ip));
            for policy in [HostPolicy::default(), allow_everything(), exact] {
                assert!(!policy.is_allowed(ip), "{what}: {text}");
            }
            let next = match ip {
                IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() + 1)),
                IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() + 1)),
            };
            assert!(allow_everything().is_allowed(next), "{what}: {next}");
            if let IpAddr::V4(v4) = ip {
                for form in 0..FORMS {
                    let embedded =
                        embed(form, v4, 0x5555_aaaa_5555_aaaa_5555_aaaa_5555_aaaa).unwrap();
                    assert!(
                        !allow_everything().is_allowed(IpAddr::V6(embedded)),
                        "{what}: {embedded}"
                    );
                }
            }
        }
    }

    /// IPv6 literals never pass the URL pattern; IPv6 addresses reach the
    /// policy as DNS answers at delivery time (the tests above).
    #[test]
    fn metadata_literals_are_refused_at_create_time_under_any_allow_list() {
        for url in [
            "https://169.254.169.254/latest/meta-data/",
            "https://169.254.170.2/v2/credentials",
            "https://100.100.100.200/latest/meta-data/",
            "https://192.0.0.192/latest/",
            "https://168.63.129.16/machine?comp=goalstate",
        ] {
            let err = DestinationUrl::parse_with_policy(url, &allow_everything()).unwrap_err();
            assert_eq!(err.code(), "non_public_address", "{url}");
        }
        // The same allow list admits a neighbour.
        assert!(
            DestinationUrl::parse_with_policy("https://169.254.169.1/", &allow_everything())
                .is_ok()
        );
    }

    proptest! {
        #![proptest_config(regressions_beside_module(ProptestConfig::with_cases(1024)))]

        /// A deny network covering an IPv4 address denies that address in
        /// every IPv6 form, whatever the allow list and the free bits.
        #[test]
        fn every_embedding_of_a_denied_ipv4_address_is_denied(
            v4 in any::<u32>(),
            len in 0u8..=32,
            form in 0..FORMS,
            noise in any::<u128>(),
            wide_allow in any::<bool>(),
        ) {
            let v4 = Ipv4Addr::from_bits(v4);
            let ip = embed(form, v4, noise);
            prop_assume!(ip.is_some());
            let ip = IpAddr::V6(ip.unwrap());
            let base = if wide_allow {
                allow_everything().allow(IpNet::from(ip))
            } else {
                HostPolicy::default()
            };
            let policy = base.deny(IpNet::V4(Ipv4Net::new(v4, len).unwrap()));
            prop_assert!(!policy.is_allowed(IpAddr::V4(v4)));
            prop_assert!(!policy.is_allowed(ip), "{ip} carries {v4}");
        }

        /// No allow list admits a metadata address, written as itself or,
        /// for an IPv4 one, in any IPv6 form; even one that names it.
        #[test]
        fn allow_lists_never_admit_a_metadata_address(
            which in 0..METADATA.len(),
            form in proptest::option::of(0..FORMS),
            noise in any::<u128>(),
            around in any::<u8>(),
            others in proptest::collection::vec((any::<u128>(), any::<u8>(), any::<bool>()), 0..6),
        ) {
            let target: IpAddr = METADATA[which].0.parse().unwrap();
            let ip = match (target, form) {
                (IpAddr::V4(v4), Some(form)) => IpAddr::V6(embed(form, v4, noise).unwrap()),
                _ => target,
            };
            // A network of random width around the address as written...
            let around = match ip {
                IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new(v4, around % 33).unwrap()),
                IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new(v6, around % 129).unwrap()),
            };
            let mut policy = HostPolicy::default().allow(around);
            // ... and around the IPv4 address it carries, plus random ones.
            if let IpAddr::V4(v4) = target {
                policy = policy.allow(IpNet::V4(Ipv4Net::new(v4, around.prefix_len() % 33).unwrap()));
            }
            for (bits, len, v6) in others {
                policy = policy.allow(if v6 {
                    IpNet::V6(Ipv6Net::new(Ipv6Addr::from_bits(bits), len % 129).unwrap())
                } else {
                    IpNet::V4(Ipv4Net::new(Ipv4Addr::from_bits(bits as u32), len % 33).unwrap())
                });
            }
            prop_assert!(!policy.is_allowed(ip), "{ip} ({})", METADATA[which].1);
        }
    }
}
