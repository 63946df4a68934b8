//! Deserialisers of an instance's fields whose errors say what the field takes and
//! what was found (`expected a number, found a string "0.3"`), where serde's own say
//! `invalid type: string "0.3", expected f64`. The field's name is added by the caller
//! (a path-tracking deserialiser, see [`super::parse`]).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// `#[serde(deserialize_with = "de::strict")]`: the field's type says what it accepts.
pub(super) fn strict<'de, D: Deserializer<'de>, T: Accept>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(Strict(PhantomData))
}

/// A JSON number as the parser read it.
#[derive(Clone, Copy)]
pub(super) enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Unsigned(v) => write!(f, "{v}"),
            Number::Signed(v) => write!(f, "{v}"),
            Number::Float(v) => write!(f, "{v:?}"),
        }
    }
}

/// "expected {expected}, found {found}".
pub(super) fn mismatch<E: de::Error>(expected: &str, found: impl fmt::Display) -> E {
    E::custom(format_args!("expected {expected}, found {found}"))
}

/// What a field accepts; every other JSON value is rejected naming what was found.
pub(super) trait Accept: Sized {
    /// What the field takes, for "expected ...".
    const EXPECTED: &'static str;

    /// From a number.
    fn number<E: de::Error>(n: Number) -> Result<Self, E> {
        Err(mismatch(Self::EXPECTED, n))
    }

    /// From an array.
    fn array<'de, A: SeqAccess<'de>>(_seq: A) -> Result<Self, A::Error> {
        Err(mismatch(Self::EXPECTED, "an array"))
    }

    /// From a string.
    fn text<E: de::Error>(v: &str) -> Result<Self, E> {
        Err(mismatch(Self::EXPECTED, format_args!("a string {v:?}")))
    }
}

impl Accept for String {
    const EXPECTED: &'static str = "a string";

    fn text<E: de::Error>(v: &str) -> Result<Self, E> {
        Ok(v.to_string())
    }
}

impl Accept for f64 {
    const EXPECTED: &'static str = "a number";

    fn number<E: de::Error>(n: Number) -> Result<Self, E> {
        Ok(match n {
            Number::Unsigned(v) => v as f64,
            Number::Signed(v) => v as f64,
            Number::Float(v) => v,
        })
    }
}

impl Accept for usize {
    const EXPECTED: &'static str = "a whole number";

    fn number<E: de::Error>(n: Number) -> Result<Self, E> {
        match n {
            Number::Unsigned(v) => usize::try_from(v).map_err(|_| mismatch(Self::EXPECTED, n)),
            _ => Err(mismatch(Self::EXPECTED, n)),
        }
    }
}

impl Accept for Vec<f64> {
    const EXPECTED: &'static str = "an array of numbers";

    fn array<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(x) = seq.next_element_seed(Seed::<f64>(PhantomData))? {
            v.push(x);
        }
        Ok(v)
    }
}

impl Accept for Option<Vec<f64>> {
    const EXPECTED: &'static str = <Vec<f64>>::EXPECTED;

    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        <Vec<f64>>::array(seq).map(Some)
    }
}

/// [`strict`] as a seed.
pub(super) struct Seed<T>(pub(super) PhantomData<T>);

impl<'de, T: Accept> DeserializeSeed<'de> for Seed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        strict(d)
    }
}

/// The visitor of [`strict`].
struct Strict<T>(PhantomData<T>);

impl<'de, T: Accept> Visitor<'de> for Strict<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::number(Number::Unsigned(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::number(Number::Signed(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        T::number(Number::Float(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::array(seq)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::text(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Err(mismatch(T::EXPECTED, v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Err(mismatch(T::EXPECTED, "null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Err(mismatch(T::EXPECTED, "null"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<T, A::Error> {
        Err(mismatch(T::EXPECTED, "an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: Accept>(json: &str) -> Result<T, String> {
        strict(&mut serde_json::Deserializer::from_str(json)).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_are_read_and_anything_else_is_named() {
        assert_eq!(read::<f64>("0.3"), Ok(0.3));
        assert_eq!(read::<f64>("-2"), Ok(-2.0));
        assert_eq!(read::<f64>("1e5"), Ok(1e5));
        assert_eq!(read::<f64>("18446744073709551615"), Ok(u64::MAX as f64));
        let err = read::<f64>("\"0.3\"").unwrap_err();
        assert!(
            err.starts_with("expected a number, found a string \"0.3\""),
            "{err}"
        );
        for (json, found) in [
            ("true", "found true"),
            ("null", "found null"),
            ("[1]", "found an array"),
            ("{}", "found an object"),
        ] {
            let err = read::<f64>(json).unwrap_err();
            assert!(err.contains(found), "{json}: {err}");
        }
    }

    #[test]
    fn names_are_strings() {
        assert_eq!(read::<String>("\"run 1\""), Ok("run 1".to_string()));
        let err = read::<String>("3").unwrap_err();
        assert!(err.starts_with("expected a string, found 3"), "{err}");
    }

    #[test]
    fn counts_are_whole_numbers() {
        assert_eq!(read::<usize>("3"), Ok(3));
        for json in ["2.5", "-1", "2.0"] {
            let err = read::<usize>(json).unwrap_err();
            assert!(
                err.starts_with(&format!("expected a whole number, found {json}")),
                "{json}: {err}"
            );
        }
    }

    #[test]
    fn arrays_hold_numbers_only() {
        assert_eq!(
            read::<Vec<f64>>("[1, -0.5, 2e-3]"),
            Ok(vec![1.0, -0.5, 2e-3])
        );
        assert_eq!(read::<Option<Vec<f64>>>("[]"), Ok(Some(vec![])));
        let err = read::<Vec<f64>>("[1, \"x\"]").unwrap_err();
        assert!(
            err.starts_with("expected a number, found a string \"x\""),
            "{err}"
        );
        let err = read::<Vec<f64>>("0.5").unwrap_err();
        assert!(
            err.starts_with("expected an array of numbers, found 0.5"),
            "{err}"
        );
        let err = read::<Option<Vec<f64>>>("null").unwrap_err();
        assert!(
            err.starts_with("expected an array of numbers, found null"),
            "{err}"
        );
    }
}
