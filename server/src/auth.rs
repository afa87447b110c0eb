//! API tokens: `Authorization: Bearer <token>` to the caller's organization.
//!
//! Only SHA-256 digests of tokens are held (in the configuration and the
//! database); a presented token is hashed and compared with every digest in
//! constant time, without stopping at a match.

use std::fmt;

use prets_destinations::TenantId;
use prets_destinations::rand_core::Rng as _;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConditionallySelectable as _, ConstantTimeEq as _};
use zeroize::Zeroizing;

/// The prefix of the tokens this server mints.
pub const TOKEN_PREFIX: &str = "prets_";

/// Most bytes of an `Authorization` value looked at; longer ones are refused
/// before hashing.
const MAX_AUTHORIZATION_LEN: usize = 1024;

/// The SHA-256 digest of a token's text, as stored.
#[must_use]
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Mints a new API token: the prefix and 64 hex digits (256 random bits).
#[must_use]
pub fn mint_token() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    prets_destinations::os_rng().fill_bytes(bytes.as_mut_slice());
    let mut token = Zeroizing::new(String::with_capacity(TOKEN_PREFIX.len() + 64));
    token.push_str(TOKEN_PREFIX);
    crate::hex::encode_into(bytes.as_slice(), &mut token);
    token
}

/// The accepted API tokens (as digests) and their organizations.
#[derive(Clone, Default)]
pub struct ApiTokens {
    entries: Vec<([u8; 32], TenantId)>,
}

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiTokens")
            .field("count", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl ApiTokens {
    /// The set of these digests.
    #[must_use]
    pub fn new(entries: Vec<([u8; 32], TenantId)>) -> Self {
        Self { entries }
    }

    /// How many tokens are accepted.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is accepted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The organization of the token in an `Authorization` header value
    /// (`Bearer <token>`, scheme case-insensitive, surrounding spaces and tabs
    /// ignored), or `None` for a missing scheme or an unknown token.
    #[must_use]
    pub fn authenticate(&self, authorization: &[u8]) -> Option<TenantId> {
        if authorization.len() > MAX_AUTHORIZATION_LEN {
            return None;
        }
        let value = trim_sp_htab(authorization);
        let (scheme, rest) = value.split_at_checked(7)?;
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return None;
        }
        // `1*SP` separates the scheme from the token (RFC 9110 §11.4), as in
        // the library's own header parsing; the value's end was trimmed above.
        let mut token = rest;
        while let [b' ', tail @ ..] = token {
            token = tail;
        }
        // Only the shape this server mints (`prets_` and 64 lowercase hex
        // digits) can be a token: anything else is refused before hashing.
        if !is_token_shaped(token) {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(token).into();
        // Compare with every entry and select the match without branching on
        // it, so the time taken says nothing about which entry matched.
        let mut index = 0u64;
        let mut matched = Choice::from(0);
        for (i, (stored, _)) in (0u64..).zip(&self.entries) {
            let hit = stored.ct_eq(&digest);
            index.conditional_assign(&i, hit);
            matched |= hit;
        }
        if !bool::from(matched) {
            return None;
        }
        let index = usize::try_from(index).ok()?;
        self.entries.get(index).map(|(_, tenant)| tenant.clone())
    }
}

/// Whether `token` is `prets_` followed by exactly 64 lowercase hex digits.
fn is_token_shaped(token: &[u8]) -> bool {
    token
        .strip_prefix(TOKEN_PREFIX.as_bytes())
        .is_some_and(|hex| {
            hex.len() == 64 && hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        })
}

fn trim_sp_htab(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> (ApiTokens, Zeroizing<String>) {
        let token = mint_token();
        let set = ApiTokens::new(vec![
            (token_digest("prets_other"), "org_other".parse().unwrap()),
            (token_digest(&token), "org_a".parse().unwrap()),
        ]);
        (set, token)
    }

    #[test]
    fn minted_tokens_are_prefixed_hex_and_distinct() {
        let (a, b) = (mint_token(), mint_token());
        assert_ne!(*a, *b);
        let hex = a.strip_prefix(TOKEN_PREFIX).unwrap();
        assert_eq!(hex.len(), 64);
        assert!(
            hex.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn bearer_token_maps_to_its_organization() {
        let (set, token) = tokens();
        for header in [
            format!("Bearer {}", *token),
            format!("bearer {}", *token),
            format!("BEARER   {} ", *token),
            format!(" \tBearer {}\t", *token),
        ] {
            assert_eq!(
                set.authenticate(header.as_bytes()).map(String::from),
                Some("org_a".to_owned()),
                "{header:?}"
            );
        }
    }

    #[test]
    fn wrong_or_malformed_credentials_are_refused() {
        let (set, token) = tokens();
        let long = format!("Bearer {}", "a".repeat(2000));
        let truncated = format!("Bearer {}", &token[..token.len() - 1]);
        let basic = format!("Basic {}", *token);
        let glued = format!("Bearer{}", *token);
        // Only spaces separate the scheme from the token, as in the library.
        let tabbed = format!("Bearer \t{}", *token);
        for header in [
            &tabbed,
            "",
            "Bearer",
            "Bearer ",
            "Bearer  \t",
            &long,
            &truncated,
            &basic,
            &glued,
            &token,
        ] {
            assert_eq!(set.authenticate(header.as_bytes()), None, "{header:?}");
        }
        assert_eq!(set.authenticate(b"Bearer \xff\xfe"), None);
    }

    #[test]
    fn only_prefixed_lowercase_hex_tokens_are_looked_up() {
        let hex = "ab".repeat(32);
        // Each of these is configured, so only the shape check refuses it.
        let odd = [
            format!("prets_{}", hex.to_uppercase()),
            format!("prets_{}", &hex[..63]),
            format!("prets_{hex}0"),
            format!("PRETS_{hex}"),
            format!("prets_{}g", &hex[..63]),
            "prets_other".to_owned(),
            hex.clone(),
        ];
        let set = ApiTokens::new(
            odd.iter()
                .map(|t| (token_digest(t), "org_odd".parse().unwrap()))
                .collect(),
        );
        for token in &odd {
            assert_eq!(
                set.authenticate(format!("Bearer {token}").as_bytes()),
                None,
                "{token:?}"
            );
        }
        let good = format!("prets_{hex}");
        let set = ApiTokens::new(vec![(token_digest(&good), "org_a".parse().unwrap())]);
        assert!(
            set.authenticate(format!("Bearer {good}").as_bytes())
                .is_some()
        );
    }
}
