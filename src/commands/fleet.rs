//! `cutover fleet`: every reader process that reports what it serves
//! (docs/redis.md, "The fleet"), live and gone, read-only.

use serde::Serialize;

use super::{Ctx, Head};
use crate::render::{table, Render};
use crate::store::registries::Registries;

/// `cutover fleet`: every process that reports, live and gone.
#[derive(Debug, Serialize)]
pub struct FleetList {
    #[serde(flatten)]
    pub head: Head,
    pub processes: Vec<ProcessRow>,
}

#[derive(Debug, Serialize)]
pub struct ProcessRow {
    /// `live`, or `gone` (silent for more than 3 heartbeats).
    pub state: &'static str,
    /// The Redis target it reports to, with several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(flatten)]
    pub report: crate::fleet::Report,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<FleetList> {
    let head = ctx.head("fleet", None)?;
    let mut redis = Registries::connect(&ctx.config).await?;
    let several = redis.several();
    let mut processes = Vec::new();
    for (target, f) in redis.fleets().await? {
        let target = several.then_some(target);
        for (state, reports) in [("live", f.live), ("gone", f.gone)] {
            processes.extend(reports.into_iter().map(|report| ProcessRow {
                state,
                target: target.clone(),
                report,
            }));
        }
    }
    Ok(FleetList { head, processes })
}

impl Render for FleetList {
    fn text(&self) -> String {
        if self.processes.is_empty() {
            return format!(
                "no process of {} reports what it serves (readers report unless reporting is off or their Redis user may not write the fleet keys: docs/redis.md, \"The fleet\")\n",
                self.head.app
            );
        }
        let now = crate::release::now().1;
        let several = self.processes.iter().any(|p| p.target.is_some());
        let mut header = vec![
            "PROCESS", "STATE", "KIND", "RELEASE", "SOURCE", "REPORTED", "READER", "REFUSED",
        ];
        if several {
            header.push("TARGET");
        }
        let rows: Vec<Vec<String>> = self
            .processes
            .iter()
            .map(|p| {
                let r = &p.report;
                let mut row = vec![
                    r.id.clone(),
                    p.state.to_string(),
                    r.kind.clone(),
                    r.release.clone().unwrap_or_else(|| "-".into()),
                    r.source.clone().unwrap_or_else(|| "-".into()),
                    format!("{:.0}s ago", ((now - r.at).max(0) as f64) / 1000.0),
                    r.reader.clone(),
                    r.refused
                        .as_ref()
                        .map(|f| {
                            format!(
                                "{}: {}",
                                f.release.as_deref().unwrap_or("a canary"),
                                f.reason
                            )
                        })
                        .unwrap_or_else(|| "-".into()),
                ];
                if several {
                    row.push(p.target.clone().unwrap_or_default());
                }
                row
            })
            .collect();
        table(&header, &rows)
    }
}
