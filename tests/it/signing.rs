//! Standard Webhooks signing: the `whsec_` signing secret, its sealing at
//! rest, the `signing` scheme, and `webhook-signature` headers checked with
//! the official `standardwebhooks` crate (altered bodies fail; during a
//! rotation's grace period both the old and the new secret verify).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prets_destinations::error::Field;
use prets_destinations::secret::{
    InvalidSigningSecret, SIGNATURE_HEADER, SIGNING_SECRET_PATTERN, SealedSigningSecret,
    SignedMessage, Signing, SigningSecret, webhook_signature,
};
use prets_destinations::{DestinationId, KeyId, Keyring, SealedSecret, SealingKey, Timestamp};
use proptest::prelude::*;
use regex_lite::Regex;
use standardwebhooks::Webhook;

use crate::support::{keyring, now, regressions_beside_module, rng, tenant};

const EVENT_ID: &str = "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG";
const BODY: &[u8] = r#"{"type":"invoice.paid","data":{"amount":1250,"note":"café"}}"#.as_bytes();

/// Padded standard base64, as the specification writes secrets.
fn b64(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len().div_ceil(3) * 4];
    let len = STANDARD.encode_slice(bytes, &mut out).unwrap();
    out.truncate(len);
    String::from_utf8(out).unwrap()
}

fn unb64(text: &str) -> Vec<u8> {
    let mut out = vec![0u8; text.len()];
    let len = STANDARD.decode_slice(text, &mut out).unwrap();
    out.truncate(len);
    out
}

/// The current time: the official library refuses a timestamp more than
/// five minutes away from its own clock.
fn wall_clock() -> Timestamp {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Timestamp::from_unix_seconds(secs).unwrap()
}

fn message(at: Timestamp, body: &[u8]) -> SignedMessage<'_> {
    SignedMessage {
        webhook_id: EVENT_ID,
        timestamp: at,
        body,
    }
}

/// The headers of a delivery, as a receiver's framework hands them over.
fn headers(at: Timestamp, signature: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("webhook-id", EVENT_ID.parse().unwrap());
    h.insert(
        "webhook-timestamp",
        at.unix_seconds().to_string().parse().unwrap(),
    );
    h.insert(SIGNATURE_HEADER, signature.parse().unwrap());
    h
}

fn official(secret: &SigningSecret) -> Webhook {
    Webhook::new(secret.expose_secret()).unwrap()
}

fn parse(s: &str) -> Result<SigningSecret, InvalidSigningSecret> {
    s.parse()
}

fn code(s: &str) -> &'static str {
    match parse(s) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn a_minted_secret_is_whsec_and_padded_standard_base64_of_32_random_bytes() {
    let pattern = Regex::new(SIGNING_SECRET_PATTERN).unwrap();
    let mut rng = rng(1);
    let a = SigningSecret::from_rng(&mut rng);
    let b = SigningSecret::from_rng(&mut rng);
    #[cfg(feature = "getrandom")]
    let generated = SigningSecret::generate().unwrap();
    #[cfg(not(feature = "getrandom"))]
    let generated = SigningSecret::from_rng(&mut rng);
    for s in [&a, &b, &generated] {
        let text = s.expose_secret();
        assert!(pattern.is_match(text), "{}", text.len());
        let key = unb64(text.strip_prefix("whsec_").unwrap());
        assert_eq!(key.len(), 32);
        assert!(parse(text).unwrap().ct_eq(s));
    }
    assert!(!a.ct_eq(&b));
    assert_ne!(a.expose_secret(), b.expose_secret());
}

#[test]
fn parsing_takes_exactly_the_minted_form() {
    let good = SigningSecret::from_rng(&mut rng(2));
    let text = good.expose_secret().to_owned();
    let body = text.strip_prefix("whsec_").unwrap();
    assert_eq!(code(&text), "ok");
    let cases = [
        (body.to_owned(), "pattern"),
        (format!("WHSEC_{body}"), "pattern"),
        (format!("whsec_{}", &body[..43]), "pattern"),
        (format!("whsec_{body}="), "pattern"),
        (format!("whsec_{}A", &body[..43]), "pattern"),
        (format!("whsec_-{}", &body[1..]), "pattern"),
        (format!("whsec_{}_=", &body[..42]), "pattern"),
        (format!(" {text}"), "pattern"),
        // 32 bytes end in 4 data bits: a last data character with either of
        // its 2 spare bits set spells the same key a second way.
        (format!("whsec_{}B=", "A".repeat(42)), "non_canonical"),
        (format!("whsec_{}D=", "A".repeat(42)), "non_canonical"),
        (format!("whsec_{}E=", "A".repeat(42)), "ok"),
        // A bearer secret is not a signing secret.
        (
            "whsec_3XvK2nQ8mB7pR1sT4uW6yZ0aE5gH9jLcV2bN1xM4qP8".to_owned(),
            "pattern",
        ),
        // A 24-byte Standard Webhooks secret from elsewhere is not taken.
        (
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_owned(),
            "pattern",
        ),
    ];
    for (s, expected) in cases {
        assert_eq!(code(&s), expected, "{s}");
        assert_eq!(
            SigningSecret::try_from(s.clone())
                .map(|_| ())
                .map_err(|e| e.code()),
            parse(&s).map(|_| ()).map_err(|e| e.code())
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            serde_json::from_str::<SigningSecret>(&json).is_ok(),
            expected == "ok"
        );
    }
}

#[test]
fn the_secret_is_never_shown_by_debug_or_an_error() {
    let secret = SigningSecret::from_rng(&mut rng(3));
    assert_eq!(format!("{secret:?}"), "SigningSecret(<redacted>)");
    let text = secret.expose_secret();
    let almost = format!("{}!", &text[..49]);
    let e = parse(&almost).unwrap_err();
    let fe = e.to_field_error();
    assert_eq!(fe.field(), Field::SigningSecret);
    assert_eq!(fe.field().as_str(), "signingSecret");
    let shown = format!("{e} {e:?} {}", serde_json::to_string(&fe).unwrap());
    assert!(!shown.contains(&text[6..20]), "{shown}");
}

#[test]
fn the_official_library_signs_the_same_header_and_verifies_ours() {
    let secret = SigningSecret::from_rng(&mut rng(4));
    let at = wall_clock();
    let ours = webhook_signature(&message(at, BODY), &secret, []);
    let theirs = official(&secret)
        .sign(EVENT_ID, i64::try_from(at.unix_seconds()).unwrap(), BODY)
        .unwrap();
    assert_eq!(ours, theirs);
    official(&secret).verify(BODY, &headers(at, &ours)).unwrap();
}

#[test]
fn an_altered_body_id_or_timestamp_fails_verification() {
    let secret = SigningSecret::from_rng(&mut rng(5));
    let at = wall_clock();
    let header = webhook_signature(&message(at, BODY), &secret, []);
    let wh = official(&secret);
    let altered = BODY
        .to_vec()
        .into_iter()
        .map(|b| if b == b'5' { b'6' } else { b })
        .collect::<Vec<_>>();
    assert_ne!(altered, BODY);
    assert!(wh.verify(&altered, &headers(at, &header)).is_err());
    let mut appended = BODY.to_vec();
    appended.push(b' ');
    assert!(wh.verify(&appended, &headers(at, &header)).is_err());
    let earlier = Timestamp::from_unix_seconds(at.unix_seconds() - 1).unwrap();
    assert!(wh.verify(BODY, &headers(earlier, &header)).is_err());
    let mut other_id = headers(at, &header);
    other_id.insert(
        "webhook-id",
        "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFH".parse().unwrap(),
    );
    assert!(wh.verify(BODY, &other_id).is_err());
    // Another secret does not verify it either.
    let stranger = SigningSecret::from_rng(&mut rng(6));
    assert!(
        official(&stranger)
            .verify(BODY, &headers(at, &header))
            .is_err()
    );
}

#[test]
fn during_a_grace_period_both_the_new_and_the_old_secret_verify() {
    let mut rng = rng(7);
    let (new, old, older) = (
        SigningSecret::from_rng(&mut rng),
        SigningSecret::from_rng(&mut rng),
        SigningSecret::from_rng(&mut rng),
    );
    let at = wall_clock();
    let header = webhook_signature(&message(at, BODY), &new, [&old, &older]);
    let parts: Vec<&str> = header.split(' ').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], webhook_signature(&message(at, BODY), &new, []));
    assert_eq!(parts[1], webhook_signature(&message(at, BODY), &old, []));
    assert_eq!(parts[2], webhook_signature(&message(at, BODY), &older, []));
    for secret in [&new, &old, &older] {
        official(secret)
            .verify(BODY, &headers(at, &header))
            .unwrap();
        assert!(
            official(secret)
                .verify(b"{}", &headers(at, &header))
                .is_err()
        );
    }
    let stranger = SigningSecret::from_rng(&mut rng);
    assert!(
        official(&stranger)
            .verify(BODY, &headers(at, &header))
            .is_err()
    );
}

#[test]
fn a_sealed_signing_secret_signs_through_the_keyring_and_only_for_its_destination() {
    let mut rng = rng(8);
    let ring = keyring(1, &mut rng);
    let org = tenant("org_a");
    let id = DestinationId::generate(now(), &mut rng);
    let (new, old) = (
        SigningSecret::from_rng(&mut rng),
        SigningSecret::from_rng(&mut rng),
    );
    let sealed_new = ring.current().seal_signing_secret(&org, id, &new, &mut rng);
    let sealed_old = ring.current().seal_signing_secret(&org, id, &old, &mut rng);
    let at = wall_clock();
    let msg = message(at, BODY);
    let header = ring
        .webhook_signature(&org, id, &sealed_new, [&sealed_old], &msg)
        .unwrap();
    assert_eq!(header, webhook_signature(&msg, &new, [&old]));
    official(&old).verify(BODY, &headers(at, &header)).unwrap();

    // Copied to another destination or organization, it does not open.
    let other_id = id.successor().unwrap();
    let err = ring
        .webhook_signature(&org, other_id, &sealed_new, [], &msg)
        .unwrap_err();
    assert_eq!(err.code(), "unauthentic");
    let err = ring
        .webhook_signature(&tenant("org_b"), id, &sealed_new, [], &msg)
        .unwrap_err();
    assert_eq!(err.code(), "unauthentic");
    // One previous secret that does not open fails the whole header.
    let foreign = ring
        .current()
        .seal_signing_secret(&org, other_id, &old, &mut rng);
    assert_eq!(
        ring.webhook_signature(&org, id, &sealed_new, [&foreign], &msg)
            .unwrap_err()
            .code(),
        "unauthentic"
    );
    // A keyring without the sealing key names the key id it lacks.
    let other_ring = Keyring::new(SealingKey::from_rng(KeyId::new(2), &mut rng), []).unwrap();
    let err = other_ring
        .webhook_signature(&org, id, &sealed_new, [], &msg)
        .unwrap_err();
    assert_eq!(err.code(), "unknown_key");
    assert_eq!(err.unknown_key_id(), Some(KeyId::new(1)));
}

#[test]
fn sealed_signing_secrets_round_trip_and_tampering_is_caught() {
    let mut rng = rng(9);
    let ring = keyring(3, &mut rng);
    let org = tenant("org_a");
    let id = DestinationId::generate(now(), &mut rng);
    let secret = SigningSecret::from_rng(&mut rng);
    let sealed = ring
        .current()
        .seal_signing_secret(&org, id, &secret, &mut rng);
    let msg = message(now(), BODY);
    let expected = webhook_signature(&msg, &secret, []);

    let bytes = sealed.to_bytes();
    assert_eq!(bytes.len(), SealedSigningSecret::LEN);
    assert_eq!(bytes.len(), 77);
    assert_eq!(bytes[0], 1);
    assert_eq!(&bytes[1..5], &3u32.to_be_bytes());
    assert_eq!(SealedSigningSecret::from_bytes(&bytes).unwrap(), sealed);
    assert_eq!(sealed.key_id(), KeyId::new(3));
    // The key is not stored in clear.
    let key = unb64(secret.expose_secret().strip_prefix("whsec_").unwrap());
    assert!(!bytes.windows(8).any(|w| key.windows(8).any(|k| k == w)));

    let json = serde_json::to_string(&sealed).unwrap();
    assert_eq!(json.len(), 2 + 103);
    assert_eq!(
        serde_json::from_str::<SealedSigningSecret>(&json).unwrap(),
        sealed
    );
    assert_eq!(
        format!("{sealed:?}"),
        "SealedSigningSecret { key_id: KeyId(3), .. }"
    );

    for i in 5..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes;
            flipped[i] ^= 1 << bit;
            let tampered = SealedSigningSecret::from_bytes(&flipped).unwrap();
            assert_eq!(
                ring.webhook_signature(&org, id, &tampered, [], &msg)
                    .unwrap_err()
                    .code(),
                "unauthentic",
                "byte {i} bit {bit}"
            );
        }
    }
    assert_eq!(
        ring.webhook_signature(&org, id, &sealed, [], &msg).unwrap(),
        expected
    );

    let mut version = bytes;
    version[0] = 2;
    assert!(SealedSigningSecret::from_bytes(&version).is_err());
    assert!(SealedSigningSecret::from_bytes(&bytes[..76]).is_err());
    assert!(SealedSigningSecret::from_bytes(&[bytes.as_slice(), &[0]].concat()).is_err());
    assert!(serde_json::from_str::<SealedSigningSecret>(r#""AAAA""#).is_err());
    // A sealed bearer secret is not a sealed signing secret, nor the reverse.
    let bearer = prets_destinations::BearerSecret::from_rng(&mut rng);
    let sealed_bearer = ring.current().seal(&org, id, &bearer, &mut rng);
    assert!(SealedSigningSecret::from_bytes(&sealed_bearer.to_bytes()).is_err());
    assert!(SealedSecret::from_bytes(&bytes).is_err());
    let bearer_json = serde_json::to_string(&sealed_bearer).unwrap();
    assert!(serde_json::from_str::<SealedSigningSecret>(&bearer_json).is_err());
    assert!(serde_json::from_str::<SealedSecret>(&json).is_err());
}

#[test]
fn a_signing_key_sealed_under_the_bearer_context_does_not_open() {
    use chacha20poly1305::aead::AeadInOut as _;
    use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305, XNonce};

    let mut rng = rng(10);
    let org = tenant("org_a");
    let id = DestinationId::generate(now(), &mut rng);
    let ring = Keyring::new(SealingKey::new(KeyId::new(7), &[0x42; 32]), []).unwrap();
    let ulid = id.to_ulid().unwrap();
    let aad = |context: &[u8]| {
        let mut aad = context.to_vec();
        aad.push(1);
        aad.extend_from_slice(&7u32.to_be_bytes());
        aad.push(5);
        aad.extend_from_slice(b"org_a");
        aad.extend_from_slice(&ulid.to_be_bytes());
        aad
    };
    let seal_by_hand = |context: &[u8], key: [u8; 32]| {
        let cipher = XChaCha20Poly1305::new(&[0x42; 32].into());
        let nonce = [9u8; 24];
        let mut body = key.to_vec();
        let tag = cipher
            .encrypt_inout_detached(
                &XNonce::from(nonce),
                &aad(context),
                body.as_mut_slice().into(),
            )
            .unwrap();
        let mut stored = vec![1u8];
        stored.extend_from_slice(&7u32.to_be_bytes());
        stored.extend_from_slice(&nonce);
        stored.extend_from_slice(&body);
        stored.extend_from_slice(&tag);
        SealedSigningSecret::from_bytes(&stored).unwrap()
    };
    let key = [0x11u8; 32];
    let secret: SigningSecret = format!("whsec_{}", b64(&key)).parse().unwrap();
    let msg = message(now(), BODY);
    // The documented layout under the signing context opens...
    let right = seal_by_hand(b"prets-destinations/sealed-signing-secret\0", key);
    assert_eq!(
        ring.webhook_signature(&org, id, &right, [], &msg).unwrap(),
        webhook_signature(&msg, &secret, [])
    );
    // ...and the same bytes under the bearer secret's context do not.
    let wrong = seal_by_hand(b"prets-destinations/sealed-bearer-secret\0", key);
    assert_eq!(
        ring.webhook_signature(&org, id, &wrong, [], &msg)
            .unwrap_err()
            .code(),
        "unauthentic"
    );
}

#[test]
fn signing_is_bearer_by_default_and_spelled_exactly() {
    assert_eq!(Signing::default(), Signing::Bearer);
    for (text, value) in [
        ("bearer", Signing::Bearer),
        ("standard-webhooks", Signing::StandardWebhooks),
    ] {
        assert_eq!(text.parse::<Signing>().unwrap(), value);
        assert_eq!(value.as_str(), text);
        assert_eq!(value.to_string(), text);
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            format!("\"{text}\"")
        );
        assert_eq!(
            serde_json::from_str::<Signing>(&format!("\"{text}\"")).unwrap(),
            value
        );
    }
    for bad in [
        "",
        "Bearer",
        "standard_webhooks",
        "standardwebhooks",
        "hmac",
        " bearer",
    ] {
        let e = bad.parse::<Signing>().unwrap_err();
        assert_eq!(e.code(), "invalid");
        assert_eq!(e.to_field_error().field().as_str(), "signing");
        assert!(serde_json::from_str::<Signing>(&format!("{bad:?}")).is_err());
    }
}

proptest! {
    #![proptest_config(regressions_beside_module(ProptestConfig::default()))]

    #[test]
    fn any_key_and_body_sign_as_the_official_library_does(
        key in any::<[u8; 32]>(),
        body in "\\PC{0,300}",
        secs in 0u64..4_000_000_000,
        previous in proptest::collection::vec(any::<[u8; 32]>(), 0..3),
    ) {
        let secret: SigningSecret = format!("whsec_{}", b64(&key)).parse().unwrap();
        let at = Timestamp::from_unix_seconds(secs).unwrap();
        let previous: Vec<SigningSecret> = previous
            .iter()
            .map(|k| SigningSecret::try_from(format!("whsec_{}", b64(k))).unwrap())
            .collect();
        let header = webhook_signature(&message(at, body.as_bytes()), &secret, &previous);
        let mut expected = vec![official(&secret)
            .sign(EVENT_ID, i64::try_from(secs).unwrap(), body.as_bytes())
            .unwrap()];
        for p in &previous {
            expected.push(
                official(p)
                    .sign(EVENT_ID, i64::try_from(secs).unwrap(), body.as_bytes())
                    .unwrap(),
            );
        }
        prop_assert_eq!(header, expected.join(" "));
    }
}
