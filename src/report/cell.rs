//! One table cell and how it is written as text.

use serde::{Deserialize, Serialize};

/// Significant digits used for floats unless a table asks for another precision.
pub const DEFAULT_PRECISION: usize = 4;

/// Magnitudes at or above `10^SCIENTIFIC_FROM_EXPONENT` are written in scientific notation.
const SCIENTIFIC_FROM_EXPONENT: i32 = 6;

/// Magnitudes below `10^SCIENTIFIC_BELOW_EXPONENT` are written in scientific notation.
const SCIENTIFIC_BELOW_EXPONENT: i32 = -4;

/// The value of one table cell.
///
/// Serialises untagged, so JSON holds plain values: a string, an integer, a
/// number, or `null` for [`Cell::Missing`]. A non-finite [`Cell::Float`]
/// also becomes `null` in JSON (JSON has no NaN or infinity); markdown and
/// CSV write it as `NaN`, `inf` or `-inf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    /// Free text.
    Text(String),
    /// An integer, written exactly.
    Int(i64),
    /// A real number, written with the table's precision.
    Float(f64),
    /// No value (for example a `t_gamma` that was never reached).
    Missing,
}

impl Cell {
    /// Whether the cell holds a number ([`Cell::Int`] or [`Cell::Float`]).
    pub fn is_numeric(&self) -> bool {
        matches!(self, Self::Int(_) | Self::Float(_))
    }

    /// The cell as text: floats with `significant_digits` (see
    /// [`format_float`]), [`Cell::Missing`] as the empty string.
    pub fn to_text(&self, significant_digits: usize) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Int(i) => i.to_string(),
            Self::Float(x) => format_float(*x, significant_digits),
            Self::Missing => String::new(),
        }
    }
}

/// Writes `x` rounded to `significant_digits` (clamped to 1..=17).
///
/// Magnitudes in `[1e-4, 1e6)` use fixed notation (`0.1235`, `12.35`,
/// `123457`: integer digits are never dropped); others use scientific
/// notation (`1.235e-5`, `1.235e6`). Zero is `0`; non-finite values are
/// `NaN`, `inf` and `-inf`.
pub fn format_float(x: f64, significant_digits: usize) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    let digits = significant_digits.clamp(1, 17);
    let scientific = format!("{:.*e}", digits - 1, x);
    // The exponent after rounding, so 9.99996 counts as 1.000e1.
    let exponent: i32 = scientific
        .rsplit_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if !(SCIENTIFIC_BELOW_EXPONENT..SCIENTIFIC_FROM_EXPONENT).contains(&exponent) {
        return scientific;
    }
    let decimals = (digits as i32 - 1 - exponent).max(0) as usize;
    format!("{x:.decimals$}")
}

impl From<f64> for Cell {
    fn from(x: f64) -> Self {
        Self::Float(x)
    }
}

impl From<i64> for Cell {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<i32> for Cell {
    fn from(i: i32) -> Self {
        Self::Int(i.into())
    }
}

impl From<u32> for Cell {
    fn from(i: u32) -> Self {
        Self::Int(i.into())
    }
}

impl From<usize> for Cell {
    /// A count; in the (theoretical) case it exceeds `i64::MAX` it becomes a float.
    fn from(n: usize) -> Self {
        i64::try_from(n).map_or(Self::Float(n as f64), Self::Int)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    /// `None` becomes [`Cell::Missing`].
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Missing, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_use_significant_digits() {
        let cases = [
            (0.123456, "0.1235"),
            (12.3456, "12.35"),
            (-1.0, "-1.000"),
            (9.99996, "10.00"),
            (0.00012346, "0.0001235"),
            (0.000012346, "1.235e-5"),
            (123456.7, "123457"),
            (1234567.0, "1.235e6"),
            (999999.6, "1.000e6"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, expected) in cases {
            assert_eq!(format_float(x, 4), expected, "{x}");
        }
        assert_eq!(format_float(2.0f64.sqrt(), 2), "1.4");
        assert_eq!(format_float(2.0f64.sqrt(), 0), "1");
    }

    #[test]
    fn conversions() {
        assert_eq!(Cell::from(1.5), Cell::Float(1.5));
        assert_eq!(Cell::from(3usize), Cell::Int(3));
        assert_eq!(Cell::from("a"), Cell::Text("a".into()));
        assert_eq!(Cell::from(None::<f64>), Cell::Missing);
        assert_eq!(Cell::from(Some(2i32)), Cell::Int(2));
    }

    #[test]
    fn serde_is_untagged() {
        let cells = vec![
            Cell::Text("x".into()),
            Cell::Int(-3),
            Cell::Float(0.5),
            Cell::Missing,
        ];
        let json = serde_json::to_string(&cells).unwrap();
        assert_eq!(json, r#"["x",-3,0.5,null]"#);
        let back: Vec<Cell> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cells);
    }
}
