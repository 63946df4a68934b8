//! Bounded, seeded mutation fuzzing for the parsers the toolkit owns (instance JSON,
//! run-config TOML, model and tokenizer configs, safetensors headers and indexes, data
//! rows). The tests of each crate run a campaign: valid inputs are mutated (bit flips,
//! structural bytes and extreme numbers inserted, ranges deleted, duplicated, spliced
//! from another input, truncated) and fed to a parser, which must return (`Ok` or a
//! named error) and never panic.
//!
//! Deterministic: the same seed gives the same inputs, so a failure names the
//! iteration and the input that reproduces it.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Fragments that often break hand-written parsers: structure, escapes, control bytes,
/// invalid UTF-8.
const STRUCTURE: &[&[u8]] = &[
    b"\"", b"{", b"}", b"[", b"]", b"[[", b"]]", b",", b":", b"=", b"\n", b"\\", b"\\u0000",
    b"\\ud800", b"null", b"true", b"-", b"\x00", b"\xff", b"\xc3", b"{}", b"[]", b"\"\"",
];

/// Numbers at the edges: signed zero, negative, overflowing, underflowing, non-finite,
/// past u64 / u32 / exact-f64 integers.
const NUMBERS: &[&[u8]] = &[
    b"0",
    b"-0",
    b"-1",
    b"1e999",
    b"-1e999",
    b"1e-400",
    b"NaN",
    b"inf",
    b"nan",
    b"18446744073709551616",
    b"4294967296",
    b"9007199254740993",
];

/// A seeded generator of mutated inputs from a corpus of valid ones.
#[derive(Debug, Clone)]
pub struct Mutator {
    state: u64,
    corpus: Vec<Vec<u8>>,
}

impl Mutator {
    /// A mutator over `corpus` (at least one input) seeded with `seed`.
    ///
    /// # Panics
    /// When `corpus` is empty (a test's mistake, not input).
    pub fn new(seed: u64, corpus: &[&[u8]]) -> Self {
        assert!(!corpus.is_empty(), "a fuzz corpus needs at least one input");
        Self {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
            corpus: corpus.iter().map(|c| c.to_vec()).collect(),
        }
    }

    /// The next pseudo-random number (splitmix64).
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A range of `v` of length 1..=16 (empty when `v` is).
    fn range(&mut self, len: usize) -> std::ops::Range<usize> {
        if len == 0 {
            return 0..0;
        }
        let start = self.below(len);
        let n = 1 + self.below(16.min(len - start));
        start..start + n
    }

    /// A structural fragment or an edge number.
    fn fragment(&mut self) -> &'static [u8] {
        if self.below(2) == 0 {
            STRUCTURE[self.below(STRUCTURE.len())]
        } else {
            NUMBERS[self.below(NUMBERS.len())]
        }
    }

    /// One mutation of `v` in place.
    fn mutate(&mut self, v: &mut Vec<u8>) {
        let at = |m: &mut Self, len: usize| if len == 0 { 0 } else { m.below(len + 1) };
        match self.below(8) {
            0 if !v.is_empty() => {
                let i = self.below(v.len());
                v[i] ^= 1 << self.below(8);
            }
            1 if !v.is_empty() => {
                let i = self.below(v.len());
                v[i] = self.fragment()[0];
            }
            2 => {
                let i = at(self, v.len());
                let frag = self.fragment();
                v.splice(i..i, frag.iter().copied());
            }
            3 => {
                let r = self.range(v.len());
                v.drain(r);
            }
            4 => {
                let r = self.range(v.len());
                let copy: Vec<u8> = v[r.clone()].to_vec();
                let i = at(self, v.len());
                v.splice(i..i, copy);
            }
            5 if !v.is_empty() => {
                let i = self.below(v.len());
                v.truncate(i);
            }
            6 => {
                let k = self.below(self.corpus.len());
                let other = self.corpus[k].clone();
                let from = self.range(other.len());
                let to = self.range(v.len());
                v.splice(to, other[from].iter().copied());
            }
            _ => {
                // Replace a run of digits (a number's body) with an extreme number.
                let digits: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_ascii_digit()).collect();
                if digits.is_empty() {
                    return;
                }
                let start = digits[self.below(digits.len())];
                let end = (start..v.len())
                    .find(|&i| !v[i].is_ascii_digit())
                    .unwrap_or(v.len());
                let frag = NUMBERS[self.below(NUMBERS.len())];
                v.splice(start..end, frag.iter().copied());
            }
        }
    }

    /// The next input: a corpus entry with 1 to 4 mutations.
    pub fn next_input(&mut self) -> Vec<u8> {
        let k = self.below(self.corpus.len());
        let mut v = self.corpus[k].clone();
        for _ in 0..=self.below(4) {
            self.mutate(&mut v);
        }
        v
    }
}

/// A panic found by a campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct FuzzFailure {
    /// The iteration (0-based) that panicked.
    pub iteration: usize,
    /// The input, lossily as text.
    pub input: String,
    /// The panic's message.
    pub message: String,
}

impl std::fmt::Display for FuzzFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "panic at iteration {}: {}\ninput: {:?}",
            self.iteration, self.message, self.input
        )
    }
}

/// Statistics of a campaign that found no panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FuzzStats {
    /// Inputs tried.
    pub inputs: usize,
    /// Inputs the target accepted (`true` returned).
    pub accepted: usize,
}

/// Feeds `iterations` mutated inputs from `corpus` (seeded with `seed`) to `target`,
/// which returns whether it accepted the input; stops at the first panic. The corpus's
/// own inputs are tried first, unmutated.
pub fn campaign<F>(
    seed: u64,
    corpus: &[&[u8]],
    iterations: usize,
    mut target: F,
) -> Result<FuzzStats, FuzzFailure>
where
    F: FnMut(&[u8]) -> bool,
{
    let mut m = Mutator::new(seed, corpus);
    let mut stats = FuzzStats::default();
    let inputs = corpus
        .iter()
        .map(|c| c.to_vec())
        .chain(std::iter::repeat_with(move || m.next_input()))
        .take(corpus.len() + iterations);
    for (iteration, input) in inputs.enumerate() {
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Ok(accepted) => {
                stats.inputs += 1;
                stats.accepted += usize::from(accepted);
            }
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic)".into());
                return Err(FuzzFailure {
                    iteration,
                    input: String::from_utf8_lossy(&input).into_owned(),
                    message,
                });
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_is_deterministic_and_mutates() {
        let corpus: &[&[u8]] = &[br#"{"a": [1, 2.5, "x"], "b": null}"#];
        let mut a = Mutator::new(7, corpus);
        let mut b = Mutator::new(7, corpus);
        let (xs, ys): (Vec<_>, Vec<_>) = (0..200).map(|_| (a.next_input(), b.next_input())).unzip();
        assert_eq!(xs, ys);
        let changed = xs.iter().filter(|x| x.as_slice() != corpus[0]).count();
        assert!(changed > 190, "only {changed} of 200 inputs were mutated");
        let distinct: std::collections::BTreeSet<_> = xs.iter().collect();
        assert!(distinct.len() > 150, "{} distinct inputs", distinct.len());
    }

    #[test]
    fn a_campaign_reports_the_panicking_input() {
        // A "parser" that panics on any input containing a NUL byte: the campaign
        // must find one and name it.
        let corpus: &[&[u8]] = &[b"[1, 2, 3]"];
        let r = campaign(1, corpus, 5000, |input| {
            assert!(!input.contains(&0), "NUL byte");
            true
        });
        let f = r.unwrap_err();
        assert!(f.message.contains("NUL byte"), "{f}");
        assert!(f.input.contains('\0'));
        // A target that never panics: every input counted.
        let s = campaign(1, corpus, 100, |input| input.len() > 3).unwrap();
        assert_eq!(s.inputs, 101);
        assert!(s.accepted > 0 && s.accepted <= 101);
    }
}
