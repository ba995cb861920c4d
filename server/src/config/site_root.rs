//! Where the web assets are when no one said: the release archive (`make dist`) keeps them in
//! `site/` beside the binary, so the console runs from any folder without --site-root.

use super::ServeArgs;
use std::path::{Path, PathBuf};

/// The default of `--site-root` (a source checkout's build output, relative to the folder the
/// console is started in).
const DEFAULT_SITE_ROOT: &str = "target/site";

impl ServeArgs {
    /// `--site-root` as given; left at its default and absent, `site/` beside the binary when
    /// that exists.
    pub fn site_root_in_force(&self) -> PathBuf {
        let beside_binary = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("site")));
        site_root_of(&self.site_root, beside_binary.as_deref())
    }
}

fn site_root_of(given: &Path, beside_binary: Option<&Path>) -> PathBuf {
    if given != Path::new(DEFAULT_SITE_ROOT) || given.is_dir() {
        return given.to_path_buf();
    }
    match beside_binary {
        Some(site) if site.is_dir() => site.to_path_buf(),
        _ => given.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_root_wins_and_the_default_falls_back_beside_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir(&site).unwrap();
        let given = dir.path().join("elsewhere");
        // Given explicitly: kept, even when missing (the console says so).
        assert_eq!(site_root_of(&given, Some(&site)), given);
        // The default, absent here: the archive's `site/`.
        let default = Path::new(DEFAULT_SITE_ROOT);
        if !default.is_dir() {
            assert_eq!(site_root_of(default, Some(&site)), site);
            assert_eq!(site_root_of(default, Some(&given)), default);
            assert_eq!(site_root_of(default, None), default);
        }
    }
}
