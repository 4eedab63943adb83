//! Output folders a step writes into, checked before any work starts: created if missing, probed
//! for writing, and cleared of the temporary files of killed runs.
//!
//! The exit-code rule for outputs (ARCHITECTURE.md, conventions): a folder the user named that is
//! a file, read-only or not allowed is the user's input (exit code 2, the message names the flag
//! or key); a full disk or an I/O error is not (exit code 1).

use std::path::Path;

use ethos_core::{Error, ErrorKind};

use crate::Result;

/// Makes `dir` ready for writing: creates it (and its parents), checks that a file can be created
/// in it, and removes temporary files that killed runs of ethos left there. `what` names where
/// the folder came from in messages (`data.cache_dir`, `--out`, `train.run_dir`).
pub fn prepare(dir: &Path, what: &str) -> Result<()> {
    let fail = |e: std::io::Error, doing: &str| {
        let kind = ErrorKind::of_output_io(&e);
        Error::with_kind(kind, e).context(format!("{what} {}: {doing}", dir.display()))
    };
    if dir.exists() && !dir.is_dir() {
        return Err(Error::bad_input(format!(
            "{what} {}: exists and is not a folder",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(e, "cannot create the folder"))?;
    let probe = ethos_core::fs::temp_path(&dir.join("write-probe"));
    std::fs::File::create(&probe).map_err(|e| fail(e, "cannot write into the folder"))?;
    let _ = std::fs::remove_file(&probe);
    ethos_core::fs::clean_stale_temps(dir)
        .map_err(|e| fail(e, "cannot remove stale temporary files"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_or_read_only_folder_is_bad_input_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache");
        std::fs::write(&file, b"not a folder").unwrap();
        let e = prepare(&file, "data.cache_dir").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        let msg = format!("{e:?}");
        assert!(
            msg.contains("data.cache_dir") && msg.contains("not a folder"),
            "{msg}"
        );
        // Below a file: the parent cannot be created.
        let e = prepare(&file.join("sub"), "--out").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput, "{e:?}");
        assert!(format!("{e:?}").contains("--out"));

        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        // root ignores permissions: only check when the folder really refuses writes.
        if std::fs::File::create(ro.join("x")).is_err() {
            let e = prepare(&ro, "--out").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadInput, "{e:?}");
            assert!(format!("{e:?}").contains("cannot write"), "{e:?}");
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();

        let ok = dir.path().join("a/b");
        prepare(&ok, "--out").unwrap();
        assert!(ok.is_dir());
        assert_eq!(
            std::fs::read_dir(&ok).unwrap().count(),
            0,
            "probe left behind"
        );
    }
}
