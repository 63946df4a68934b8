//! The JSON conventions of the theory half's output.
//!
//! JSON has no infinity and no NaN, and serde_json writes both as `null`, which a reader
//! cannot tell from a missing value. Here an infinite number is written as the string
//! `"inf"` or `"-inf"` (an infinite bound, e.g. Proposition 3's when `Var[r_RM] = 0`),
//! and a NaN is an error (a figure that is not a number is never written). A horizon in
//! text ("> horizon 1e5") is written in [`short`] form.

use serde::ser::{Error, Serialize, Serializer};

/// Serialises `v`: a finite number as itself, `±infinity` as `"inf"` / `"-inf"`; a NaN
/// is an error. For `#[serde(serialize_with = "crate::json::f64")]`.
pub fn f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    Finite(*v).serialize(s)
}

/// [`f64`] for every element of a vector.
pub fn f64s<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| Finite(*x)))
}

/// [`f64`] for every element of a vector of rows.
pub fn f64_rows<S: Serializer>(v: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|row| Row(row)))
}

/// A number serialised by [`f64`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finite(pub f64);

impl Serialize for Finite {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            Err(S::Error::custom(
                "is NaN (not a number): no figure is written for it",
            ))
        } else if v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

/// A row of numbers serialised by [`f64`].
struct Row<'a>(&'a [f64]);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        f64s(self.0, s)
    }
}

/// `v` in the shorter of its two shortest round-trip forms, plain (`{}`) and scientific
/// (`{:e}`), plain on a tie: 400, 0.01, 1500, 123456.7, but 1e5, 2.5e6, 1e-5.
pub fn short(v: f64) -> String {
    let (plain, sci) = (format!("{v}"), format!("{v:e}"));
    if sci.len() < plain.len() {
        sci
    } else {
        plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_picks_the_shorter_form_and_round_trips() {
        for (v, s) in [
            (400.0, "400"),
            (0.01, "0.01"),
            (1500.0, "1500"),
            (123456.7, "123456.7"),
            (1e5, "1e5"),
            (2.5e6, "2.5e6"),
            (1e-5, "1e-5"),
            (-1e300, "-1e300"),
            (0.0, "0"),
        ] {
            assert_eq!(short(v), s);
            assert_eq!(s.parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn non_finite_numbers_are_strings_and_nan_is_an_error() {
        let text = |v: f64| serde_json::to_string(&Finite(v));
        assert_eq!(text(1.5).unwrap(), "1.5");
        assert_eq!(text(f64::INFINITY).unwrap(), "\"inf\"");
        assert_eq!(text(f64::NEG_INFINITY).unwrap(), "\"-inf\"");
        let err = text(f64::NAN).unwrap_err().to_string();
        assert!(err.contains("NaN"), "{err}");
        let rows = vec![vec![1.0, f64::INFINITY], vec![-0.5]];
        let mut out = Vec::new();
        f64_rows(&rows, &mut serde_json::Serializer::new(&mut out)).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[[1.0,\"inf\"],[-0.5]]");
    }
}
