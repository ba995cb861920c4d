//! Keeps the console's data folder private to the server's own user: the database holds the
//! token ciphertext and every preview's user list, the job folders every listing snapshot.

use anyhow::Context;
use std::path::Path;

/// What the server process creates from now on is readable by its own user only (umask 077),
/// and the data folder exists, created 0700. Returns a warning when an existing folder is open
/// to other users: it is reported, not changed, because the operator may have reasons (a
/// shared group for backups) that Offboard cannot see.
pub fn prepare(dir: &Path) -> anyhow::Result<Option<String>> {
    make_new_files_private();
    create_private_dir(dir)
        .with_context(|| format!("could not create the data folder {}", dir.display()))?;
    Ok(too_open(dir))
}

#[cfg(unix)]
fn make_new_files_private() {
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

#[cfg(not(unix))]
fn make_new_files_private() {}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// A warning when other users may read or enter `dir`.
#[cfg(unix)]
pub fn too_open(dir: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "the data folder {} can be read by other users (permissions {mode:o}): it holds the \
             encrypted SCIM tokens and the user lists of every preview and run. Run \
             `chmod -R go-rwx {}` unless that access is intended.",
            dir.display(),
            dir.display()
        )
    })
}

#[cfg(not(unix))]
pub fn too_open(_dir: &Path) -> Option<String> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_folder_is_private_and_an_open_one_is_reported() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a").join("data");
        assert_eq!(prepare(&dir).unwrap(), None);
        assert_eq!(mode_of(&dir), 0o700);
        // The umask now applies to files the process creates.
        let file = dir.join("offboard.db");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(mode_of(&file), 0o600);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let warning = prepare(&dir).unwrap().expect("a warning");
        assert!(
            warning.contains("755") && warning.contains("chmod"),
            "{warning}"
        );
        assert_eq!(mode_of(&dir), 0o755, "reported, not changed");
    }
}
