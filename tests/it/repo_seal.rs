//! Sealed secrets at rest: binding to tenant and id, key rotation, tampering,
//! stored forms, redaction.

use prets_destinations::ops::CreatePlan;
use prets_destinations::secret::DuplicateKeyId;
use prets_destinations::{
    CreateDestinationRequest, DestinationId, KeyId, Keyring, SealedSecret, SealingKey, TenantId,
};
use rand_chacha::ChaCha20Rng;

use crate::support::{now, rng, tenant};

fn key(id: u32, byte: u8) -> SealingKey {
    SealingKey::new(KeyId::new(id), &[byte; 32])
}

fn plan(org: &TenantId, sealer: &SealingKey, rng: &mut ChaCha20Rng) -> CreatePlan {
    CreateDestinationRequest::new("Production", "https://example.com/prets/events")
        .validate()
        .unwrap()
        .plan(org, now(), rng, sealer)
}

fn expected_header(p: &CreatePlan) -> String {
    format!("Bearer {}", p.response.bearer_secret().expose_secret())
}

#[test]
fn opens_into_the_authorization_header_of_the_minted_secret() {
    let mut rng = rng(1);
    let org = tenant("org_a");
    let ring = Keyring::new(key(1, 0x11), []).unwrap();
    let p = plan(&org, ring.current(), &mut rng);
    let header = ring.authorization_header(&org, &p.record).unwrap();
    assert_eq!(*header, expected_header(&p));
}

#[test]
fn records_sealed_before_a_rotation_still_open_and_new_ones_use_the_new_key() {
    let mut rng = rng(2);
    let org = tenant("org_a");
    let old = plan(&org, &key(1, 0x11), &mut rng);
    let ring = Keyring::new(key(2, 0x22), [key(1, 0x11)]).unwrap();
    assert_eq!(
        *ring.authorization_header(&org, &old.record).unwrap(),
        expected_header(&old)
    );
    let new = plan(&org, ring.current(), &mut rng);
    assert_eq!(new.record.sealed_secret.key_id(), KeyId::new(2));
    assert_eq!(
        *ring.authorization_header(&org, &new.record).unwrap(),
        expected_header(&new)
    );

    // Once the old key is retired, its records report which key they need.
    let retired = Keyring::new(key(2, 0x22), []).unwrap();
    let err = retired.authorization_header(&org, &old.record).unwrap_err();
    assert_eq!(err.code(), "unknown_key");
    assert_eq!(err.unknown_key_id(), Some(KeyId::new(1)));
}

#[test]
fn a_different_key_under_the_same_id_does_not_open() {
    let mut rng = rng(3);
    let org = tenant("org_a");
    let p = plan(&org, &key(1, 0x11), &mut rng);
    let impostor = Keyring::new(key(1, 0x12), []).unwrap();
    let err = impostor.authorization_header(&org, &p.record).unwrap_err();
    assert_eq!(err.code(), "unauthentic");
    assert_eq!(err.unknown_key_id(), None);
}

#[test]
fn a_sealed_secret_copied_to_another_record_does_not_open() {
    let mut rng = rng(4);
    let (a, b) = (tenant("org_a"), tenant("org_b"));
    let ring = Keyring::new(key(1, 0x11), []).unwrap();
    let source = plan(&a, ring.current(), &mut rng);

    // Another destination of the same tenant, given the source's secret and digest.
    let mut other = plan(&a, ring.current(), &mut rng).record;
    other.sealed_secret = source.record.sealed_secret.clone();
    other.secret_digest = source.record.secret_digest;
    assert_eq!(
        ring.authorization_header(&a, &other).unwrap_err().code(),
        "unauthentic"
    );

    // The same record presented as another tenant's.
    let err = ring.authorization_header(&b, &source.record).unwrap_err();
    assert_eq!(err.code(), "unauthentic");

    // Tenants that differ by one trailing character.
    let t1 = tenant("org_a1");
    let p = plan(&t1, ring.current(), &mut rng);
    assert!(
        ring.authorization_header(&tenant("org_a"), &p.record)
            .is_err()
    );
    assert!(ring.authorization_header(&t1, &p.record).is_ok());
}

#[test]
fn a_digest_that_does_not_match_the_sealed_secret_is_refused() {
    let mut rng = rng(5);
    let org = tenant("org_a");
    let ring = Keyring::new(key(1, 0x11), []).unwrap();
    let mut p = plan(&org, ring.current(), &mut rng);
    p.record.secret_digest = plan(&org, ring.current(), &mut rng).record.secret_digest;
    let err = ring.authorization_header(&org, &p.record).unwrap_err();
    assert_eq!(err.code(), "digest_mismatch");
}

#[test]
fn every_single_bit_flip_in_the_stored_form_is_caught() {
    let mut rng = rng(6);
    let org = tenant("org_a");
    let ring = Keyring::new(key(1, 0x11), []).unwrap();
    let p = plan(&org, ring.current(), &mut rng);
    let bytes = p.record.sealed_secret.to_bytes();
    assert_eq!(bytes.len(), SealedSecret::LEN);
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes;
            flipped[i] ^= 1 << bit;
            let Ok(sealed) = SealedSecret::from_bytes(&flipped) else {
                assert_eq!(i, 0, "only the version byte is checked on reading");
                continue;
            };
            let mut record = p.record.clone();
            record.sealed_secret = sealed;
            assert!(
                ring.authorization_header(&org, &record).is_err(),
                "byte {i} bit {bit}"
            );
        }
    }
}

#[test]
fn sealing_twice_gives_different_ciphertexts_that_both_open() {
    let mut rng = rng(7);
    let org = tenant("org_a");
    let ring = Keyring::new(key(1, 0x11), []).unwrap();
    let p = plan(&org, ring.current(), &mut rng);
    let again = ring.current().seal(
        &org,
        p.record.destination_id,
        p.response.bearer_secret(),
        &mut rng,
    );
    assert_ne!(again, p.record.sealed_secret);
    let mut record = p.record.clone();
    record.sealed_secret = again;
    assert_eq!(
        *ring.authorization_header(&org, &record).unwrap(),
        expected_header(&p)
    );
}

#[test]
fn stored_forms_round_trip_and_bad_ones_are_refused() {
    let mut rng = rng(8);
    let org = tenant("org_a");
    let sealer = key(0xDEAD_BEEF, 0x11);
    let sealed = plan(&org, &sealer, &mut rng).record.sealed_secret;
    assert_eq!(sealed.key_id(), KeyId::new(0xDEAD_BEEF));

    let bytes = sealed.to_bytes();
    assert_eq!(bytes[0], 1, "format version");
    assert_eq!(bytes[1..5], 0xDEAD_BEEF_u32.to_be_bytes());
    assert_eq!(SealedSecret::from_bytes(&bytes), Ok(sealed.clone()));

    let json = serde_json::to_string(&sealed).unwrap();
    assert_eq!(
        json.len(),
        2 + 126,
        "94 bytes as unpadded base64url, quoted"
    );
    assert_eq!(serde_json::from_str::<SealedSecret>(&json).unwrap(), sealed);

    for len in [0, 1, SealedSecret::LEN - 1, SealedSecret::LEN + 1, 200] {
        let mut v = bytes.to_vec();
        v.resize(len, 0);
        assert!(SealedSecret::from_bytes(&v).is_err(), "length {len}");
    }
    for version in [0u8, 2, 255] {
        let mut v = bytes;
        v[0] = version;
        assert!(SealedSecret::from_bytes(&v).is_err(), "version {version}");
    }
    for bad in [
        "\"\"",
        "\"AAAA\"",
        "\"!!\"",
        "17",
        &json.replace('"', "\"="),
    ] {
        assert!(serde_json::from_str::<SealedSecret>(bad).is_err(), "{bad}");
    }
}

#[test]
fn keys_and_errors_never_show_key_material_or_secrets() {
    let mut rng = rng(9);
    let org = tenant("org_a");
    let k = key(7, 0xAB);
    let shown = format!("{k:?}");
    assert!(
        shown.contains("KeyId(7)") && shown.contains("redacted"),
        "{shown}"
    );
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("abab"),
        "{shown}"
    );
    let ring = Keyring::new(k, []).unwrap();
    let shown = format!("{ring:?}");
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("abab"),
        "{shown}"
    );

    let p = plan(&org, ring.current(), &mut rng);
    let secret = p.response.bearer_secret().expose_secret();
    let body = &secret["whsec_".len()..];
    let sealed_debug = format!("{:?}", p.record.sealed_secret);
    assert_eq!(sealed_debug, "SealedSecret { key_id: KeyId(7), .. }");
    let err = ring
        .authorization_header(&tenant("org_b"), &p.record)
        .unwrap_err();
    for text in [format!("{err}"), format!("{err:?}")] {
        assert!(!text.contains(body), "{text}");
    }
}

#[test]
fn a_keyring_refuses_two_keys_with_one_id() {
    let err = Keyring::new(key(1, 1), [key(2, 2), key(1, 3)]).unwrap_err();
    assert_eq!(err, DuplicateKeyId(KeyId::new(1)));
    let err = Keyring::new(key(1, 1), [key(2, 2), key(2, 3)]).unwrap_err();
    assert_eq!(err, DuplicateKeyId(KeyId::new(2)));
    assert!(Keyring::new(key(1, 1), [key(2, 1)]).is_ok());
}

#[test]
fn tenant_ids_are_bounded_printable_ascii() {
    for ok in [
        "a",
        "org_2b1f",
        "9f1c2d3e-0000-4000-8000-0123456789ab",
        &"x".repeat(128),
    ] {
        assert_eq!(ok.parse::<TenantId>().unwrap().as_str(), ok);
        assert!(TenantId::try_from(ok.to_owned()).is_ok());
    }
    for bad in [
        "",
        " ",
        "org 1",
        "org\n",
        "org\u{0}",
        "orgé",
        &"x".repeat(129),
    ] {
        assert!(bad.parse::<TenantId>().is_err(), "{bad:?}");
        assert!(TenantId::try_from(bad.to_owned()).is_err(), "{bad:?}");
    }
    assert!(serde_json::from_str::<TenantId>("\"org 1\"").is_err());
    let t: TenantId = serde_json::from_str("\"org_1\"").unwrap();
    assert_eq!(serde_json::to_string(&t).unwrap(), "\"org_1\"");
}

#[test]
fn ids_that_differ_only_in_the_random_part_are_bound_separately() {
    let mut rng = rng(10);
    let org = tenant("org_a");
    let ring = Keyring::new(key(1, 0x11), []).unwrap();
    let p = plan(&org, ring.current(), &mut rng);
    let id = p.record.destination_id;
    let mut record = p.record.clone();
    record.destination_id = DestinationId::from_ulid(id.to_ulid().unwrap() ^ 1);
    assert_eq!(
        ring.authorization_header(&org, &record).unwrap_err().code(),
        "unauthentic"
    );
}

/// The associated data every secret sealed before ids could exceed 128 bits
/// was bound to: context, version, key id, length-prefixed tenant and the
/// id's 128-bit value big-endian.
fn old_associated_data(key_id: u32, org: &str, id: DestinationId) -> Vec<u8> {
    let body = std::str::from_utf8(id.body()).unwrap();
    let value = body.bytes().fold(0u128, |v, c| {
        let d = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
            .iter()
            .position(|&x| x == c)
            .unwrap();
        (v << 5) | d as u128
    });
    let mut aad = b"prets-destinations/sealed-bearer-secret\0".to_vec();
    aad.push(1);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.push(u8::try_from(org.len()).unwrap());
    aad.extend_from_slice(org.as_bytes());
    aad.extend_from_slice(&value.to_be_bytes());
    aad
}

#[test]
fn a_secret_sealed_with_the_old_associated_data_still_opens() {
    use chacha20poly1305::aead::AeadInOut as _;
    use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305, XNonce};

    let mut rng = rng(11);
    let org = tenant("org_a");
    let ring = Keyring::new(key(7, 0x42), []).unwrap();
    let mut p = plan(&org, ring.current(), &mut rng);
    let id = p.record.destination_id;
    assert!(id.to_ulid().is_some());
    let secret = p.response.bearer_secret().expose_secret().to_owned();
    // Sealed by hand under the old formula.
    let cipher = XChaCha20Poly1305::new(&[0x42; 32].into());
    let nonce = [9u8; 24];
    let mut body = secret.as_bytes().to_vec();
    let tag = cipher
        .encrypt_inout_detached(
            &XNonce::from(nonce),
            &old_associated_data(7, "org_a", id),
            body.as_mut_slice().into(),
        )
        .unwrap();
    let mut stored = vec![1u8];
    stored.extend_from_slice(&7u32.to_be_bytes());
    stored.extend_from_slice(&nonce);
    stored.extend_from_slice(&body);
    stored.extend_from_slice(&tag);
    p.record.sealed_secret = SealedSecret::from_bytes(&stored).unwrap();
    let header = ring.authorization_header(&org, &p.record).unwrap();
    assert_eq!(*header, format!("Bearer {secret}"));
    // The same vector does not open for a neighbouring id.
    p.record.destination_id = id.successor().unwrap();
    assert_eq!(
        ring.authorization_header(&org, &p.record)
            .unwrap_err()
            .code(),
        "unauthentic"
    );
}

#[test]
fn an_id_wider_than_128_bits_seals_opens_and_is_bound_to_its_id() {
    let mut rng = rng(12);
    let org = tenant("org_a");
    let ring = Keyring::new(key(1, 0x11), []).unwrap();
    for text in [
        "whk_ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "whk_80000000000000000000000000",
        "whk_Z1ARZ3NDEKTSV4RRFFQ69G5FAV",
    ] {
        let p = CreateDestinationRequest::new("Production", "https://example.com/prets/events")
            .with_destination_id(text)
            .validate()
            .unwrap()
            .plan(&org, now(), &mut rng, ring.current());
        let id = p.record.destination_id;
        assert_eq!(id.as_str(), text);
        assert_eq!(id.to_ulid(), None);
        let header = ring.authorization_header(&org, &p.record).unwrap();
        assert_eq!(*header, expected_header(&p));
        // Bound to the id: any other id, wide or not, refuses it.
        for other in [id.successor(), id.predecessor(), Some(DestinationId::MIN)]
            .into_iter()
            .flatten()
            .filter(|o| *o != id)
        {
            let mut moved = p.record.clone();
            moved.destination_id = other;
            assert_eq!(
                ring.authorization_header(&org, &moved).unwrap_err().code(),
                "unauthentic",
                "{other}"
            );
        }
        // And to the tenant.
        assert!(
            ring.authorization_header(&tenant("org_b"), &p.record)
                .is_err()
        );
    }
}

#[test]
fn a_wide_id_and_a_ulid_with_the_same_text_prefix_are_bound_separately() {
    // 16 bytes of a ULID value never equal the 26 text bytes of a wide id
    // (the lengths differ); check it through the public API for ids that
    // share their last characters.
    let mut rng = rng(13);
    let org = tenant("org_a");
    let ring = Keyring::new(key(1, 0x11), []).unwrap();
    let wide = "whk_Z0000000000000000000000001";
    let p = CreateDestinationRequest::new("Production", "https://example.com/prets/events")
        .with_destination_id(wide)
        .validate()
        .unwrap()
        .plan(&org, now(), &mut rng, ring.current());
    let mut moved = p.record.clone();
    moved.destination_id = "whk_70000000000000000000000001".parse().unwrap();
    assert_eq!(
        ring.authorization_header(&org, &moved).unwrap_err().code(),
        "unauthentic"
    );
}
