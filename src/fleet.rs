//! What each reader process serves (docs/redis.md, "The fleet"): the
//! reports the readers write, and what they say together. Pure: the store
//! reads the reports ([`crate::store::redis::Registry::fleet`]); status,
//! `cutover fleet`, the convergence wait and prune read them through here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A process is gone once this many of its heartbeats passed without a
/// report.
pub const GONE_AFTER_HEARTBEATS: f64 = 3.0;

/// One process's last report, as the reader wrote it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Report {
    pub id: String,
    pub host: String,
    pub pid: u64,
    /// `rails`, `ruby` or `node`.
    pub kind: String,
    /// The library and its version (`ruby/0.9.0`).
    pub reader: String,
    /// None: it serves no release (none live, or the fallback manifest).
    pub release: Option<String>,
    pub since: Option<i64>,
    /// `start`, `pubsub`, `poll` or `fallback`.
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refused>,
    /// The canary of a rollout it also serves, to the keys assigned to it
    /// (absent or null: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Seconds between its reports.
    pub heartbeat: f64,
    /// When it reported (ms since the epoch).
    pub at: i64,
    pub started: Option<i64>,
}

/// The last release a process refused to serve, and why.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Refused {
    /// None: what it refused named no release (a canary key that is not JSON).
    pub release: Option<String>,
    pub reason: String,
}

impl Report {
    /// It reported within [`GONE_AFTER_HEARTBEATS`] of its heartbeats.
    pub fn live_at(&self, now_ms: i64) -> bool {
        let window = (self.heartbeat.max(0.0) * GONE_AFTER_HEARTBEATS * 1000.0) as i64;
        now_ms - self.at <= window
    }

    /// `web-3:1234 (on A, refused B: unsigned)`: the process and what it serves.
    pub fn describe(&self) -> String {
        let on = match &self.release {
            Some(r) => format!("on {r}"),
            None => "on no release".to_string(),
        };
        match &self.refused {
            Some(f) => format!(
                "{} ({on}, refused {}: {})",
                self.id,
                f.release.as_deref().unwrap_or("a canary"),
                f.reason
            ),
            None => format!("{} ({on})", self.id),
        }
    }
}

/// The processes that report to one Redis: live ones, and gone ones
/// (silent for more than 3 heartbeats, until their report expires).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fleet {
    pub live: Vec<Report>,
    pub gone: Vec<Report>,
    /// Members whose report is not a report (not JSON, another shape).
    pub unreadable: Vec<String>,
}

/// How many live processes serve a release, and which do not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Convergence {
    pub release: String,
    /// What was waited for: `live` (every process serves `release`),
    /// `canary` (every process also serves the canary `release`) or
    /// `no_canary` (no process serves the canary `release` any more).
    pub serves: Serves,
    pub processes: usize,
    pub on_release: usize,
    /// The live processes that serve another release, each described.
    pub behind: Vec<String>,
}

/// What a fleet wait (`--wait-converged`) waits for each process to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Serves {
    /// Serve the release as the live one (a switch).
    Live,
    /// Serve it as the canary to its keys (a rollout started or changed).
    Canary,
    /// Serve it no more as the canary (a rollout aborted).
    NoCanary,
}

impl Serves {
    fn holds(self, r: &Report, release: &str) -> bool {
        match self {
            Serves::Live => r.release.as_deref() == Some(release),
            Serves::Canary => r.canary.as_deref() == Some(release),
            Serves::NoCanary => r.canary.as_deref() != Some(release),
        }
    }

    /// "on B", "serving canary B", "without canary B".
    pub fn describe(self, release: &str) -> String {
        match self {
            Serves::Live => format!("on {release}"),
            Serves::Canary => format!("serving canary {release}"),
            Serves::NoCanary => format!("without canary {release}"),
        }
    }
}

impl Convergence {
    /// Every live process serves the release, and there is at least one.
    pub fn converged(&self) -> bool {
        self.processes > 0 && self.on_release == self.processes
    }

    /// `31/42 processes on B`
    pub fn progress(&self) -> String {
        format!(
            "{}/{} processes {}",
            self.on_release,
            self.processes,
            self.serves.describe(&self.release)
        )
    }
}

impl Fleet {
    /// The fleet from what Redis holds: each member with its report (None
    /// when the report expired before the member was trimmed: not counted).
    pub fn of(members: Vec<(String, Option<String>)>, now_ms: i64) -> Fleet {
        let mut fleet = Fleet::default();
        for (id, text) in members {
            let Some(text) = text else { continue };
            match serde_json::from_str::<Report>(&text) {
                Ok(r) if r.live_at(now_ms) => fleet.live.push(r),
                Ok(r) => fleet.gone.push(r),
                Err(_) => fleet.unreadable.push(id),
            }
        }
        fleet.live.sort_by(|a, b| a.id.cmp(&b.id));
        fleet.gone.sort_by(|a, b| a.id.cmp(&b.id));
        fleet
    }

    /// Fleets of several Redis targets as one.
    pub fn merge(fleets: impl IntoIterator<Item = Fleet>) -> Fleet {
        let mut all = Fleet::default();
        for f in fleets {
            all.live.extend(f.live);
            all.gone.extend(f.gone);
            all.unreadable.extend(f.unreadable);
        }
        all
    }

    /// Live processes by the release they serve, most processes first.
    pub fn by_release(&self) -> Vec<(Option<&str>, Vec<&Report>)> {
        let mut groups: BTreeMap<Option<&str>, Vec<&Report>> = BTreeMap::new();
        for r in &self.live {
            groups.entry(r.release.as_deref()).or_default().push(r);
        }
        let mut out: Vec<_> = groups.into_iter().collect();
        // Most processes first; "no release" after the releases.
        out.sort_by(|a, b| (b.1.len(), a.0.is_none(), a.0).cmp(&(a.1.len(), b.0.is_none(), b.0)));
        out
    }

    /// Where the live processes stand against `release` served live.
    pub fn convergence(&self, release: &str) -> Convergence {
        self.convergence_to(release, Serves::Live)
    }

    /// Where the live processes stand against serving `release` so.
    pub fn convergence_to(&self, release: &str, serves: Serves) -> Convergence {
        let behind: Vec<String> = self
            .live
            .iter()
            .filter(|r| !serves.holds(r, release))
            .map(Report::describe)
            .collect();
        Convergence {
            release: release.to_string(),
            serves,
            processes: self.live.len(),
            on_release: self.live.len() - behind.len(),
            behind,
        }
    }

    /// Every release a process of the fleet serves, live or gone (prune
    /// keeps them: a stopped process may come back), with one process each.
    pub fn serving(&self) -> BTreeMap<&str, &Report> {
        let mut out = BTreeMap::new();
        for r in self.live.iter().chain(&self.gone) {
            for release in r.release.iter().chain(&r.canary) {
                out.entry(release.as_str()).or_insert(r);
            }
        }
        out
    }

    /// The live processes by the canary they also serve (those serving
    /// none left out), most first.
    pub fn by_canary(&self) -> Vec<(String, Vec<&Report>)> {
        let mut groups: BTreeMap<&str, Vec<&Report>> = BTreeMap::new();
        for r in &self.live {
            if let Some(c) = r.canary.as_deref() {
                groups.entry(c).or_default().push(r);
            }
        }
        let mut out: Vec<(String, Vec<&Report>)> = groups
            .into_iter()
            .map(|(c, rs)| (c.to_string(), rs))
            .collect();
        out.sort_by_key(|(_, rs)| std::cmp::Reverse(rs.len()));
        out
    }

    /// `42 processes: 40 on B, 2 on A (web-3:1234, web-3:1240)`; the
    /// processes are named for every release but the most served one.
    pub fn summary(&self) -> String {
        if self.live.is_empty() {
            return "no process reports what it serves".to_string();
        }
        let groups = self.by_release();
        let parts: Vec<String> = groups
            .iter()
            .enumerate()
            .map(|(i, (release, reports))| {
                let on = match release {
                    Some(r) => format!("{} on {r}", reports.len()),
                    None => format!("{} on no release", reports.len()),
                };
                if i == 0 {
                    on
                } else {
                    let ids: Vec<String> = reports.iter().map(|r| r.id.clone()).collect();
                    format!("{on} ({})", crate::render::some(&ids, 5))
                }
            })
            .collect();
        let canaries: Vec<String> = self
            .by_canary()
            .iter()
            .map(|(c, rs)| format!("{} also serve canary {c}", rs.len()))
            .collect();
        let canaries = if canaries.is_empty() {
            String::new()
        } else {
            format!("; {}", canaries.join(", "))
        };
        format!(
            "{}: {}{canaries}",
            processes(self.live.len()),
            parts.join(", ")
        )
    }
}

/// What `status` and `--json` show of the fleet: the live processes by
/// release, the gone ones, and each Redis target's when there are several.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Live processes.
    pub processes: usize,
    pub releases: Vec<Group>,
    /// Live processes by the canary of a rollout they also serve.
    pub canaries: Vec<Group>,
    /// Silent for more than 3 heartbeats (kept 10 minutes after their
    /// last report).
    pub gone: Vec<Gone>,
    /// Live processes whose last refusal is of the live release.
    pub refused: Vec<String>,
    pub unreadable: Vec<String>,
    pub summary: String,
    /// With several Redis targets: each target's fleet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub release: Option<String>,
    pub processes: usize,
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gone {
    pub id: String,
    pub release: Option<String>,
    /// Its last report (ms since the epoch).
    pub at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    pub target: String,
    pub processes: usize,
    pub releases: Vec<Group>,
    pub summary: String,
}

impl View {
    /// The view of each target's fleet (one target: `targets` is empty),
    /// against the live release.
    pub fn of(fleets: Vec<(String, Fleet)>, live: Option<&str>) -> View {
        let several = fleets.len() > 1;
        let targets: Vec<TargetView> = if several {
            fleets
                .iter()
                .map(|(name, f)| TargetView {
                    target: name.clone(),
                    processes: f.live.len(),
                    releases: groups(f),
                    summary: f.summary(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let all = Fleet::merge(fleets.into_iter().map(|(_, f)| f));
        View {
            processes: all.live.len(),
            releases: groups(&all),
            canaries: all
                .by_canary()
                .into_iter()
                .map(|(c, rs)| Group {
                    release: Some(c),
                    processes: rs.len(),
                    ids: rs.iter().map(|r| r.id.clone()).collect(),
                })
                .collect(),
            gone: all
                .gone
                .iter()
                .map(|r| Gone {
                    id: r.id.clone(),
                    release: r.release.clone(),
                    at: r.at,
                })
                .collect(),
            refused: all
                .live
                .iter()
                .filter(|r| {
                    r.refused
                        .as_ref()
                        .is_some_and(|f| f.release.as_deref() == live)
                })
                .map(Report::describe)
                .collect(),
            unreadable: all.unreadable.clone(),
            summary: all.summary(),
            targets,
        }
    }

    /// Lines for `cutover status`, each indented.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.targets.is_empty() {
            out.push(format!("fleet: {}", self.summary));
        } else {
            for t in &self.targets {
                out.push(format!("fleet on {}: {}", t.target, t.summary));
            }
        }
        for r in &self.refused {
            out.push(format!("REFUSED: {r}"));
        }
        if !self.gone.is_empty() {
            let ids: Vec<String> = self.gone.iter().map(|g| g.id.clone()).collect();
            out.push(format!(
                "gone: {} silent for more than 3 heartbeats: {}",
                processes(self.gone.len()),
                crate::render::some(&ids, 10)
            ));
        }
        if !self.unreadable.is_empty() {
            out.push(format!(
                "unreadable reports: {}",
                crate::render::some(&self.unreadable, 10)
            ));
        }
        out
    }
}

fn groups(f: &Fleet) -> Vec<Group> {
    f.by_release()
        .into_iter()
        .map(|(release, reports)| Group {
            release: release.map(str::to_string),
            processes: reports.len(),
            ids: reports.iter().map(|r| r.id.clone()).collect(),
        })
        .collect()
}

/// `1 process`, `42 processes`.
pub fn processes(n: usize) -> String {
    if n == 1 {
        "1 process".into()
    } else {
        format!("{n} processes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, release: Option<&str>, at: i64) -> String {
        serde_json::json!({
            "v": 1, "id": id, "host": id.split(':').next().unwrap(), "pid": 1,
            "kind": "rails", "reader": "ruby/0.9.0", "release": release,
            "since": 0, "source": "poll", "heartbeat": 5, "at": at, "started": 0
        })
        .to_string()
    }

    #[test]
    fn processes_silent_for_three_heartbeats_are_gone_and_expired_ones_are_not_counted() {
        let now = 100_000;
        let fleet = Fleet::of(
            vec![
                ("a:1".into(), Some(report("a:1", Some("B"), now - 1_000))),
                ("a:2".into(), Some(report("a:2", Some("A"), now - 15_000))),
                ("a:3".into(), Some(report("a:3", Some("A"), now - 15_001))),
                ("a:4".into(), None),
                ("a:5".into(), Some("not json".into())),
            ],
            now,
        );
        let ids = |rs: &[Report]| rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&fleet.live), ["a:1", "a:2"]);
        assert_eq!(ids(&fleet.gone), ["a:3"]);
        assert_eq!(fleet.unreadable, ["a:5"]);
    }

    #[test]
    fn convergence_counts_live_processes_and_names_those_behind() {
        let now = 100_000;
        let members = |releases: &[Option<&str>]| {
            releases
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let id = format!("web-{i}:1");
                    let text = report(&id, *r, now);
                    (id, Some(text))
                })
                .collect::<Vec<_>>()
        };
        let fleet = Fleet::of(members(&[Some("B"), Some("B"), Some("A"), None]), now);
        let c = fleet.convergence("B");
        assert_eq!((c.processes, c.on_release), (4, 2));
        assert!(!c.converged());
        assert_eq!(c.behind, ["web-2:1 (on A)", "web-3:1 (on no release)"]);
        assert_eq!(c.progress(), "2/4 processes on B");
        assert_eq!(
            fleet.summary(),
            "4 processes: 2 on B, 1 on A (web-2:1), 1 on no release (web-3:1)"
        );
        assert!(Fleet::of(members(&[Some("B")]), now)
            .convergence("B")
            .converged());
        // Nobody reporting is not converged.
        assert!(!Fleet::default().convergence("B").converged());
        assert_eq!(
            Fleet::default().summary(),
            "no process reports what it serves"
        );
    }

    #[test]
    fn processes_serving_a_canary_are_counted_beside_their_live_release() {
        let now = 100_000;
        let with_canary = |id: &str, canary: Option<&str>| {
            let mut v: serde_json::Value =
                serde_json::from_str(&report(id, Some("A"), now - 1_000)).unwrap();
            v["canary"] = canary.map_or(serde_json::Value::Null, Into::into);
            (id.to_string(), Some(v.to_string()))
        };
        let fleet = Fleet::of(
            vec![
                with_canary("a:1", Some("C")),
                with_canary("a:2", Some("C")),
                with_canary("a:3", None),
            ],
            now,
        );
        assert_eq!(
            fleet.summary(),
            "3 processes: 3 on A; 2 also serve canary C"
        );
        let view = View::of(vec![(String::new(), fleet.clone())], Some("A"));
        assert_eq!(view.canaries.len(), 1);
        assert_eq!(view.canaries[0].processes, 2);
        // Prune keeps what a process serves as the canary too.
        assert!(fleet.serving().contains_key("C"));
    }

    #[test]
    fn a_refusal_is_part_of_the_description() {
        let mut r: Report = serde_json::from_str(&report("w:1", Some("A"), 0)).unwrap();
        r.refused = Some(Refused {
            release: Some("B".into()),
            reason: "unsigned".into(),
        });
        assert_eq!(r.describe(), "w:1 (on A, refused B: unsigned)");
    }
}
