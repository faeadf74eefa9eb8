//! The build on disk: its files with their digests ([`scan`]), its manifest
//! ([`manifest`]), and the headers each file is served with ([`headers`]).
//! Pure of network I/O: nothing here talks to S3 or Redis.

pub mod digest;
pub mod headers;
pub mod manifest;
pub mod scan;

use std::path::PathBuf;

pub use digest::Digests;

/// Content encodings of precompressed copies (`x.js.gz`, `x.js.br`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gzip,
    Br,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildFile {
    /// Path inside the build, `/`-separated, valid UTF-8.
    pub path: String,
    pub size: u64,
    pub digests: Digests,
    /// For `x.js.gz`: the original `x.js` (when it is in the build) and the encoding.
    pub precompressed: Option<(String, Encoding)>,
}

#[derive(Debug, Clone)]
pub struct Build {
    pub root: PathBuf,
    /// Sorted by path.
    pub files: Vec<BuildFile>,
    /// What `exclude` leaves out.
    pub exclude: Exclude,
    /// Files `exclude` left out (path, size), sorted by path: neither
    /// hashed, uploaded nor in the release.
    pub excluded: Vec<(String, u64)>,
}

impl Build {
    pub fn get(&self, path: &str) -> Option<&BuildFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
    /// Did `exclude` leave this file out?
    pub fn is_excluded(&self, path: &str) -> bool {
        self.excluded
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .is_ok()
    }
}

/// `exclude`: globs of files (paths inside the build) and manifest entries
/// (their names) left out of the upload and the release.
#[derive(Debug, Clone, Default)]
pub struct Exclude {
    pub globs: Vec<String>,
    set: globset::GlobSet,
}

impl Exclude {
    /// Compile globs; `Err` names the bad one. Globs match paths relative
    /// to the build (`js/app.js`): a leading `/` or `./` is dropped, so
    /// `/js/*.map` and `./js/*.map` mean `js/*.map` rather than nothing.
    pub fn new(globs: Vec<String>) -> Result<Exclude, String> {
        let mut set = globset::GlobSetBuilder::new();
        for g in &globs {
            let mut relative = g.as_str();
            while let Some(rest) = relative
                .strip_prefix("./")
                .or_else(|| relative.strip_prefix('/'))
            {
                relative = rest;
            }
            set.add(globset::Glob::new(relative).map_err(|e| format!("bad glob {g:?}: {e}"))?);
        }
        let set = set.build().map_err(|e| e.to_string())?;
        Ok(Exclude { globs, set })
    }

    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    pub fn matches(&self, name: &str) -> bool {
        !self.globs.is_empty() && self.set.is_match(name)
    }

    /// Is this file of the build left out? So are the precompressed copies
    /// (`.gz`, `.br`) of a file that is.
    pub fn leaves_out(&self, path: &str) -> bool {
        self.matches(path)
            || [".gz", ".br"]
                .iter()
                .any(|ext| path.strip_suffix(ext).is_some_and(|p| self.matches(p)))
    }
}
