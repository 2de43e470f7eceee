//! `agx-server scan PATH...`: leaked keys in files, found by the core's
//! checksum test (`agx_auth::find_keys`), each looked up in the store when
//! there is one (`Authenticator::key_standing`), and deleted there with
//! `--revoke`. Reports show the key's
//! display prefix, never the key.

use std::path::{Path, PathBuf};

use agx_auth::FoundKey;

/// Files past this are skipped with a notice: a scanner that reads a
/// multi-gigabyte dump into memory is a scanner that gets killed.
pub const MAX_FILE: u64 = 256 * 1024 * 1024;

/// A key found in a file.
pub struct Leak {
    pub path: PathBuf,
    pub found: FoundKey,
}

/// Every key in `paths` (files, or directories walked without following
/// symbolic links), in path order; the notices for what could not be read.
pub fn scan(paths: &[PathBuf]) -> (Vec<Leak>, Vec<String>) {
    let (mut leaks, mut notices) = (Vec::new(), Vec::new());
    for path in paths {
        walk(path, &mut leaks, &mut notices);
    }
    (leaks, notices)
}

fn walk(path: &Path, leaks: &mut Vec<Leak>, notices: &mut Vec<String>) {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return notices.push(format!("{}: {e}", path.display())),
    };
    if meta.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => return notices.push(format!("{}: {e}", path.display())),
        };
        let mut children: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        children.sort();
        for child in children {
            walk(&child, leaks, notices);
        }
    } else if meta.is_file() {
        if meta.len() > MAX_FILE {
            return notices.push(format!("{}: skipped, larger than {} MiB", path.display(), MAX_FILE >> 20));
        }
        match std::fs::read(path) {
            Ok(bytes) => {
                leaks.extend(agx_auth::find_keys(&bytes).into_iter().map(|found| Leak { path: path.to_owned(), found }))
            }
            Err(e) => notices.push(format!("{}: {e}", path.display())),
        }
    }
    // Symbolic links, sockets, devices: not followed, not read.
}

impl Leak {
    /// `path:line:column: agx_live_sk7G…mA`, never the key.
    pub fn describe(&self) -> String {
        format!(
            "{}:{}:{}: {}",
            self.path.display(),
            self.found.line,
            self.found.column,
            self.found.key.display_prefix()
        )
    }
}
