//! Scanning a build: walk the directory once, then hash every file (SHA-256)
//! in one streaming read each, on all cores (rayon). The MD5s that only some
//! decisions need are added later, for those files only ([`add_md5s`]).

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::digest::{hash_file, hash_md5};
use super::{Build, BuildFile, Encoding, Exclude};
use crate::error::Failure;
use crate::events::{Event, Observer, Phase};

/// Scan and hash a build directory, leaving out what `exclude` matches.
pub fn scan(root: &Path, exclude: &Exclude, observer: &dyn Observer) -> anyhow::Result<Build> {
    let Walked { paths, excluded } = walk(root, exclude)?;
    let total: u64 = paths.iter().map(|(_, _, size)| size).sum();
    observer.event(Event::Started {
        phase: Phase::Hashing,
        files: paths.len() as u64,
        bytes: total,
    });
    let mut files: Vec<BuildFile> = paths
        .par_iter()
        .map_init(
            || vec![0u8; 256 * 1024],
            |buf, (rel, abs, _)| {
                let (size, digests) = hash_file(abs, buf)?;
                observer.event(Event::Advanced {
                    phase: Phase::Hashing,
                    files: 1,
                    bytes: size,
                });
                Ok(BuildFile {
                    path: rel.clone(),
                    size,
                    digests,
                    precompressed: None,
                })
            },
        )
        .collect::<anyhow::Result<_>>()?;
    observer.event(Event::Finished {
        phase: Phase::Hashing,
    });
    pair_precompressed(&mut files);
    Ok(Build {
        root: root.to_path_buf(),
        files,
        exclude: exclude.clone(),
        excluded,
    })
}

/// Add the MD5s (for matching S3's ETags) of the files at `paths`, on all
/// cores; the bytes must still be the scanned ones.
pub fn add_md5s(
    build: &mut Build,
    paths: &[String],
    multipart_threshold: u64,
    observer: &dyn Observer,
) -> anyhow::Result<()> {
    let wanted: std::collections::HashSet<&str> = paths.iter().map(String::as_str).collect();
    let root = build.root.clone();
    let todo: Vec<&mut BuildFile> = build
        .files
        .iter_mut()
        .filter(|f| f.digests.md5.is_none() && wanted.contains(f.path.as_str()))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    observer.event(Event::Started {
        phase: Phase::Hashing,
        files: todo.len() as u64,
        bytes: todo.iter().map(|f| f.size).sum(),
    });
    todo.into_par_iter()
        .map_init(
            || vec![0u8; 256 * 1024],
            |buf, f| {
                let md5s = hash_md5(
                    &root.join(&f.path),
                    f.size,
                    &f.digests.sha256,
                    multipart_threshold,
                    buf,
                )?;
                f.digests.md5 = Some(md5s);
                observer.event(Event::Advanced {
                    phase: Phase::Hashing,
                    files: 1,
                    bytes: f.size,
                });
                anyhow::Ok(())
            },
        )
        .collect::<anyhow::Result<()>>()?;
    observer.event(Event::Finished {
        phase: Phase::Hashing,
    });
    Ok(())
}

/// Mark `x.js.gz` / `x.js.br` as precompressed copies of `x.js` when it is in the build.
fn pair_precompressed(files: &mut [BuildFile]) {
    let names: std::collections::HashSet<String> = files.iter().map(|f| f.path.clone()).collect();
    for f in files {
        for (ext, enc) in [(".gz", Encoding::Gzip), (".br", Encoding::Br)] {
            if let Some(orig) = f.path.strip_suffix(ext) {
                if names.contains(orig) {
                    f.precompressed = Some((orig.to_string(), enc));
                }
            }
        }
    }
}

/// The files of a build, sorted by relative path.
struct Walked {
    /// (relative path, absolute path, size).
    paths: Vec<(String, PathBuf, u64)>,
    /// Left out by `exclude`: (relative path, size).
    excluded: Vec<(String, u64)>,
}

/// Walk the build. Files `exclude` matches are only listed: a symlink or
/// name the upload would refuse does not matter when it is left out.
fn walk(root: &Path, exclude: &Exclude) -> anyhow::Result<Walked> {
    check_root(root)?;
    let canonical_root = root.canonicalize().map_err(|e| {
        Failure::input(format!(
            "cannot resolve build directory {}: {e}",
            root.display()
        ))
    })?;
    let mut out = Vec::new();
    let mut excluded = Vec::new();
    let relative = |p: &Path| -> String {
        let rel = p.strip_prefix(root).expect("walkdir stays under root");
        rel.to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/")
    };
    for entry in walkdir::WalkDir::new(root).follow_links(true) {
        let entry = match entry {
            Ok(entry) => entry,
            // An unreadable or dangling path that is left out does not matter.
            Err(e) if e.path().is_some_and(|p| exclude.leaves_out(&relative(p))) => continue,
            Err(e) => return Err(walk_error(e)),
        };
        let left_out = exclude.leaves_out(&relative(entry.path()));
        if entry.path_is_symlink() && !left_out {
            check_symlink(entry.path(), &canonical_root)?;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let size = entry
            .metadata()
            .map_err(|e| Failure::input(format!("cannot read {}: {e}", entry.path().display())))?
            .len();
        if left_out {
            excluded.push((relative(entry.path()), size));
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("walkdir stays under root");
        out.push((utf8_path(rel)?, entry.path().to_path_buf(), size));
    }
    if out.is_empty() && !excluded.is_empty() {
        return Err(Failure::input(format!(
            "exclude ({}) leaves out every file of {}; narrow the globs",
            exclude.globs.join(" "),
            root.display()
        )));
    }
    if out.is_empty() {
        return Err(Failure::input(format!(
            "build directory {} has no files; run webpack before deploying",
            root.display()
        )));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    excluded.sort();
    Ok(Walked {
        paths: out,
        excluded,
    })
}

fn check_root(root: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(root).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::input(format!(
                "build directory {} does not exist; run webpack first or pass the directory it writes to",
                root.display()
            ))
        } else {
            Failure::input(format!("cannot read build directory {}: {e}", root.display()))
        }
    })?;
    if !meta.is_dir() {
        return Err(Failure::input(format!(
            "{} is not a directory; pass the webpack output directory (e.g. public/packs)",
            root.display()
        )));
    }
    Ok(())
}

fn walk_error(e: walkdir::Error) -> anyhow::Error {
    let path = e
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if e.loop_ancestor().is_some() {
        return Failure::input(format!(
            "symlink loop at {path}; remove the link from the build"
        ));
    }
    let dangling = e
        .path()
        .is_some_and(|p| p.is_symlink() && std::fs::metadata(p).is_err());
    if dangling {
        return Failure::input(format!(
            "broken symlink {path} in the build: its target does not exist; remove it or point it at a file inside the build"
        ));
    }
    if e.io_error().map(|io| io.kind()) == Some(std::io::ErrorKind::NotFound) {
        return Failure::input(format!(
            "{path} disappeared while the build was read; wait for the build to finish, then deploy again"
        ));
    }
    Failure::input(format!(
        "cannot read {path} in the build: {e}; fix its permissions or remove it"
    ))
}

fn check_symlink(path: &Path, canonical_root: &Path) -> anyhow::Result<()> {
    let target = path.canonicalize().map_err(|e| {
        Failure::input(format!(
            "broken symlink {} in the build: {e}; remove it or point it at a file inside the build",
            path.display()
        ))
    })?;
    if !target.starts_with(canonical_root) {
        return Err(Failure::input(format!(
            "symlink {} points outside the build directory (to {}); copy the file into the build instead",
            path.display(),
            target.display()
        )));
    }
    Ok(())
}

/// A path inside the build as a `/`-separated UTF-8 string (S3 keys are
/// UTF-8), without control characters (a newline breaks the upload, the
/// listing and the URL): refused up front, before anything is written.
fn utf8_path(rel: &Path) -> anyhow::Result<String> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let path = parts.map(|p| p.join("/")).ok_or_else(|| {
        Failure::input(format!(
            "file name {} is not valid UTF-8; S3 keys must be UTF-8, rename the file",
            rel.display()
        ))
    })?;
    if path.chars().any(char::is_control) {
        return Err(Failure::input(format!(
            "file name {path:?} in the build has a control character (a newline, tab or the like); \
             it cannot be an S3 key and a URL: rename the file, or leave it out with exclude"
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Quiet;

    fn write(dir: &Path, rel: &str, bytes: &[u8]) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    #[test]
    fn scan_is_sorted_utf8_and_pairs_compressed_copies() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "js/z app-0123abcd.js", b"z");
        write(dir.path(), "js/z app-0123abcd.js.gz", b"gz");
        write(dir.path(), "js/z app-0123abcd.js.br", b"br");
        write(dir.path(), "css/ünï-1.css", b"c");
        write(dir.path(), "lonely.gz", b"x");
        let b = scan(dir.path(), &Exclude::default(), &Quiet).unwrap();
        let paths: Vec<&str> = b.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "css/ünï-1.css",
                "js/z app-0123abcd.js",
                "js/z app-0123abcd.js.br",
                "js/z app-0123abcd.js.gz",
                "lonely.gz"
            ]
        );
        assert_eq!(
            b.get("js/z app-0123abcd.js.br").unwrap().precompressed,
            Some(("js/z app-0123abcd.js".into(), Encoding::Br))
        );
        assert_eq!(b.get("lonely.gz").unwrap().precompressed, None);
        assert_eq!(b.total_bytes(), 7);
    }

    #[test]
    fn scan_rejects_escaping_symlink_and_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret", b"s");
        write(dir.path(), "a.js", b"a");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak.js"))
            .unwrap();
        let err = scan(dir.path(), &Exclude::default(), &Quiet).unwrap_err();
        assert!(
            err.to_string()
                .contains("points outside the build directory"),
            "{err}"
        );
        assert_eq!(crate::error::exit_code(&err), 2);

        let empty = tempfile::tempdir().unwrap();
        assert!(scan(empty.path(), &Exclude::default(), &Quiet)
            .unwrap_err()
            .to_string()
            .contains("has no files"));
        let inside = tempfile::tempdir().unwrap();
        write(inside.path(), "real.js", b"r");
        std::os::unix::fs::symlink(
            inside.path().join("real.js"),
            inside.path().join("alias.js"),
        )
        .unwrap();
        assert_eq!(
            scan(inside.path(), &Exclude::default(), &Quiet)
                .unwrap()
                .files
                .len(),
            2
        );
    }

    #[test]
    fn broken_symlink_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.js", b"a");
        std::os::unix::fs::symlink(dir.path().join("gone.js"), dir.path().join("b.js")).unwrap();
        let err = scan(dir.path(), &Exclude::default(), &Quiet)
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken symlink"), "{err}");
        assert!(!err.contains("permissions"), "{err}");
    }

    #[test]
    fn exclude_globs_with_a_leading_slash_or_dot_slash_match_from_the_build_root() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "js/app.js", b"app");
        write(dir.path(), "js/app.js.map", b"map");
        for glob in ["/js/*.map", "./js/*.map", ".//js/*.map"] {
            let exclude = Exclude::new(vec![glob.into()]).unwrap();
            let b = scan(dir.path(), &exclude, &Quiet).unwrap();
            assert_eq!(b.excluded, [("js/app.js.map".to_string(), 3)], "{glob}");
            assert_eq!(exclude.globs, [glob], "shown as given");
        }
    }

    #[test]
    fn a_file_name_with_a_control_character_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.js", b"a");
        write(dir.path(), "bad\nname.js", b"b");
        let err = scan(dir.path(), &Exclude::default(), &Quiet).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(err.to_string().contains("\"bad\\nname.js\""), "{err}");
        // Left out by exclude, it does not matter.
        let exclude = Exclude::new(vec!["bad*".into()]).unwrap();
        assert!(scan(dir.path(), &exclude, &Quiet).is_ok());
    }

    #[test]
    fn exclude_leaves_files_and_their_compressed_copies_out_unread() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "js/app-0123abcd.js", b"app");
        write(dir.path(), "js/app-0123abcd.js.map", b"map");
        write(dir.path(), "js/app-0123abcd.js.map.gz", b"mapgz");
        write(dir.path(), "js/app-0123abcd.js.gz", b"gz");
        // Left out, so neither its dangling target nor its name matter.
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("x.map")).unwrap();
        let exclude = Exclude::new(vec!["**/*.map".into()]).unwrap();
        let b = scan(dir.path(), &exclude, &Quiet).unwrap();
        let kept: Vec<&str> = b.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(kept, ["js/app-0123abcd.js", "js/app-0123abcd.js.gz"]);
        assert_eq!(
            b.excluded,
            [
                ("js/app-0123abcd.js.map".to_string(), 3),
                ("js/app-0123abcd.js.map.gz".to_string(), 5)
            ]
        );
        assert!(b.is_excluded("js/app-0123abcd.js.map"));
        assert!(!b.is_excluded("js/app-0123abcd.js"));

        let all = Exclude::new(vec!["**".into()]).unwrap();
        let err = scan(dir.path(), &all, &Quiet).unwrap_err();
        assert!(err.to_string().contains("leaves out every file"), "{err}");
        assert_eq!(crate::error::exit_code(&err), 2);
    }
}
