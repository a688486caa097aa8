//! Reading one side of a diff: a contract or lock file, or `REV:path` from git.

use std::path::Path;
use std::process::Command;

use super::Side;
use crate::check::{self, Checked, MAX_CONTRACT_BYTES};
use crate::lock::{self, Lock};

/// Why a side could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// The file, the git object or the lock could not be read; the message says why.
    Unreadable(String),
    /// The contract was read but did not parse or lower: its diagnostics, as `charter check` shows them.
    Invalid(Box<Checked>),
}

/// A `REV:path` argument: only when no file of that name exists and the part before the colon is non-empty.
pub fn split_revision(arg: &str) -> Option<(&str, &str)> {
    if Path::new(arg).exists() {
        return None;
    }
    let (rev, path) = arg.split_once(':')?;
    (!rev.is_empty() && !path.is_empty()).then_some((rev, path))
}

/// `git show REV:path` in the current directory.
pub fn show(rev: &str, path: &str) -> Result<Vec<u8>, String> {
    let output = Command::new("git")
        .arg("show")
        .arg(format!("{rev}:{path}"))
        .output()
        .map_err(|e| format!("cannot run git to read `{rev}:{path}`: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .map(|l| l.trim_start_matches("fatal: ").trim())
            .find(|l| !l.is_empty())
            .unwrap_or("git failed");
        return Err(format!("cannot read `{rev}:{path}` from git: {reason}"));
    }
    Ok(output.stdout)
}

/// Reads a side: from git for `REV:path`, else from the file. A JSON object
/// with a `charter_lock` key is a lock; anything else is a contract.
pub fn load(arg: &str, today: jiff::civil::Date) -> Result<Side, LoadError> {
    let bytes = match split_revision(arg) {
        Some((rev, path)) => show(rev, path).map_err(LoadError::Unreadable)?,
        None => std::fs::read(arg).map_err(|e| LoadError::Unreadable(format!("cannot read {arg}: {e}")))?,
    };
    if bytes.len() > MAX_CONTRACT_BYTES {
        return Err(LoadError::Unreadable(format!(
            "{arg} is {} bytes; contracts are at most {MAX_CONTRACT_BYTES}",
            bytes.len()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        LoadError::Unreadable(format!(
            "{arg} is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
        && lock::is_lock(&value)
    {
        return Lock::parse(&text)
            .map(|lock| Side::Lock {
                path: arg.to_owned(),
                lock,
            })
            .map_err(|e| LoadError::Unreadable(format!("{arg}: {e}")));
    }
    let checked = check::check_text(arg, text, today);
    match checked.model {
        Some(model) => Ok(Side::Contract {
            source: checked.source,
            model: Box::new(model),
        }),
        None => Err(LoadError::Invalid(Box::new(checked))),
    }
}
