//! Helpers shared by the test modules: an executor, seeded generators and
//! fixtures, and a serde visitor for the member order of a JSON object.

use core::fmt;

use prets_destinations::{KeyId, Keyring, SealingKey, TenantId, Timestamp};
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

// Runs a future to completion on this thread, parking while it waits.
#[allow(unused_imports)]
pub(crate) use pollster::block_on;

#[allow(dead_code)]
pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

#[allow(dead_code)]
pub(crate) fn keyring(id: u32, rng: &mut ChaCha20Rng) -> Keyring {
    Keyring::new(SealingKey::from_rng(KeyId::new(id), rng), []).unwrap()
}

#[allow(dead_code)]
pub(crate) fn tenant(s: &str) -> TenantId {
    s.parse().unwrap()
}

/// A fixed time with a non-zero milliseconds part, so truncation shows.
#[allow(dead_code)]
pub(crate) fn now() -> Timestamp {
    Timestamp::from_unix_millis(1_764_000_000_123).unwrap()
}

/// The member names of a JSON object, in the order they were written.
pub(crate) struct Keys(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// `config` with failing cases stored in, and replayed from,
/// `<module>.proptest-regressions` beside the test module. Proptest's default
/// walks up to the nearest directory holding a `main.rs` (here `tests/it/`)
/// and would use `tests/proptest-regressions/<module>.txt` instead.
pub(crate) fn regressions_beside_module(config: ProptestConfig) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..config
    }
}

/// A sealing key for the operations that may mint a secret (an update
/// turning signing on), beside [`rng`].
#[allow(dead_code)]
pub(crate) fn sealer() -> SealingKey {
    SealingKey::new(KeyId::new(1), &[0x5e; 32])
}
