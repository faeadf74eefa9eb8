//! What a deploy reports: the outcome as JSON, and as text.

use serde::Serialize;

use super::gather::Gathered;
use super::{Deployed, Request};
use crate::build::manifest::{Format, ManifestDiff};
use crate::commands::{Ctx, Head};
use crate::contract::{Keys, Pin};
use crate::exec::{Switched, UploadStats};
use crate::notify::{About, Happened, Kind, Notable};
use crate::plan::{CanaryWrite, Decision, PlannedFile, Step};
use crate::release::ReleaseRecord;
use crate::render::{bytes, count, Render};

/// How the deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Dry run: what would happen.
    Planned,
    /// Dry run: objects in S3 hold other bytes; a real deploy would refuse (exit 3).
    Conflict,
    Activated,
    /// Uploaded and recorded, not switched (`--no-activate`).
    Recorded,
    /// The build is the live release (its missing objects, if any, restored).
    AlreadyLive,
    /// The build was the live release, but Redis no longer held its manifest
    /// intact: written again.
    Repaired,
    /// Uploaded, recorded and made the canary of a rollout (`--rollout N`).
    RollingOut,
}

#[derive(Debug, Serialize)]
pub struct Counted {
    pub files: usize,
    pub bytes: u64,
}

/// Seconds spent in each phase (absent: the phase did not run).
#[derive(Debug, Default, Serialize)]
pub struct Timings {
    pub scan: f64,
    pub list: f64,
    pub plan: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch: Option<f64>,
    pub total: f64,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub head: Head,
    pub outcome: Ending,
    pub activated: bool,
    /// The release record (without its file list).
    pub release: ReleaseRecord,
    pub live_before: Option<String>,
    pub live_after: Option<String>,
    pub upload: Counted,
    pub skip: Counted,
    /// Files `exclude` left out of the upload and the release.
    pub excluded: Counted,
    pub conflicts: Vec<PlannedFile>,
    /// The files to upload, with their headers.
    pub objects: Vec<PlannedFile>,
    /// The manifest's format (chosen by `manifest_format`, or detected).
    pub manifest_format: Format,
    pub manifest_diff: ManifestDiff,
    /// The writes, in order (a dry run: the writes a deploy would make).
    pub steps: Vec<String>,
    /// What the upload did (absent when nothing was uploaded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<UploadStats>,
    /// `--wait-converged`: every live reader process serves the release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::Convergence>,
    pub warnings: Vec<String>,
    /// The pin that kept this deploy from activating (null when not pinned).
    pub pinned: Option<Pin>,
    /// The rollout running after this deploy (in a dry run, now): the one
    /// that kept it from activating, the one `--rollout` started, or one
    /// that runs beside a deploy that did not activate (null when none).
    pub canary: Option<crate::canary::Canary>,
    /// Whether the release is registered in Redis (false: recorded in S3
    /// only; `cutover activate ID` registers it).
    pub registered: bool,
    /// The Redis targets switched (or, in a dry run, to switch; registered,
    /// when not activated), each as `host:port/db`; empty with `--no-redis`.
    pub targets: Vec<String>,
    pub timings: Timings,
    #[serde(skip)]
    verbose: bool,
    /// `--timings`: the text output ends with them.
    #[serde(skip)]
    show_timings: bool,
    /// This deploy made the release the canary (`--rollout`), not an
    /// earlier one.
    #[serde(skip)]
    rolled_out: bool,
    /// A running rollout kept it from activating.
    #[serde(skip)]
    held: bool,
}

/// At most this many files per kind in text output, unless `--verbose`.
const SHOWN: usize = 10;

impl Outcome {
    /// What the deploy did (or, in a dry run, would do): the one place its
    /// ending is decided.
    pub(super) fn of(
        ctx: &Ctx,
        req: &Request,
        gathered: &Gathered,
        deployed: Deployed,
        registered: bool,
        timings: Timings,
    ) -> anyhow::Result<Outcome> {
        let Deployed {
            plan,
            steps,
            executed,
        } = deployed;
        let id = &plan.release.id;
        let conflicted = plan.count(Decision::Conflict).0 > 0;
        let mut live_before = plan.live_release.clone();
        // The pin that keeps this deploy from activating, unless it would not anyway.
        let mut pinned = gathered.live.pin.clone().filter(|_| !req.no_activate);
        let mut canary = gathered.live.canary.clone();
        // A running rollout kept this deploy from activating.
        let mut held = false;
        let (ending, live_after) = match executed.as_ref().map(|e| &e.switched) {
            None if conflicted => (Ending::Conflict, None),
            None if plan.already_live => (Ending::AlreadyLive, None),
            None => (Ending::Planned, None),
            Some(Some(Switched::Applied { previous })) => {
                live_before = previous.clone();
                let ending = if plan.live_release.as_deref() == Some(id.as_str()) {
                    Ending::Repaired
                } else {
                    Ending::Activated
                };
                (ending, Some(id.clone()))
            }
            // Pinned between planning and the switch: recorded, not activated.
            Some(Some(Switched::Pinned(pin))) => {
                pinned = Some(pin.clone());
                (Ending::Recorded, plan.live_release.clone())
            }
            // A rollout runs (or started between planning and the switch).
            Some(Some(Switched::RolloutRunning(text))) => {
                canary = crate::canary::Canary::parse(text).ok().or(canary);
                held = true;
                (Ending::Recorded, plan.live_release.clone())
            }
            Some(None) if plan.already_live => (Ending::AlreadyLive, plan.live_release.clone()),
            // Rolled out now, or the canary already (the same deploy again).
            Some(None)
                if req.rollout.is_some()
                    && (executed.as_ref().is_some_and(|e| e.rolled_out.is_some())
                        || gathered
                            .live
                            .canary
                            .as_ref()
                            .is_some_and(|c| &c.release == id)) =>
            {
                canary = steps
                    .iter()
                    .find_map(|s| match s {
                        Step::Rollout(r) => match &r.write {
                            CanaryWrite::Set { canary, .. } | CanaryWrite::Raise(canary) => {
                                Some(canary.clone())
                            }
                            CanaryWrite::Abort { .. } => None,
                        },
                        _ => None,
                    })
                    .or(canary);
                (Ending::RollingOut, plan.live_release.clone())
            }
            // A rollout kept it from activating (the plan saw it running).
            Some(None) if !req.no_activate && req.rollout.is_none() => {
                held = canary.is_some();
                (Ending::Recorded, plan.live_release.clone())
            }
            Some(None) => (Ending::Recorded, plan.live_release.clone()),
        };
        let rolled_out = executed.as_ref().is_some_and(|e| e.rolled_out.is_some());
        let (up_n, up_b) = plan.count(Decision::Upload);
        let (skip_n, skip_b) = plan.count(Decision::Skip);
        Ok(Outcome {
            head: ctx.head("deploy", Some(req.dry_run))?,
            outcome: ending,
            activated: matches!(ending, Ending::Activated | Ending::Repaired),
            release: plan.release.summary(),
            live_before,
            live_after,
            upload: Counted {
                files: up_n,
                bytes: up_b,
            },
            skip: Counted {
                files: skip_n,
                bytes: skip_b,
            },
            excluded: Counted {
                files: plan.excluded.0,
                bytes: plan.excluded.1,
            },
            conflicts: plan.with(Decision::Conflict).cloned().collect(),
            objects: plan.with(Decision::Upload).cloned().collect(),
            manifest_format: gathered.manifest.format,
            manifest_diff: plan.manifest_diff.clone(),
            steps: ctx.describe(
                gathered.store.bucket(),
                &Keys::new(ctx.config.app()?),
                &steps,
            ),
            fleet: executed.as_ref().and_then(|e| e.fleet.clone()),
            uploaded: executed.and_then(|e| e.upload),
            warnings: plan.warnings.clone(),
            pinned,
            canary,
            registered,
            targets: if req.no_redis {
                Vec::new()
            } else {
                ctx.redis_targets()
            },
            timings,
            verbose: ctx.verbose,
            show_timings: req.timings,
            rolled_out,
            held,
        })
    }
}

impl Timings {
    /// Take the executed steps' times (a step that did not run keeps None).
    pub fn add_steps(&mut self, steps: &[(&'static str, f64)]) {
        for &(name, secs) in steps {
            match name {
                "upload" => self.upload = Some(secs),
                "record" => self.record = Some(secs),
                "register" => self.register = Some(secs),
                "switch" => self.switch = Some(secs),
                _ => {}
            }
        }
    }

    /// One line: each phase that ran, then the total.
    pub fn line(&self) -> String {
        let phases = [
            ("scan", Some(self.scan)),
            ("list", Some(self.list)),
            ("plan", Some(self.plan)),
            ("upload", self.upload),
            ("record", self.record),
            ("register", self.register),
            ("switch", self.switch),
        ];
        let parts: Vec<String> = phases
            .iter()
            .filter_map(|(name, secs)| secs.map(|s| format!("{name} {s:.3}s")))
            .collect();
        format!(
            "timings: {}; total {:.3}s (scan and list run at once)",
            parts.join(", "),
            self.total
        )
    }
}

impl Outcome {
    fn shown(&self) -> usize {
        if self.verbose {
            usize::MAX
        } else {
            SHOWN
        }
    }

    /// Lines for a list, the first few unless verbose, then "... and N more".
    fn listed<T>(&self, t: &mut String, items: &[T], line: impl Fn(&T) -> String) {
        for item in items.iter().take(self.shown()) {
            t.push_str(&line(item));
            t.push('\n');
        }
        if items.len() > self.shown() {
            t.push_str(&format!(
                "  ... and {} more (--verbose lists them all)\n",
                items.len() - self.shown()
            ));
        }
    }

    fn plan_text(&self, t: &mut String) {
        let r = &self.release;
        t.push_str(&format!(
            "upload {} ({}), skip {} already in S3 ({}), {}\n",
            count(self.upload.files, "file"),
            bytes(self.upload.bytes),
            count(self.skip.files, "file"),
            bytes(self.skip.bytes),
            count(self.conflicts.len(), "conflict")
        ));
        if self.excluded.files > 0 {
            t.push_str(&format!(
                "left out by exclude: {} ({})\n",
                count(self.excluded.files, "file"),
                bytes(self.excluded.bytes)
            ));
        }
        self.listed(t, &self.objects, |f| {
            let h = f.headers();
            format!(
                "  + s3://{}/{}  {}  {}  {}{}",
                r.bucket,
                f.key,
                bytes(f.file.size),
                h.content_type,
                h.cache_control,
                h.content_encoding
                    .as_deref()
                    .map(|e| format!("  encoding {e}"))
                    .unwrap_or_default()
            )
        });
        self.listed(t, &self.conflicts, |f| {
            format!(
                "  ! s3://{}/{}  S3 has {}, build has {} (sha256 {})",
                r.bucket,
                f.key,
                f.remote.as_deref().unwrap_or("other bytes"),
                bytes(f.file.size),
                f.file.sha256
            )
        });
        let d = &self.manifest_diff;
        t.push_str(&format!(
            "manifest against live ({}): {} added, {} changed, {} removed, {} unchanged\n",
            self.live_before.as_deref().unwrap_or("none"),
            d.added.len(),
            d.changed.len(),
            d.removed.len(),
            d.unchanged
        ));
        self.listed(t, &d.added, |e| format!("  + {} -> {}", e.entry, e.url));
        self.listed(t, &d.changed, |c| {
            format!("  ~ {}: {} -> {}", c.entry, c.from, c.to)
        });
        self.listed(t, &d.removed, |e| {
            format!("  - {} (was {})", e.entry, e.url)
        });
        if self.steps.is_empty() {
            let why = if self.outcome == Ending::Conflict {
                "a deploy would stop before writing anything (exit 3)"
            } else {
                "nothing to write"
            };
            t.push_str(&format!("writes: none, {why}\n"));
        } else {
            t.push_str("writes, in order:\n");
            for (i, s) in self.steps.iter().enumerate() {
                t.push_str(&format!("  {}. {s}\n", i + 1));
            }
        }
    }
}

impl Render for Outcome {
    fn text(&self) -> String {
        let mut t = self.result_text();
        let what = match self.outcome {
            Ending::Conflict => "",
            _ if self.head.dry_run() => "would write",
            Ending::Activated => "switched",
            Ending::Repaired => "repaired",
            Ending::Recorded if self.registered => "registered",
            Ending::RollingOut => "rolled out",
            Ending::AlreadyLive => "live",
            _ => "",
        };
        if !what.is_empty() {
            t.push_str(&crate::commands::on_redis(what, &self.targets));
        }
        t.push_str(&crate::commands::fleet_line(self.fleet.as_ref()));
        if self.show_timings {
            t.push_str(&self.timings.line());
            t.push('\n');
        }
        t
    }

    fn exit_code(&self) -> u8 {
        if self.outcome == Ending::Conflict {
            3
        } else {
            0
        }
    }
}

/// A deploy that switched tells `activated`; recorded, already live or
/// repaired, nothing.
impl Notable for Outcome {
    fn happened(&self) -> Option<Happened> {
        let kind = match self.outcome {
            Ending::Activated => Kind::Activated,
            Ending::RollingOut if self.rolled_out => Kind::RolloutStarted,
            _ => return None,
        };
        Some(Happened {
            kind,
            release: Some(self.release.id.clone()),
            previous: self.live_before.clone(),
            about: About::of(&self.release, self.release.message.clone()),
        })
    }

    /// `--wait-converged`: where the fleet stood when every process served it.
    fn convergence(&self) -> Option<crate::notify::Convergence> {
        self.fleet.as_ref().map(Into::into)
    }
}

impl Outcome {
    fn result_text(&self) -> String {
        let r = &self.release;
        let id = &r.id;
        let mut t = String::new();
        if self.head.dry_run() {
            t.push_str("dry run: nothing will be changed\n");
            t.push_str(&format!(
                "release {id} of {}: {}, {}\n",
                r.app,
                count(r.file_count, "file"),
                bytes(r.bytes)
            ));
            if self.outcome == Ending::AlreadyLive {
                t.push_str("already live\n");
            }
            self.plan_text(&mut t);
            return t;
        }
        if let Some(u) = self.uploaded.as_ref().filter(|u| u.files > 0) {
            t.push_str(&format!(
                "uploaded {} ({}) in {:.1}s, skipped {} already in S3\n",
                count(u.files as usize, "file"),
                bytes(u.bytes),
                u.seconds,
                count(self.skip.files, "file")
            ));
        }
        let line = match self.outcome {
            Ending::AlreadyLive if self.uploaded.is_some() => {
                format!(
                    "release {id} is already live for {}; restored its missing objects",
                    r.app
                )
            }
            Ending::AlreadyLive => {
                format!("release {id} is already live for {}; nothing to do", r.app)
            }
            Ending::Recorded if !self.registered => format!(
                "recorded release {id} in S3 only (not registered in Redis); `cutover activate {id}` registers and activates it"
            ),
            Ending::Recorded if self.pinned.is_some() => format!(
                "recorded release {id} (not activated: {} is pinned); make it live with: cutover activate {id} --unpin",
                r.app
            ),
            Ending::RollingOut => format!(
                "recorded release {id} and rolled it out to {} of {} (the others get {}); \
                 `cutover rollout --percent N` changes the share, `cutover rollout complete` makes it live, `cutover rollout abort` takes it off",
                self.canary.as_ref().map(|c| c.percent.to_string()).unwrap_or_default(),
                r.app,
                self.live_before.as_deref().unwrap_or("no release")
            ),
            Ending::Recorded if self.held => format!(
                "recorded release {id} (not activated: a rollout is running for {}, canary {}); \
                 `cutover rollout {id} --percent N` rolls this one out instead, or end the rollout \
                 (`cutover rollout complete` or `abort`) and `cutover activate {id}`",
                r.app,
                self.canary.as_ref().map(|c| c.describe()).unwrap_or_default()
            ),
            Ending::Recorded => format!(
                "recorded release {id} (not activated); make it live with: cutover activate {id}"
            ),
            Ending::Repaired => format!(
                "release {id} was live for {} but Redis no longer held its manifest intact; wrote it again",
                r.app
            ),
            _ => format!(
                "release {id} is live for {} (was {})",
                r.app,
                self.live_before.as_deref().unwrap_or("none")
            ),
        };
        t.push_str(&line);
        t.push('\n');
        t
    }
}
