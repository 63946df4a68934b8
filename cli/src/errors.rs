//! How a failed command's error is printed: its chain of causes, each said once.

use std::fmt::Write;

/// The error and its causes joined by `": "`, as `{:#}` prints them, but with a cause
/// left out when the message before it already ends with its text (an error that
/// names its file and repeats its source, `x.json: No such file or directory`,
/// would otherwise print the source twice).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        let _ = write!(out, "{text}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose message repeats its source, as the crates' `Io` errors do.
    #[derive(Debug)]
    struct Named {
        path: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for Named {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for Named {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(Named {
            path: "m/config.json".into(),
            source: io,
        })
        .context("loading m");
        assert_eq!(error_chain(&e), "loading m: m/config.json: No such file");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&plain), "outer: inner");
    }
}
