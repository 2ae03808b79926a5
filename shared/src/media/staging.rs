//! Staged files: uploads written chunk by chunk to local disk, deleted when dropped.
//!
//! Each file is created by `tempfile` with `O_EXCL`, mode 0600 and a random name that says only
//! which process made it (`videotube-upload-{pid}-{random}`), never anything the client sent.
//! [`Staging`] and [`StagedFile`] own the file's path and delete it in `Drop`, so success,
//! rejection, upstream failure and panic (unwinding) all leave nothing behind. What a crashed
//! process cannot delete, the next cold start does: [`sweep_leftovers`] removes the files of
//! processes that no longer exist, and leaves those of live processes sharing the directory.
use std::{
    fs::Permissions,
    io,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt as _;

use super::{MediaError, image::ImageKind};

/// Every staged file's name starts with this, then the PID of the process that staged it.
pub const STAGING_PREFIX: &str = "videotube-upload-";
/// Random characters in each name (about 95 bits): unguessable, so never worth racing for.
const RANDOM_CHARS: usize = 16;
/// Enough leading bytes for every magic number we recognise.
const HEAD_BYTES: usize = 64;

/// A staged file being written. Dropping it deletes the file.
pub struct Staging {
    file: NamedTempFile,
    writer: tokio::fs::File,
    len: u64,
    head: Vec<u8>,
}

impl Staging {
    /// Creates a fresh file in `dir` (which must exist).
    pub fn create(dir: &Path) -> Result<Self, MediaError> {
        let prefix = format!("{STAGING_PREFIX}{}-", std::process::id());
        let file = tempfile::Builder::new()
            .prefix(&prefix)
            .rand_bytes(RANDOM_CHARS)
            .permissions(Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(MediaError::Staging)?;
        let writer = file.as_file().try_clone().map_err(MediaError::Staging)?;
        Ok(Self {
            file,
            writer: tokio::fs::File::from_std(writer),
            len: 0,
            head: Vec::new(),
        })
    }

    /// Appends one chunk.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), MediaError> {
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.writer
            .write_all(chunk)
            .await
            .map_err(MediaError::Staging)?;
        self.len += chunk.len() as u64;
        Ok(())
    }

    /// Waits until every chunk is on disk.
    pub async fn finish(mut self) -> Result<StagedFile, MediaError> {
        self.writer.flush().await.map_err(MediaError::Staging)?;
        let kind = ImageKind::sniff(&self.head);
        Ok(StagedFile {
            file: self.file,
            len: self.len,
            kind,
        })
    }
}

/// A completely written staged file. Dropping it deletes the file.
pub struct StagedFile {
    file: NamedTempFile,
    len: u64,
    kind: Option<ImageKind>,
}

impl StagedFile {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// What the magic bytes say the file is, if it is an image we accept.
    pub fn kind(&self) -> Option<ImageKind> {
        self.kind
    }

    /// A new reading handle from the start of the file (tempfile checks it is the same file).
    pub(crate) fn reader(&self) -> Result<tokio::fs::File, MediaError> {
        self.file
            .reopen()
            .map(tokio::fs::File::from_std)
            .map_err(MediaError::Staging)
    }
}

impl std::fmt::Debug for StagedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedFile")
            .field("len", &self.len)
            .field("kind", &self.kind)
            .finish()
    }
}

/// The PID in a staged file's name, if `name` is one of ours.
fn staging_pid(name: &str) -> Option<u32> {
    let (pid, random) = name.strip_prefix(STAGING_PREFIX)?.split_once('-')?;
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (digits && !random.is_empty())
        .then(|| pid.parse().ok())
        .flatten()
}

/// Whether process `pid` exists, by `/proc/{pid}`. Where there is no `/proc` (not Linux) every
/// process counts as alive, so nothing of another process's is ever removed by mistake.
pub fn process_is_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes the staged files in `dir` whose process is gone, and returns how many it removed.
///
/// Files named with `own_pid` are removed too: this runs at cold start, before this process
/// stages anything, so such a file belonged to an earlier process that had the same PID (PID
/// namespaces, as in a Lambda sandbox, hand out the same PIDs again after a crash). Anything
/// not named like a staged file, and anything that is not a regular file, is left alone.
pub fn sweep_leftovers(dir: &Path, own_pid: u32, is_alive: impl Fn(u32) -> bool) -> usize {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return 0,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list the staging directory");
            return 0;
        }
    };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(staging_pid) else {
            continue;
        };
        if pid != own_pid && is_alive(pid) {
            continue;
        }
        let path: PathBuf = entry.path();
        let regular = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
        if !regular {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a staged leftover")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_staged_file_is_private_unpredictably_named_and_deleted_on_drop() {
        let dir = tempfile::tempdir().expect("dir");
        let mut staging = Staging::create(dir.path()).expect("create");
        staging.write(b"\x89PNG\r\n\x1a\n").await.expect("write");
        staging.write(b"rest").await.expect("write");
        let staged = staging.finish().await.expect("finish");
        let path = staged.path().to_owned();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        assert!(
            name.starts_with(&format!("{STAGING_PREFIX}{}-", std::process::id())),
            "{name}"
        );
        assert_eq!(staging_pid(&name), Some(std::process::id()));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"\x89PNG\r\n\x1a\nrest"
        );
        assert_eq!((staged.len(), staged.kind()), (12, Some(ImageKind::Png)));
        let other = Staging::create(dir.path()).expect("create");
        drop(staged);
        assert!(!path.exists(), "dropping the staged file deletes it");
        drop(other);
        assert!(
            names(dir.path()).is_empty(),
            "an unfinished staging file is deleted too"
        );
    }

    #[test]
    fn names_that_are_not_ours_have_no_pid() {
        assert_eq!(staging_pid("videotube-upload-42-abc"), Some(42));
        for other in [
            "videotube-upload-42",
            "videotube-upload--abc",
            "videotube-upload-4x-abc",
            "x-42-abc",
            "videotube-upload-42-",
        ] {
            assert_eq!(staging_pid(other), None, "{other}");
        }
    }

    #[test]
    fn the_sweep_removes_files_of_dead_processes_and_of_our_own_pid_only() {
        let dir = tempfile::tempdir().expect("dir");
        let touch = |name: &str| std::fs::write(dir.path().join(name), b"x").expect("write");
        touch("videotube-upload-100-dead");
        touch("videotube-upload-200-alive");
        touch("videotube-upload-300-mine");
        touch("unrelated.txt");
        std::fs::create_dir(dir.path().join("videotube-upload-100-adirectory")).expect("mkdir");
        let removed = sweep_leftovers(dir.path(), 300, |pid| pid == 200);
        assert_eq!(removed, 2);
        assert_eq!(
            names(dir.path()),
            [
                "unrelated.txt",
                "videotube-upload-100-adirectory",
                "videotube-upload-200-alive"
            ]
        );
    }

    #[test]
    fn liveness_comes_from_proc() {
        assert!(process_is_alive(std::process::id()));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        // Reaped, so gone (unless the PID was reused within these microseconds).
        assert!(!process_is_alive(pid));
    }

    #[test]
    fn sweeping_a_missing_directory_is_a_no_op() {
        assert_eq!(
            sweep_leftovers(Path::new("/nonexistent/videotube"), 1, |_| false),
            0
        );
    }
}
