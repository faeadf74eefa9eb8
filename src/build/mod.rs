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
}
