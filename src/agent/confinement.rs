//! Confinement of an agent that runs on this host, with bubblewrap (`bwrap`, Debian package
//! `bubblewrap`): the executor starts `bwrap ARGS -- SCRIPT ...` instead of the script.
//!
//! Inside, the agent sees a new mount namespace holding only: the system directories
//! (`/usr`, `/bin`, `/lib*`, a short list of files from `/etc`), read-only; the directories
//! of its `PATH` and `agent.confine_read_only`, read-only; its script, kubeconfig and system
//! prompt, each a single read-only file; its workspace, read-write, with nightcrier's own
//! files in it read-only; its workspace's `tmp/` as `/tmp` (temporary files count against
//! the workspace, on disk, not in memory); a fresh `/proc` and `/dev`.
//! Other kubeconfigs, the daemon's configuration, other workspaces and everything under
//! `/root`, `/home`, `/var` or `/run` do not exist for it. The network stays shared
//! (kubectl and the model API need it). New user, pid, ipc, uts and cgroup namespaces: the
//! agent cannot see or signal other processes, and when it ends, everything it started ends.
//!
//! The wrapping lives here rather than in `run-agent.sh` so that it holds for every agent
//! script and is built from paths the daemon knows, never from shell text.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Top-level system directories: bound read-only, or recreated as the symlinks they are.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What an agent needs from `/etc`: name resolution, TLS roots, users, time zone, the
/// dynamic linker. Not `/etc` as a whole: it often holds cluster credentials
/// (`/etc/kubernetes`, `/etc/rancher`) and nightcrier's own configuration.
const ETC_ENTRIES: &[&str] = &[
    "resolv.conf",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "services",
    "protocols",
    "passwd",
    "group",
    "localtime",
    "timezone",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "crypto-policies",
    "mime.types",
    "os-release",
];

/// The paths of one confined run.
#[derive(Debug, Clone)]
pub struct SandboxLayout<'a> {
    /// Read-write; also the working directory.
    pub workspace: &'a Path,
    /// Inside the workspace; mounted as `/tmp`.
    pub tmp: &'a Path,
    /// Files inside the workspace the agent may read but not change.
    pub protected: &'a [PathBuf],
    pub kubeconfig: &'a Path,
    /// The agent script, if given as a path (a bare name is found through `PATH`).
    pub script: Option<&'a Path>,
    pub system_prompt_file: Option<&'a Path>,
    /// Further read-only paths: the agent's `PATH` and `agent.confine_read_only`.
    pub read_only: &'a [PathBuf],
}

fn push(args: &mut Vec<OsString>, items: &[&OsStr]) {
    args.extend(items.iter().map(|s| s.to_os_string()));
}

fn bind(args: &mut Vec<OsString>, flag: &str, path: &Path) {
    push(
        args,
        &[OsStr::new(flag), path.as_os_str(), path.as_os_str()],
    );
}

/// The namespaces, system directories, `/proc` and `/dev`: the part every run shares.
fn system_args(args: &mut Vec<OsString>) {
    push(
        args,
        &[
            "--die-with-parent".as_ref(),
            "--unshare-all".as_ref(),
            "--share-net".as_ref(),
        ],
    );
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = fs::read_link(path) {
                    push(
                        args,
                        &["--symlink".as_ref(), target.as_os_str(), path.as_os_str()],
                    );
                }
            }
            Ok(meta) if meta.is_dir() => bind(args, "--ro-bind", path),
            _ => {}
        }
    }
    for entry in ETC_ENTRIES {
        bind(args, "--ro-bind-try", &Path::new("/etc").join(entry));
    }
    push(
        args,
        &[
            "--proc".as_ref(),
            "/proc".as_ref(),
            "--dev".as_ref(),
            "/dev".as_ref(),
        ],
    );
}

/// Whether `path` lies under one of the system directories already bound.
fn under_system_dir(path: &Path) -> bool {
    SYSTEM_DIRS.iter().any(|dir| path.starts_with(dir))
}

/// The bwrap arguments (everything before `--`) for one run.
pub fn bwrap_args(layout: &SandboxLayout) -> Vec<OsString> {
    let mut args = Vec::new();
    system_args(&mut args);
    // First, so that paths under /tmp (a workspace root there) are mounted over it, not
    // hidden by it.
    push(
        &mut args,
        &["--bind".as_ref(), layout.tmp.as_os_str(), "/tmp".as_ref()],
    );
    let root = layout.workspace.parent().unwrap_or(layout.workspace);
    for path in layout.read_only {
        // A directory holding the workspaces would show the agent every other incident.
        if !path.is_absolute() || under_system_dir(path) || root.starts_with(path) {
            continue;
        }
        bind(&mut args, "--ro-bind-try", path);
    }
    for file in [
        Some(layout.kubeconfig),
        layout.script,
        layout.system_prompt_file,
    ]
    .into_iter()
    .flatten()
    {
        bind(&mut args, "--ro-bind", file);
    }
    bind(&mut args, "--bind", layout.workspace);
    for file in layout.protected {
        bind(&mut args, "--ro-bind-try", file);
    }
    push(
        &mut args,
        &["--chdir".as_ref(), layout.workspace.as_os_str()],
    );
    args
}

/// The read-only paths an agent needs for its tools: each directory of its `PATH` that is
/// not a system directory, plus the `lib` next to a `bin` (where npm and nvm put the CLI
/// packages) and the `node_modules` of a `node_modules/.bin`, plus the operator's
/// `agent.confine_read_only`.
pub fn tool_paths(path_var: Option<&OsStr>, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in path_var.map(std::env::split_paths).into_iter().flatten() {
        if !dir.is_absolute() || under_system_dir(&dir) || !dir.is_dir() {
            continue;
        }
        if dir.file_name() == Some(OsStr::new("bin")) {
            if let Some(lib) = dir.parent().map(|p| p.join("lib")).filter(|l| l.is_dir()) {
                out.push(lib);
            }
        }
        // `node_modules/.bin` holds links into its `node_modules`: the packages themselves.
        if dir.file_name() == Some(OsStr::new(".bin")) {
            if let Some(modules) = dir
                .parent()
                .filter(|p| p.file_name() == Some(OsStr::new("node_modules")))
            {
                out.push(modules.to_path_buf());
            }
        }
        out.push(dir);
    }
    out.extend(extra.iter().cloned());
    out.sort();
    out.dedup();
    out
}

/// Finds `name` in the directories of `path_var`.
pub fn find_program(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Checks that `bwrap` can build a sandbox here (it needs user namespaces, or root) by
/// running `true` in one. The error says what failed, in bwrap's own words.
pub fn probe(bwrap: &Path) -> Result<(), String> {
    let truth = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .map(Path::new)
        .find(|p| is_executable(p))
        .ok_or_else(|| "no /usr/bin/true to test the sandbox with".to_string())?;
    let mut args = Vec::new();
    system_args(&mut args);
    let output = Command::new(bwrap)
        .args(&args)
        .arg("--")
        .arg(truth)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let detail = crate::agent::preflight::last_line(&output.stderr)
        .unwrap_or_else(|| output.status.to_string());
    Err(format!(
        "{} cannot create a sandbox here: {detail}",
        bwrap.display()
    ))
}

/// Creates `dir` (mode 0700), for the agent's home and temp directories.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => Err(io::Error::new(
            err.kind(),
            format!("cannot create {}: {err}", dir.display()),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn has_triple(args: &[String], flag: &str, path: &str) -> bool {
        args.windows(3)
            .any(|w| w[0] == flag && w[1] == path && w[2] == path)
    }

    #[test]
    fn workspace_is_writable_and_its_own_files_are_read_only_on_top() {
        let protected = [PathBuf::from("/data/incidents/i-1/incident.json")];
        let args = strings(&bwrap_args(&SandboxLayout {
            workspace: Path::new("/data/incidents/i-1"),
            tmp: Path::new("/data/incidents/i-1/tmp"),
            protected: &protected,
            kubeconfig: Path::new("/etc/nightcrier/kube/prod"),
            script: Some(Path::new("/opt/nc/run-agent.sh")),
            system_prompt_file: None,
            read_only: &[],
        }));
        assert!(has_triple(&args, "--bind", "/data/incidents/i-1"));
        assert!(has_triple(&args, "--ro-bind", "/etc/nightcrier/kube/prod"));
        assert!(has_triple(&args, "--ro-bind", "/opt/nc/run-agent.sh"));
        let ws = args
            .iter()
            .position(|a| a == "/data/incidents/i-1")
            .unwrap();
        let own = args
            .iter()
            .position(|a| a == "/data/incidents/i-1/incident.json")
            .unwrap();
        assert!(
            own > ws,
            "the read-only file must be mounted over the workspace"
        );
        assert!(args.contains(&"--unshare-all".to_string()));
        assert!(args.contains(&"--share-net".to_string()));
        assert!(
            !args.iter().any(|a| a == "/etc" || a == "/etc/nightcrier"),
            "{args:?}"
        );
    }

    #[test]
    fn read_only_paths_never_include_the_workspace_root() {
        let read_only = [
            PathBuf::from("/data"),
            PathBuf::from("/data/incidents"),
            PathBuf::from("/opt/node"),
            PathBuf::from("relative"),
        ];
        let args = strings(&bwrap_args(&SandboxLayout {
            workspace: Path::new("/data/incidents/i-1"),
            tmp: Path::new("/data/incidents/i-1/tmp"),
            protected: &[],
            kubeconfig: Path::new("/k"),
            script: None,
            system_prompt_file: None,
            read_only: &read_only,
        }));
        assert!(has_triple(&args, "--ro-bind-try", "/opt/node"));
        assert!(!args.iter().any(|a| a == "/data" || a == "/data/incidents"));
        assert!(!args.iter().any(|a| a == "relative"));
    }

    #[test]
    fn tool_paths_take_path_dirs_outside_the_system_and_their_packages() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("node/bin");
        let lib = dir.path().join("node/lib");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&lib).unwrap();
        let modules = dir.path().join("app/node_modules");
        fs::create_dir_all(modules.join(".bin")).unwrap();
        let dot_bin = modules.join(".bin");
        let path = std::env::join_paths([
            bin.as_path(),
            Path::new("/usr/bin"),
            Path::new("x"),
            dot_bin.as_path(),
        ])
        .unwrap();
        let paths = tool_paths(Some(&path), &[PathBuf::from("/srv/certs")]);
        let mut expected = vec![
            bin,
            lib,
            modules.join(".bin"),
            modules,
            PathBuf::from("/srv/certs"),
        ];
        expected.sort();
        assert_eq!(paths, expected);
    }
}
