//! Writing and reading PEM files: written whole or not at all (temporary file, then
//! rename), private keys readable by the owner only (mode 0600).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Whether a file holds a secret (a private key): such files get mode 0600.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrecy {
    Public,
    Secret,
}

/// Creates `dir` (and its parents) if missing; a new directory gets mode 0700.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::io(format!("creating directory {}", dir.display()), e))
}

/// Writes `contents` to `path` atomically: a reader sees the old file or the new one,
/// never a part. A [`Secrecy::Secret`] file is mode 0600 from its creation on.
pub(crate) fn write_file(path: &Path, contents: &str, secrecy: Secrecy) -> Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        Error::invalid("file path", format!("{} has no file name", path.display()))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let context = |what: &str| format!("{what} {}", tmp.display());

    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(context("removing stale"), e)),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match secrecy {
            Secrecy::Secret => 0o600,
            Secrecy::Public => 0o644,
        });
    }
    let mut file = options
        .open(&tmp)
        .map_err(|e| Error::io(context("creating"), e))?;
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(format!("writing {}", path.display()), e));
    }
    Ok(())
}

/// Reads a whole UTF-8 file, naming `path` in the error.
pub(crate) fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}
