//! Progress on stderr, drawn from pipeline [`Event`]s: bars on a terminal,
//! a plain line every few seconds in CI or without a terminal, or nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, Observer, Phase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Lines,
    Off,
}

/// How progress is shown: bars only on a terminal outside CI; plain lines
/// otherwise; nothing with `--quiet`. Warnings are printed in every mode.
pub fn mode(stderr_is_terminal: bool, ci: bool, quiet: bool) -> Mode {
    if quiet {
        Mode::Off
    } else if stderr_is_terminal && !ci {
        Mode::Bars
    } else {
        Mode::Lines
    }
}

/// `annotate`: warnings become GitHub Actions annotations (`::warning::`),
/// for `GITHUB_ACTIONS=true`.
pub fn observer(mode: Mode, annotate: bool) -> Arc<dyn Observer> {
    let log = Log { annotate };
    match mode {
        Mode::Bars => Arc::new(Bars::new(ProgressDrawTarget::stderr(), log)),
        Mode::Lines => Arc::new(Lines::new(Duration::from_secs(3), log)),
        Mode::Off => Arc::new(LogOnly(log)),
    }
}

/// How warnings and infos are written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Log {
    annotate: bool,
}

impl Log {
    /// The line for a warning or an info; None for progress.
    fn line(&self, event: &Event) -> Option<String> {
        match event {
            // A workflow command: `%`, CR and LF are escaped as GitHub wants.
            Event::Warning(w) if self.annotate => Some(format!(
                "::warning::{}",
                w.replace('%', "%25")
                    .replace('\r', "%0D")
                    .replace('\n', "%0A")
            )),
            Event::Warning(w) => Some(format!("warning: {w}")),
            Event::Info(i) => Some(i.clone()),
            _ => None,
        }
    }

    fn print(&self, event: &Event) {
        if let Some(line) = self.line(event) {
            eprintln!("{line}");
        }
    }
}

/// Only warnings and infos.
struct LogOnly(Log);

impl Observer for LogOnly {
    fn event(&self, event: Event) {
        self.0.print(&event);
    }
}

/// Bars on a terminal: one per running phase. A finished phase's bar is
/// cleared and replaced by one summary line, so nothing stale stays behind.
struct Bars {
    multi: MultiProgress,
    running: Mutex<Vec<(PhaseState, ProgressBar)>>,
    /// The fleet's bar while `--wait-converged` waits.
    fleet: Mutex<Option<ProgressBar>>,
    log: Log,
}

impl Bars {
    fn new(target: ProgressDrawTarget, log: Log) -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(target),
            running: Mutex::default(),
            fleet: Mutex::default(),
            log,
        }
    }

    fn bar(&self, phase: Phase, files: u64, bytes: u64) -> ProgressBar {
        let bar = if phase == Phase::Listing {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix:>9} {pos} objects {elapsed}")
                    .expect("a valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        } else {
            let b = ProgressBar::new(bytes.max(1));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {msg} {binary_bytes_per_sec} ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            b.set_message(format!("0/{files} files"));
            b
        };
        let bar = self.multi.add(bar);
        bar.set_prefix(phase.to_string());
        bar
    }

    fn say(&self, line: String) {
        let _ = self.multi.println(line);
    }
}

impl Observer for Bars {
    fn event(&self, event: Event) {
        let mut running = self.running.lock().unwrap();
        match event {
            Event::Started {
                phase,
                files,
                bytes,
            } => {
                // A phase that starts again (a second listing) replaces its bar.
                if let Some(i) = running.iter().position(|(s, _)| s.phase == phase) {
                    running.remove(i).1.finish_and_clear();
                }
                let bar = self.bar(phase, files, bytes);
                running.push((PhaseState::new(phase, files, bytes), bar));
            }
            Event::Advanced {
                phase,
                files,
                bytes,
            } => {
                if let Some((s, b)) = running.iter_mut().find(|(s, _)| s.phase == phase) {
                    s.files += files;
                    s.bytes += bytes;
                    if phase == Phase::Listing {
                        b.set_position(s.files);
                    } else {
                        b.set_position(s.bytes);
                        b.set_message(format!("{}/{} files", s.files, s.total_files));
                    }
                }
            }
            Event::Finished { phase } => {
                if let Some(i) = running.iter().position(|(s, _)| s.phase == phase) {
                    let (state, bar) = running.remove(i);
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                    self.say(line(&state, true));
                }
            }
            Event::Converging { on, of, serves } => {
                let mut fleet = self.fleet.lock().unwrap();
                let bar = fleet.get_or_insert_with(|| {
                    let b = ProgressBar::new(of.max(1));
                    b.set_style(
                        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {msg}")
                            .expect("a valid template")
                            .progress_chars("=> "),
                    );
                    b.set_prefix("fleet");
                    self.multi.add(b)
                });
                bar.set_length(of.max(1));
                bar.set_position(on);
                bar.set_message(converging(on, of, &serves));
                if of > 0 && on == of {
                    bar.finish_and_clear();
                    self.multi.remove(bar);
                    *fleet = None;
                    self.say(format!("fleet: {}", converging(on, of, &serves)));
                }
            }
            other => {
                if let Some(line) = self.log.line(&other) {
                    self.say(line);
                }
            }
        }
    }
}

/// `31/42 processes on B`
/// `31/42 processes on B` (`serves`: "on B", "serving canary B", ...).
fn converging(on: u64, of: u64, serves: &str) -> String {
    format!("{on}/{of} processes {serves}")
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some(bar) = self.fleet.lock().unwrap().take() {
            bar.finish_and_clear();
        }
        for (_, bar) in self.running.lock().unwrap().drain(..) {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

struct PhaseState {
    phase: Phase,
    files: u64,
    bytes: u64,
    total_files: u64,
    total_bytes: u64,
    started: Instant,
    last_print: Instant,
}

/// Plain lines, at most one per `every` per phase, plus one when a phase ends.
pub struct Lines {
    every: Duration,
    state: Mutex<Vec<PhaseState>>,
    /// The fleet's last count printed (`--wait-converged`): a line when it changes.
    fleet: Mutex<Option<(u64, u64)>>,
    log: Log,
}

impl PhaseState {
    fn new(phase: Phase, files: u64, bytes: u64) -> PhaseState {
        let now = Instant::now();
        PhaseState {
            phase,
            files: 0,
            bytes: 0,
            total_files: files,
            total_bytes: bytes,
            started: now,
            last_print: now,
        }
    }
}

impl Lines {
    pub fn new(every: Duration, log: Log) -> Lines {
        Lines {
            every,
            state: Mutex::new(Vec::new()),
            fleet: Mutex::default(),
            log,
        }
    }
}

fn line(s: &PhaseState, done: bool) -> String {
    let secs = s.started.elapsed().as_secs_f64().max(0.001);
    if s.phase == Phase::Listing {
        return format!(
            "{}: {} objects{} ({secs:.1}s)",
            s.phase,
            s.files,
            if done { ", done" } else { "" }
        );
    }
    let rate = s.bytes as f64 / secs;
    let eta = if done || rate <= 0.0 {
        String::new()
    } else {
        format!(
            ", ETA {:.0}s",
            (s.total_bytes.saturating_sub(s.bytes)) as f64 / rate
        )
    };
    format!(
        "{}: {}/{} files, {}/{}, {}/s{eta}{}",
        s.phase,
        s.files,
        s.total_files,
        HumanBytes(s.bytes),
        HumanBytes(s.total_bytes),
        HumanBytes(rate as u64),
        if done {
            format!(", done in {secs:.1}s")
        } else {
            String::new()
        }
    )
}

impl Observer for Lines {
    fn event(&self, event: Event) {
        let mut state = self.state.lock().unwrap();
        match event {
            Event::Started {
                phase,
                files,
                bytes,
            } => {
                state.retain(|s| s.phase != phase);
                state.push(PhaseState::new(phase, files, bytes));
            }
            Event::Advanced {
                phase,
                files,
                bytes,
            } => {
                if let Some(s) = state.iter_mut().find(|s| s.phase == phase) {
                    s.files += files;
                    s.bytes += bytes;
                    if s.last_print.elapsed() >= self.every {
                        s.last_print = Instant::now();
                        eprintln!("{}", line(s, false));
                    }
                }
            }
            Event::Finished { phase } => {
                if let Some(s) = state.iter().find(|s| s.phase == phase) {
                    eprintln!("{}", line(s, true));
                }
            }
            Event::Converging { on, of, serves } => {
                let mut last = self.fleet.lock().unwrap();
                if *last != Some((on, of)) {
                    *last = Some((on, of));
                    eprintln!("fleet: {}", converging(on, of, &serves));
                }
            }
            other => self.log.print(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deploy's phases drawn on a terminal: two listings (the bucket, then
    /// a release's prefix), hashing and uploading, then the observer is dropped.
    fn draw_a_deploy() -> String {
        use indicatif::InMemoryTerm;
        let term = InMemoryTerm::new(40, 120);
        {
            let bars = Bars::new(
                ProgressDrawTarget::term_like(Box::new(term.clone())),
                Log::default(),
            );
            for _ in 0..2 {
                bars.event(Event::Started {
                    phase: Phase::Listing,
                    files: 0,
                    bytes: 0,
                });
                bars.event(Event::Advanced {
                    phase: Phase::Listing,
                    files: 7,
                    bytes: 0,
                });
                bars.event(Event::Finished {
                    phase: Phase::Listing,
                });
            }
            for phase in [Phase::Hashing, Phase::Uploading] {
                bars.event(Event::Started {
                    phase,
                    files: 2,
                    bytes: 2048,
                });
                bars.event(Event::Advanced {
                    phase,
                    files: 2,
                    bytes: 2048,
                });
                bars.event(Event::Finished { phase });
            }
            bars.event(Event::Warning("careful".into()));
        }
        term.contents()
    }

    #[test]
    fn bars_leave_no_spinner_behind_and_say_each_phase_once() {
        let screen = draw_a_deploy();
        assert!(!screen.contains("0 objects"), "a stale spinner: {screen}");
        assert_eq!(
            screen.matches("listing: 7 objects, done").count(),
            2,
            "{screen}"
        );
        assert_eq!(screen.matches("hashing: 2/2 files").count(), 1, "{screen}");
        assert_eq!(
            screen.matches("uploading: 2/2 files").count(),
            1,
            "{screen}"
        );
        assert!(screen.contains("warning: careful"), "{screen}");
        assert!(!screen.contains('['), "no bar is left drawn: {screen}");
    }

    #[test]
    fn warnings_are_annotations_under_github_actions() {
        let warning = Event::Warning("pinned".into());
        assert_eq!(
            Log { annotate: true }.line(&warning).unwrap(),
            "::warning::pinned"
        );
        assert_eq!(Log::default().line(&warning).unwrap(), "warning: pinned");
        let progress = Event::Finished {
            phase: Phase::Listing,
        };
        assert_eq!(Log { annotate: true }.line(&progress), None);
    }

    #[test]
    fn mode_decision() {
        assert_eq!(mode(true, false, false), Mode::Bars);
        assert_eq!(mode(true, true, false), Mode::Lines);
        assert_eq!(mode(false, false, false), Mode::Lines);
        assert_eq!(mode(true, false, true), Mode::Off);
    }

    #[test]
    fn plain_line_has_counts_rate_and_no_carriage_return() {
        let now = Instant::now();
        let s = PhaseState {
            phase: Phase::Uploading,
            files: 3,
            bytes: 2048,
            total_files: 10,
            total_bytes: 4096,
            started: now,
            last_print: now,
        };
        let l = line(&s, false);
        assert!(
            l.starts_with("uploading: 3/10 files, 2.00 KiB/4.00 KiB, "),
            "{l}"
        );
        assert!(l.contains("/s, ETA") && !l.contains('\r'), "{l}");
    }
}
