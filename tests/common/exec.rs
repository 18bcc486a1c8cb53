//! Executables and FIFOs for tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes an executable script. Another test thread may fork while a write descriptor is
/// open, and exec of a file open for writing fails (ETXTBSY); so `install(1)`, a separate
/// process, writes the executable, and this process only ever writes the source copy.
pub fn write_executable(path: &Path, text: &str) {
    let source = path.with_extension("src");
    std::fs::write(&source, text).unwrap();
    let status = Command::new("install")
        .arg("-m")
        .arg("755")
        .arg(&source)
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "install {}", path.display());
}

/// `write_executable` for `dir/name`; returns the path.
pub fn executable(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    write_executable(&path, text);
    path
}

pub fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path and a mode.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}
