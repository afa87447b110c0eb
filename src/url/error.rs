//! [`InvalidUrl`]: why a string is not a destination URL, shared by the
//! scanner and the host policy.

use crate::error::{Field, field_error_type};

field_error_type! {
    /// Why a string is not a valid [`DestinationUrl`](crate::url::DestinationUrl).
    InvalidUrl, UrlErrorKind, Field::Url,
    {
        Empty => ("too_short", "url must not be empty"),
        TooLong => ("too_long", "url must be at most 2048 characters"),
        Character => ("pattern", "url contains a character outside the allowed set"),
        PercentEscape => ("pattern", "url contains a malformed percent-escape"),
        NotHttps => ("not_https", "url must begin with https://"),
        Credentials => ("credentials", "url must not contain credentials or '@' before the path"),
        EmptyHost => ("empty_host", "url host must not be empty"),
        Port => ("invalid_port", "url port must be a number from 1 to 65535 without leading zeros"),
        /// The host is an IP address, in any notation the WHATWG URL parser
        /// accepts, that is not a public unicast address.
        NonPublicAddress => ("non_public_address", "url host is an ip address that is not public"),
        /// The host is, or is inside, a name reserved for local, private,
        /// testing or non-DNS use (`localhost`, `.local`, `.internal`, ...).
        ReservedHost => ("reserved_host", "url host is a reserved or local-only name"),
        /// The host has no dot, so a resolver may complete it with a local
        /// search domain.
        SingleLabelHost => ("single_label_host", "url host must be a domain name with at least two labels"),
        /// The host is not a valid DNS name or IP address once parsed.
        InvalidHost => ("invalid_host", "url host is not a valid domain name or ip address"),
        /// The host parses to a different spelling than the one sent
        /// (percent-escapes, IDNA mapping, non-decimal or shortened IPv4, a
        /// trailing dot); only ASCII case may differ.
        NonCanonicalHost => ("non_canonical_host", "url host must be written in canonical form"),
    }
}
