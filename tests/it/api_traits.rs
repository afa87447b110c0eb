//! Trait-level guarantees of the public API, checked at compile time: every
//! public type can cross threads, errors are ordinary `std` errors, and the
//! secret types do not offer the traits that would copy or print a secret.

use prets_destinations::delivery::{FilterTypes, InvalidFilterTypes};
use prets_destinations::description::{Description, InvalidDescription};
use prets_destinations::error::Field;
use prets_destinations::headers::{CustomHeaders, InvalidHeaders};
use prets_destinations::id::InvalidDestinationId;
use prets_destinations::metadata::{InvalidMetadata, Metadata};
use prets_destinations::name::InvalidName;
use prets_destinations::ops::{CreatePlan, IdSource};
use prets_destinations::secret::{
    InvalidDigest, InvalidSealedSigningSecret, InvalidSecret, InvalidSigning, InvalidSigningSecret,
    SealedSigningSecret, Signing, SigningSecret,
};
use prets_destinations::time::InvalidTimestamp;
use prets_destinations::url::InvalidUrl;
use prets_destinations::wire::{CreatedDestination, NewDestination};
use prets_destinations::{
    BearerSecret, CreateDestinationRequest, DestinationId, DestinationName, DestinationRecord,
    DestinationUrl, FieldError, SecretDigest, Timestamp, ValidationErrors,
};

/// Whether `$ty` implements `$tr`, decided at compile time by autoref
/// specialisation: the method on `Probe<T>` (needing the bound) is found
/// before the fallback on `&Probe<T>`, which applies to every type. Works for
/// concrete types only, which is all this file needs.
macro_rules! implements {
    ($ty:ty: $tr:path) => {{
        struct Probe<T: ?Sized>(::core::marker::PhantomData<T>);
        #[allow(dead_code, reason = "only one of the two traits is used per probe")]
        trait Fallback {
            fn implemented(&self) -> bool {
                false
            }
        }
        impl<T: ?Sized> Fallback for &Probe<T> {}
        #[allow(dead_code, reason = "only one of the two traits is used per probe")]
        trait Specific {
            fn implemented(&self) -> bool {
                true
            }
        }
        impl<T: ?Sized + $tr> Specific for Probe<T> {}
        (&Probe::<$ty>(::core::marker::PhantomData)).implemented()
    }};
}

fn send_sync<T: Send + Sync>() {}

fn std_error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<DestinationName>();
    send_sync::<DestinationUrl>();
    send_sync::<DestinationId>();
    send_sync::<BearerSecret>();
    send_sync::<SecretDigest>();
    send_sync::<Timestamp>();
    send_sync::<Field>();
    send_sync::<FieldError>();
    send_sync::<ValidationErrors>();
    send_sync::<CreateDestinationRequest>();
    send_sync::<NewDestination>();
    send_sync::<CreatedDestination>();
    send_sync::<DestinationRecord>();
    send_sync::<CreatePlan>();
    send_sync::<IdSource>();
    send_sync::<SigningSecret>();
    send_sync::<SealedSigningSecret>();
    send_sync::<Signing>();
    send_sync::<FilterTypes>();
    send_sync::<CustomHeaders>();
    send_sync::<Description>();
    send_sync::<Metadata>();
}

#[test]
fn errors_are_std_errors_that_cross_threads() {
    std_error::<InvalidName>();
    std_error::<InvalidUrl>();
    std_error::<InvalidDestinationId>();
    std_error::<InvalidSecret>();
    std_error::<InvalidDigest>();
    std_error::<InvalidTimestamp>();
    std_error::<FieldError>();
    std_error::<ValidationErrors>();
    std_error::<InvalidSigningSecret>();
    std_error::<InvalidSealedSigningSecret>();
    std_error::<InvalidSigning>();
    std_error::<InvalidFilterTypes>();
    std_error::<InvalidHeaders>();
    std_error::<InvalidDescription>();
    std_error::<InvalidMetadata>();
    #[cfg(feature = "getrandom")]
    std_error::<prets_destinations::secret::RandomnessError>();
}

#[test]
fn the_probe_detects_implementations_it_is_asked_about() {
    // Controls: without these the negative checks below could pass vacuously.
    assert!(implements!(String: Clone));
    assert!(implements!(DestinationName: Clone));
    assert!(implements!(DestinationName: core::fmt::Display));
    assert!(implements!(DestinationName: serde::Serialize));
    assert!(implements!(DestinationUrl: AsRef<str>));
    assert!(implements!(DestinationRecord: Clone));
    assert!(implements!(CreatedDestination: serde::Serialize));
    assert!(implements!(String: core::ops::Deref));
    assert!(!implements!(std::sync::MutexGuard<'static, u8>: Clone));
}

#[test]
fn a_bearer_secret_cannot_be_copied_printed_or_serialized_by_accident() {
    assert!(!implements!(BearerSecret: Clone));
    assert!(!implements!(BearerSecret: Copy));
    assert!(!implements!(BearerSecret: core::fmt::Display));
    assert!(!implements!(BearerSecret: serde::Serialize));
    // The cleartext is reached only through `expose_secret`.
    assert!(!implements!(BearerSecret: AsRef<str>));
    assert!(!implements!(BearerSecret: AsRef<[u8]>));
    assert!(!implements!(BearerSecret: core::ops::Deref));
    assert!(!implements!(BearerSecret: core::borrow::Borrow<str>));
    assert!(!implements!(BearerSecret: Into<String>));
    // Debug exists, and is redacted (see tests/it/secret.rs).
    assert!(implements!(BearerSecret: core::fmt::Debug));
}

#[test]
fn a_signing_secret_cannot_be_copied_printed_or_serialized_by_accident() {
    assert!(!implements!(SigningSecret: Clone));
    assert!(!implements!(SigningSecret: Copy));
    assert!(!implements!(SigningSecret: core::fmt::Display));
    assert!(!implements!(SigningSecret: serde::Serialize));
    assert!(!implements!(SigningSecret: AsRef<str>));
    assert!(!implements!(SigningSecret: AsRef<[u8]>));
    assert!(!implements!(SigningSecret: core::ops::Deref));
    assert!(!implements!(SigningSecret: Into<String>));
    assert!(implements!(SigningSecret: core::fmt::Debug));
    // Custom header values may be credentials: reached through
    // `expose_pairs`, never printed.
    assert!(!implements!(CustomHeaders: core::fmt::Display));
    assert!(!implements!(CustomHeaders: core::ops::Deref));
    assert!(implements!(CustomHeaders: serde::Serialize));
}

#[test]
fn values_holding_the_secret_cannot_be_cloned() {
    // The one-time response and the plan that carries it can be sent once.
    assert!(!implements!(CreatedDestination: Clone));
    assert!(!implements!(CreatePlan: Clone));
    assert!(!implements!(CreatePlan: serde::Serialize));
}

#[test]
fn field_names_are_the_spec_json_names() {
    for (field, name) in [
        (Field::Name, "name"),
        (Field::Url, "url"),
        (Field::DestinationId, "destinationId"),
        (Field::BearerSecret, "bearerSecret"),
        (Field::Signing, "signing"),
        (Field::SigningSecret, "signingSecret"),
        (Field::FilterTypes, "filterTypes"),
        (Field::Headers, "headers"),
        (Field::Description, "description"),
        (Field::Metadata, "metadata"),
    ] {
        assert_eq!(field.as_str(), name);
        assert_eq!(field.to_string(), name);
        assert_eq!(
            serde_json::to_string(&field).unwrap(),
            format!("\"{name}\"")
        );
    }
}
