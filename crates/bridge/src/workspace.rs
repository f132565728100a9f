//! Paths inside the workspace, and the small diff text reported for a written file.

use crate::error::{Error, Result};
use std::path::{Component, Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path must be relative to the workspace")]
    Absolute,
    #[error("the path leads outside the workspace")]
    Escapes,
}

/// The lexical part of the check: `a/../b` is `b`, `../x` and `/etc/x` are refused.
pub fn normalize_relative(path: &str) -> Result<PathBuf, PathError> {
    let path = Path::new(path.trim());
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(PathError::Escapes);
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(PathError::Absolute),
        }
    }
    if parts.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(parts.iter().collect())
}

/// Where `path` is inside `workspace` (which must be canonical), creating its parent folders.
/// Besides the lexical check, the parent's real location must stay inside, so a symlink in the
/// workspace cannot point a write elsewhere; the file itself must not be a symlink.
pub fn resolve_for_write(workspace: &Path, path: &str) -> Result<PathBuf> {
    let relative = normalize_relative(path)?;
    let target = workspace.join(&relative);
    let parent = target.parent().ok_or(PathError::Escapes)?;
    std::fs::create_dir_all(parent)
        .map_err(Error::io(format!("cannot create {}", parent.display())))?;
    let real_parent = parent
        .canonicalize()
        .map_err(Error::io(format!("cannot resolve {}", parent.display())))?;
    if !real_parent.starts_with(workspace) {
        return Err(PathError::Escapes.into());
    }
    if target
        .symlink_metadata()
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
    {
        return Err(PathError::Escapes.into());
    }
    Ok(target)
}

/// `path` as the workspace sees it: relative when it lies inside, unchanged otherwise.
pub fn display_path(workspace: &Path, path: &str) -> String {
    match Path::new(path).strip_prefix(workspace) {
        Ok(relative) if !relative.as_os_str().is_empty() => relative.to_string_lossy().into_owned(),
        _ => path.to_string(),
    }
}

/// A unified-diff-like text for a whole-file replacement: every old line out, every new line in.
pub fn whole_file_diff(path: &str, old: Option<&str>, new: &str) -> String {
    let old_lines: Vec<&str> = old.map(|o| o.lines().collect()).unwrap_or_default();
    let new_lines: Vec<&str> = new.lines().collect();
    let from = if old.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".to_string()
    };
    let mut diff = format!(
        "--- {from}\n+++ b/{path}\n@@ -{},{} +1,{} @@\n",
        usize::from(!old_lines.is_empty()),
        old_lines.len(),
        new_lines.len()
    );
    for line in &old_lines {
        diff.push('-');
        diff.push_str(line);
        diff.push('\n');
    }
    for line in &new_lines {
        diff.push('+');
        diff.push_str(line);
        diff.push('\n');
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, PathError>) {
        assert_eq!(
            normalize_relative(input),
            expected.map(PathBuf::from),
            "{input:?}"
        );
    }

    #[test]
    fn lexical_check() {
        check("notes.txt", Ok("notes.txt"));
        check("./a/b/../c.txt", Ok("a/c.txt"));
        check(" src/x.rs ", Ok("src/x.rs"));
        check("a/..", Err(PathError::Empty));
        check("", Err(PathError::Empty));
        check(".", Err(PathError::Empty));
        check("../x", Err(PathError::Escapes));
        check("a/../../x", Err(PathError::Escapes));
        check("/etc/passwd", Err(PathError::Absolute));
    }

    #[test]
    fn symlinked_folders_cannot_lead_out() {
        let root = std::env::temp_dir().join(crate::ids::random_id("bridge-ws-").unwrap());
        let outside = std::env::temp_dir().join(crate::ids::random_id("bridge-out-").unwrap());
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let root = root.canonicalize().unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), root.join("file-link")).unwrap();
        assert!(resolve_for_write(&root, "link/x.txt").is_err());
        assert!(resolve_for_write(&root, "file-link").is_err());
        assert_eq!(
            resolve_for_write(&root, "deep/er/x.txt").unwrap(),
            root.join("deep/er/x.txt")
        );
        assert!(root.join("deep/er").is_dir());
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&outside);
    }

    #[test]
    fn diffs_and_display_paths() {
        assert_eq!(
            whole_file_diff("n.txt", None, "hello\n"),
            "--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1,1 @@\n+hello\n"
        );
        assert_eq!(
            whole_file_diff("n.txt", Some("a\nb\n"), "c\n"),
            "--- a/n.txt\n+++ b/n.txt\n@@ -1,2 +1,1 @@\n-a\n-b\n+c\n"
        );
        assert_eq!(display_path(Path::new("/w"), "/w/src/a.rs"), "src/a.rs");
        assert_eq!(display_path(Path::new("/w"), "/other/a.rs"), "/other/a.rs");
        assert_eq!(display_path(Path::new("/w"), "rel.rs"), "rel.rs");
    }
}
