//! Atomic file writes: new contents are staged beside their target, flushed
//! to disk, then renamed over it, so a reader sees the old file or the new
//! one, never half of either. Shared by `write` (the generated crate) and
//! `lock` (`charter lock --out`).

use std::path::{Path, PathBuf};

/// Writes one file atomically: staged beside `target`, then renamed over it.
pub fn write_atomically(target: &Path, contents: &str) -> Result<(), String> {
    let temp = stage(target, contents)?;
    std::fs::rename(&temp, target).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        format!("cannot write {}: {e}", target.display())
    })
}

/// Writes `contents` to a temporary file beside `target` (flushed to disk) and returns its path.
pub fn stage(target: &Path, contents: &str) -> Result<PathBuf, String> {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(format!("{} is not a file path", target.display()));
    };
    if !dir.as_os_str().is_empty() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let temp = dir.join(format!(".{}.charter-tmp", name.to_string_lossy()));
    let written = std::fs::File::create(&temp).and_then(|mut file| {
        use std::io::Write as _;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        format!("cannot write {}: {e}", temp.display())
    })?;
    Ok(temp)
}
