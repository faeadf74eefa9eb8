//! What the pipeline tells the outside world while it works.
//!
//! Scanning, listing and uploading emit [`Event`]s to an [`Observer`]; the
//! printers in `cli::progress` draw bars or plain lines from them. The pipeline never
//! draws anything itself.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Hashing,
    Listing,
    Verifying,
    Uploading,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Hashing => "hashing",
            Phase::Listing => "listing",
            Phase::Verifying => "verifying",
            Phase::Uploading => "uploading",
        })
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    /// A phase begins; totals are known up front except for listing (0).
    Started {
        phase: Phase,
        files: u64,
        bytes: u64,
    },
    /// Some work of a phase is done.
    Advanced {
        phase: Phase,
        files: u64,
        bytes: u64,
    },
    Finished {
        phase: Phase,
    },
    /// Waiting for the fleet: `on` of the `of` live reader processes are
    /// as awaited (`--wait-converged`): `serves`, e.g. "on B".
    Converging {
        on: u64,
        of: u64,
        serves: String,
    },
    /// A line for the log (stderr), e.g. a retry or a warning.
    Warning(String),
    Info(String),
}

pub trait Observer: Send + Sync {
    fn event(&self, event: Event);
}

/// Discards everything (library callers and unit tests).
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: Event) {}
}
