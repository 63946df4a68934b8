//! Output directories named on the command line, made before any work: a command that
//! would compute for minutes and then fail to write its results fails at once instead.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Creates `dir` (given as `flag`, e.g. `--out`) and its parents; an existing file in
/// its place, or on its path, is an error that names the flag, the path and the fix.
pub fn create_out_dir(flag: &str, dir: &Path) -> Result<()> {
    if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
        bail!(
            "{flag} {}: {} is a file, not a directory; give {flag} a directory (it is \
             created if missing)",
            dir.display(),
            file.display()
        );
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{flag} {}: cannot create the directory", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_the_way_is_named_with_the_flag() {
        let tmp = std::env::temp_dir().join(format!("rmteach-out-dir-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let file = tmp.join("f");
        std::fs::write(&file, "x").unwrap();
        for dir in [file.clone(), file.join("sub")] {
            let e = create_out_dir("--out", &dir).unwrap_err().to_string();
            assert!(
                e.contains("--out") && e.contains("is a file, not a directory"),
                "{e}"
            );
        }
        let made = tmp.join("a/b");
        create_out_dir("--out", &made).unwrap();
        assert!(made.is_dir());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
