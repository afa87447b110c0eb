//! The JSON member reader behind the request types: a member kept as the
//! client sent it, and objects read member by member without echoing an
//! unknown name.

use core::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::{Field, FieldError};
use crate::record::MAX_VERSION;

/// One member of the request body, kept as the client sent it until
/// validation so that every bad field can be reported at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Member {
    #[default]
    Missing,
    Null,
    String(String),
    /// A non-negative integer (kept for the members that are numbers).
    Number(u64),
    /// An integer outside `0..=u64::MAX`: negative, or at least 2^64
    /// (read as a float, so only its magnitude is known).
    BigInteger,
    /// `true` or `false`.
    Bool(bool),
    /// An array, its elements in order.
    Array(Vec<Member>),
    /// An object, its members in the order sent (repeated names kept, so
    /// that validation can refuse them).
    Object(Vec<(String, Member)>),
    /// A fractional number.
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Member, E> {
                Ok(Member::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Member, E> {
                Ok(Member::String(v))
            }
            fn visit_unit<E>(self) -> Result<Member, E> {
                Ok(Member::Null)
            }
            fn visit_none<E>(self) -> Result<Member, E> {
                Ok(Member::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Member, D::Error> {
                Member::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Member, E> {
                Ok(Member::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Member, E> {
                Ok(u64::try_from(v).map_or(Member::BigInteger, Member::Number))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Member, E> {
                Ok(Member::Number(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Member, E> {
                // JSON integers beyond 64 bits arrive as floats; every float
                // this large is integral.
                Ok(if v.abs() >= 9_223_372_036_854_775_808.0 {
                    Member::BigInteger
                } else {
                    Member::Other
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
                // The body's size bounds how many; past the largest list a
                // member takes, the rest is skipped (it is refused anyway).
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Member>()? {
                    if items.len() <= MAX_KEPT_ITEMS {
                        items.push(item);
                    }
                }
                Ok(Member::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.len() <= MAX_KEPT_ITEMS {
                        entries.push((key, map.next_value::<Member>()?));
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Member::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// Most elements of an array, or members of an object, kept in a
/// [`Member`]: one more than the longest list any member accepts
/// (`filterTypes`, 100), so that "too many" is still seen.
const MAX_KEPT_ITEMS: usize = 100;

/// The string value of a required member, or `None` with an error recorded.
pub(crate) fn required(m: Member, field: Field, errors: &mut Vec<FieldError>) -> Option<String> {
    let (code, message) = match (m, field) {
        (Member::String(s), _) => return Some(s),
        (Member::Missing, Field::Name) => ("required", "name is required"),
        (Member::Missing, Field::Url) => ("required", "url is required"),
        (Member::Missing, _) => ("required", "destinationId is required"),
        (_, Field::Name) => ("type", "name must be a string"),
        (_, Field::Url) => ("type", "url must be a string"),
        (_, _) => ("type", "destinationId must be a string"),
    };
    errors.push(FieldError::new(field, code, message));
    None
}

pub(crate) fn keep<T, E: Into<FieldError>>(
    r: Result<T, E>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    r.map_err(|e| errors.push(e.into())).ok()
}

/// Finds a member name among `names`, by position; an unknown name is an
/// error that does not echo it.
pub(crate) struct KeySeed {
    pub(crate) names: &'static [&'static str],
    pub(crate) expected: &'static str,
}

impl<'de> de::DeserializeSeed<'de> for KeySeed {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        struct V(KeySeed);
        impl Visitor<'_> for V {
            type Value = usize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0.expected)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
                self.0
                    .names
                    .iter()
                    .position(|n| *n == v)
                    // The member name is the client's text: never echo it.
                    .ok_or_else(|| {
                        E::custom(format_args!("unknown field, expected {}", self.0.expected))
                    })
            }
        }
        d.deserialize_identifier(V(self))
    }
}

/// Reads an object whose members are among `names` (each at most once) into
/// `N` members, in the order of `names`.
pub(crate) fn read_object<'de, A: MapAccess<'de>, const N: usize>(
    mut map: A,
    names: &'static [&'static str; N],
    expected: &'static str,
) -> Result<[Member; N], A::Error> {
    let mut members: [Member; N] = core::array::from_fn(|_| Member::Missing);
    while let Some(i) = map.next_key_seed(KeySeed { names, expected })? {
        let (Some(slot), Some(name)) = (members.get_mut(i), names.get(i)) else {
            return Err(de::Error::custom(expected));
        };
        if *slot != Member::Missing {
            return Err(de::Error::duplicate_field(name));
        }
        *slot = map.next_value()?;
    }
    Ok(members)
}

/// Deserializes a request type from an object with the members `names`.
macro_rules! object_deserialize {
    ($ty:ident, $names:expr, $expected:literal, |$m:ident| $build:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expected)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$ty, A::Error> {
                        let $m = read_object(map, $names, $expected)?;
                        Ok($build)
                    }
                }
                d.deserialize_struct(stringify!($ty), $names, V)
            }
        }
    };
}

pub(crate) use object_deserialize;

/// An optional string member: absent is `Ok(None)`; `null` or another type
/// records a `type` error.
pub(crate) fn optional_string(
    m: Member,
    field: Field,
    message: &'static str,
    errors: &mut Vec<FieldError>,
) -> Result<Option<String>, ()> {
    match m {
        Member::Missing => Ok(None),
        Member::String(s) => Ok(Some(s)),
        _ => {
            errors.push(FieldError::new(field, "type", message));
            Err(())
        }
    }
}

/// An optional non-negative integer member: absent is `Ok(None)`; a string
/// of decimal digits is accepted when `digits_ok` (query strings carry only
/// text); anything else records a `type` error.
pub(crate) fn optional_integer(
    m: Member,
    field: Field,
    message: &'static str,
    digits_ok: bool,
    errors: &mut Vec<FieldError>,
) -> Result<Option<u64>, ()> {
    match m {
        Member::Missing => return Ok(None),
        Member::Number(n) => return Ok(Some(n)),
        Member::String(s)
            if digits_ok && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            // All digits: the only failure left is overflow, which is out of
            // every range here.
            return Ok(Some(s.parse().unwrap_or(u64::MAX)));
        }
        _ => {}
    }
    errors.push(FieldError::new(field, "type", message));
    Err(())
}

/// An optional `version` member: absent is `Ok(None)`; an integer outside
/// 1 to [`MAX_VERSION`] (negative, or beyond 64 bits, included) records
/// `out_of_range`; any other value records `type`.
pub(crate) fn optional_version(m: Member, errors: &mut Vec<FieldError>) -> Result<Option<u64>, ()> {
    let out_of_range = |errors: &mut Vec<FieldError>| {
        errors.push(FieldError::new(
            Field::Version,
            "out_of_range",
            "version must be between 1 and 9223372036854775807",
        ));
    };
    match m {
        Member::BigInteger => {
            out_of_range(errors);
            Err(())
        }
        m => match optional_integer(
            m,
            Field::Version,
            "version must be a positive integer",
            false,
            errors,
        )? {
            v @ (None | Some(1..=MAX_VERSION)) => Ok(v),
            Some(_) => {
                out_of_range(errors);
                Err(())
            }
        },
    }
}
