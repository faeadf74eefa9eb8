//! Webhook notifications (`[[notify]]` in cutover.toml; docs/output.md,
//! "Notifications"): what a switching command tells a chat or an incident
//! tool once its outcome is known.
//!
//! Pure: which event a command's outcome ([`Notable`]) or error makes
//! ([`decide`]), the payload ([`Notice`]) and its two formats, which sinks
//! want it, and how a webhook URL (a secret) may be shown. Sending is
//! [`crate::store::notify`]'s.

use serde::Serialize;

/// What happened: the `event` of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A deploy or an activate switched the live release.
    Activated,
    RolledBack,
    Pinned,
    Unpinned,
    /// A promote switched the target environment's live release.
    Promoted,
    /// A switching command (deploy, activate, rollback, promote, pin,
    /// unpin) ended with a nonzero exit code.
    Failed,
    /// The fleet wait saw every process serve the release.
    Converged,
    /// The fleet wait ended with processes still behind.
    NotConverged,
    /// A rollout started: a canary serves a share of the requests.
    RolloutStarted,
    /// The running rollout's percent changed.
    RolloutChanged,
    /// The canary was taken off.
    RolloutAborted,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Activated,
        Kind::RolledBack,
        Kind::Pinned,
        Kind::Unpinned,
        Kind::Promoted,
        Kind::Failed,
        Kind::Converged,
        Kind::NotConverged,
        Kind::RolloutStarted,
        Kind::RolloutChanged,
        Kind::RolloutAborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Activated => "activated",
            Kind::RolledBack => "rolled_back",
            Kind::Pinned => "pinned",
            Kind::Unpinned => "unpinned",
            Kind::Promoted => "promoted",
            Kind::Failed => "failed",
            Kind::Converged => "converged",
            Kind::NotConverged => "not_converged",
            Kind::RolloutStarted => "rollout_started",
            Kind::RolloutChanged => "rollout_changed",
            Kind::RolloutAborted => "rollout_aborted",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Every name, comma-separated (for messages).
    pub fn names() -> String {
        Kind::ALL.map(Kind::as_str).join(", ")
    }
}

/// What a sink is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The payload, [`Notice`] (docs/output.md, "Notifications").
    #[default]
    Json,
    /// `{"text": "..."}`: one readable line (Slack's incoming webhooks,
    /// and the many tools that take the same shape).
    Slack,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        [Format::Json, Format::Slack]
            .into_iter()
            .find(|f| f.as_str() == name)
    }
}

/// One `[[notify]]` entry, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    /// The webhook URL (a secret). None: `url_env` names a variable that
    /// is not set, and this sink is skipped with a warning.
    pub url: Option<String>,
    /// The variable the URL came from (`url_env`).
    pub url_env: Option<String>,
    /// None: every event.
    pub events: Option<Vec<Kind>>,
    pub format: Format,
    /// Where the entry is (`cutover.toml:12`), for messages.
    pub origin: String,
}

impl Sink {
    pub fn wants(&self, kind: Kind) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&kind))
    }

    /// The sink as it may be shown: its URL masked, or the variable that
    /// is not set.
    pub fn shown(&self) -> String {
        match (&self.url, &self.url_env) {
            (Some(url), _) => masked(url),
            (None, Some(var)) => format!("${var}"),
            (None, None) => "<no URL>".into(),
        }
    }

    /// One line for `cutover config`: where it sends, what and which events.
    pub fn describe(&self) -> String {
        let from = match (&self.url, &self.url_env) {
            (Some(_), Some(var)) => format!(" (from {var})"),
            (None, Some(_)) => " (not set: skipped)".into(),
            _ => String::new(),
        };
        let events = match &self.events {
            None => "all".to_string(),
            Some(e) => e.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
        };
        format!(
            "{}{from}, format {}, events: {events}",
            self.shown(),
            self.format.as_str()
        )
    }

    /// A warning for a URL that sends the secret in clear: `http://` to a
    /// host other than loopback. Such URLs are allowed (a receiver inside
    /// a private network), never silently.
    pub fn cleartext_warning(&self) -> Option<String> {
        let url = url::Url::parse(self.url.as_deref()?).ok()?;
        if url.scheme() != "http" || is_loopback(&url) {
            return None;
        }
        Some(format!(
            "the webhook {} ({}) is plain http://: its URL, a secret, and the notification cross the network unencrypted; use https://",
            masked(url.as_str()),
            self.origin
        ))
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Check a webhook URL: `http(s)://host...`. Err says what was expected,
/// never quoting the URL.
pub fn check_url(raw: &str) -> Result<(), String> {
    match url::Url::parse(raw.trim()) {
        Ok(u) if !["http", "https"].contains(&u.scheme()) => {
            Err(format!("an https:// (or http://) URL, not {}://", u.scheme()))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            Err("an https:// (or http://) URL with a host".into())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "an https:// (or http://) URL; this one does not parse ({e}) and is not shown, it may be a secret"
        )),
    }
}

/// A webhook URL as it may be shown: scheme, host and port, the rest
/// (path, query, credentials: where webhooks keep their token) masked:
/// `https://hooks.slack.com/***`.
pub fn masked(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/***", u.scheme(), u.host_str().unwrap_or(""))
        }
        Err(_) => "<webhook URL>".into(),
    }
}

/// What of a webhook URL must never be printed (see
/// [`crate::error::register_secrets`]): everything after the host, as
/// given and as parsed (which may re-encode it), its credentials, and the
/// whole URL.
pub fn secrets(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    let after_host = |s: &str| -> Option<String> {
        let rest = s.split_once("://")?.1;
        let at = rest.find(['/', '?', '#'])?;
        Some(rest[at..].trim_start_matches('/').to_string())
    };
    let mut out = vec![raw.to_string()];
    out.extend(after_host(raw));
    if let Ok(u) = url::Url::parse(raw) {
        out.push(u.to_string());
        out.extend(after_host(u.as_str()));
        out.extend(u.password().map(str::to_string));
        out.extend(Some(u.username().to_string()).filter(|n| !n.is_empty()));
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The fleet's answer to a wait for convergence: how many processes
/// report, how many serve the release, and which do not (`HOST:PID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Convergence {
    pub processes: usize,
    pub on_release: usize,
    pub behind: Vec<String>,
}

impl From<&crate::fleet::Convergence> for Convergence {
    fn from(c: &crate::fleet::Convergence) -> Convergence {
        Convergence {
            processes: c.processes,
            on_release: c.on_release,
            behind: c.behind.clone(),
        }
    }
}

/// Who and where, the same for every notice of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The command that ran (`deploy`, `rollback`, ...).
    pub command: &'static str,
    pub app: Option<String>,
    /// `--env NAME` (for promote, the target), or none.
    pub environment: Option<String>,
    /// Who ran it (`deployed_by`: `--by`, the CI user, the OS user).
    pub who: Option<String>,
    /// The Redis targets, each as `host:port/db` (never credentials).
    pub targets: Vec<String>,
}

/// The note and the provenance a notice carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct About {
    /// The command's `--message` (for pin, the pin's).
    pub message: Option<String>,
    /// Of the release (its record); for `failed`, this run's settings.
    pub git_sha: Option<String>,
    pub build_url: Option<String>,
}

impl About {
    /// A command's `message`, and the git sha and CI build of the
    /// release's record.
    pub fn of(record: &crate::release::ReleaseRecord, message: Option<String>) -> About {
        About {
            message,
            git_sha: record.git_sha.clone(),
            build_url: record.build_url.clone(),
        }
    }
}

/// What a command did that a notification tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Happened {
    pub kind: Kind,
    /// The release made live, pinned, or (unpin) that was pinned.
    pub release: Option<String>,
    /// The release live before a switch.
    pub previous: Option<String>,
    pub about: About,
}

/// An outcome that may be worth a notification.
pub trait Notable {
    /// What to tell; None when nothing changed for the app's users (a dry
    /// run, "already live", a release recorded but not activated, a repair
    /// of the live release's keys, `unpin` when nothing was pinned).
    fn happened(&self) -> Option<Happened>;

    /// What a wait for the fleet after the switch saw, if the command
    /// waited: it adds a `converged` or `not_converged` notice ([`decide`]).
    fn convergence(&self) -> Option<Convergence> {
        None
    }
}

/// What the command line asked, for a notice about its failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempt {
    pub dry_run: bool,
    /// The release asked for (activate's and promote's `RELEASE`,
    /// rollback's `--to`), as typed.
    pub release: Option<String>,
    /// `--message`, and this run's git sha and CI build URL.
    pub about: About,
}

/// The payload (docs/output.md, "Notifications"); `v` changes only with
/// an incompatible change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub v: u8,
    pub event: Kind,
    pub command: &'static str,
    pub app: Option<String>,
    pub release: Option<String>,
    pub previous: Option<String>,
    pub who: Option<String>,
    pub message: Option<String>,
    pub git_sha: Option<String>,
    pub ci_build_url: Option<String>,
    pub environment: Option<String>,
    pub targets: Vec<String>,
    pub exit_code: u8,
    pub error: Option<String>,
    pub convergence: Option<Convergence>,
    /// RFC 3339, UTC.
    pub at: String,
}

/// The notices of one run of a switching command: what its outcome tells,
/// or `failed` when it ended with an error. Nothing for a dry run.
pub fn decide(
    subject: &Subject,
    attempt: &Attempt,
    result: Result<&dyn Notable, &anyhow::Error>,
    at: &str,
) -> Vec<Notice> {
    if attempt.dry_run {
        return Vec::new();
    }
    match result {
        Ok(outcome) => {
            let Some(switched) = outcome.happened().map(|h| Notice::new(subject, h, at)) else {
                return Vec::new();
            };
            let waited = outcome.convergence().map(|c| convergence(&switched, c));
            std::iter::once(switched).chain(waited).collect()
        }
        // Switched, but the fleet did not follow within --wait-converged.
        Err(e) => match e.downcast_ref::<crate::error::Failure>() {
            Some(crate::error::Failure::NotConverged { convergence, .. }) => {
                let failed = Notice::failed(
                    subject,
                    attempt,
                    crate::error::exit_code(e),
                    crate::error::one_line(e),
                    at,
                );
                vec![Notice {
                    event: Kind::NotConverged,
                    release: Some(convergence.release.clone()),
                    convergence: Some(convergence.into()),
                    ..failed
                }]
            }
            _ => vec![Notice::failed(
                subject,
                attempt,
                crate::error::exit_code(e),
                crate::error::one_line(e),
                at,
            )],
        },
    }
}

/// The notice of the fleet wait after `switched` (the notice of the switch):
/// `converged` when every process reporting serves its release, else
/// `not_converged`; the same app, release, environment and provenance.
pub fn convergence(switched: &Notice, convergence: Convergence) -> Notice {
    let all = convergence.behind.is_empty() && convergence.on_release == convergence.processes;
    Notice {
        event: if all {
            Kind::Converged
        } else {
            Kind::NotConverged
        },
        convergence: Some(convergence),
        ..switched.clone()
    }
}

impl Notice {
    pub fn new(subject: &Subject, happened: Happened, at: &str) -> Notice {
        let Happened {
            kind,
            release,
            previous,
            about,
        } = happened;
        Notice {
            v: 1,
            event: kind,
            command: subject.command,
            app: subject.app.clone(),
            release,
            previous,
            who: subject.who.clone(),
            message: about.message,
            git_sha: about.git_sha,
            ci_build_url: about.build_url,
            environment: subject.environment.clone(),
            targets: subject.targets.clone(),
            exit_code: 0,
            error: None,
            convergence: None,
            at: at.to_string(),
        }
    }

    /// `failed`: the command, its exit code and its one-line error.
    pub fn failed(
        subject: &Subject,
        attempt: &Attempt,
        exit_code: u8,
        error: String,
        at: &str,
    ) -> Notice {
        let happened = Happened {
            kind: Kind::Failed,
            release: attempt.release.clone(),
            previous: None,
            about: attempt.about.clone(),
        };
        Notice {
            exit_code,
            error: Some(error),
            ..Notice::new(subject, happened, at)
        }
    }

    /// The request body for a sink of `format`.
    pub fn body(&self, format: Format) -> String {
        match format {
            Format::Json => serde_json::to_string(self).expect("a notice serializes"),
            Format::Slack => serde_json::json!({ "text": self.text() }).to_string(),
        }
    }

    /// One readable line (Slack's mrkdwn: `&`, `<` and `>` escaped; the CI
    /// build as a link).
    pub fn text(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace(['\n', '\r'], " ")
        };
        let opt = |o: &Option<String>| esc(o.as_deref().unwrap_or("none"));
        let app = esc(self.app.as_deref().unwrap_or("cutover"));
        let env = self
            .environment
            .as_deref()
            .map(|e| format!(" ({})", esc(e)))
            .unwrap_or_default();
        let release = opt(&self.release);
        let what = match self.event {
            Kind::Activated => format!("release {release} is live (was {})", opt(&self.previous)),
            Kind::RolledBack => format!(
                "rolled back to {release} (from {}) and pinned",
                opt(&self.previous)
            ),
            Kind::Promoted => format!(
                "release {release} promoted: live (was {})",
                opt(&self.previous)
            ),
            Kind::Pinned => format!("pinned to {release}: deploys record but do not activate"),
            Kind::Unpinned => "unpinned: the next deploy activates".to_string(),
            Kind::RolloutStarted => format!(
                "rolling out {release} to a share of the requests; the others get {}",
                opt(&self.previous)
            ),
            Kind::RolloutChanged => format!("the rollout of {release} changed its share"),
            Kind::RolloutAborted => format!(
                "aborted the rollout of {release}: every request gets {}",
                opt(&self.previous)
            ),
            Kind::Failed => format!(
                "{} FAILED (exit {}): {}",
                self.command,
                self.exit_code,
                opt(&self.error)
            ),
            Kind::Converged | Kind::NotConverged => {
                let c = self.convergence.as_ref();
                let (n, on) = c.map_or((0, 0), |c| (c.processes, c.on_release));
                if self.event == Kind::Converged {
                    format!("all {n} processes serve {release}")
                } else {
                    let behind = c.map(|c| c.behind.as_slice()).unwrap_or_default();
                    format!(
                        "{} of {n} processes serve {release}; behind: {}",
                        on,
                        esc(&crate::render::some(behind, 5))
                    )
                }
            }
        };
        let mut line = format!("{app}{env}: {what}");
        if let Some(who) = &self.who {
            line.push_str(&format!(", by {}", esc(who)));
        }
        if let Some(m) = self.message.as_deref().filter(|m| !m.trim().is_empty()) {
            line.push_str(&format!(": \"{}\"", esc(m)));
        }
        if let Some(sha) = &self.git_sha {
            let short: String = sha.chars().take(12).collect();
            line.push_str(&format!(" (git {})", esc(&short)));
        }
        if let Some(url) = self
            .ci_build_url
            .as_deref()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        {
            line.push_str(&format!(" <{}|CI build>", esc(url).replace('|', "%7C")));
        }
        line
    }
}

/// How one notification went (`notifications` in `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The sink, masked ([`Sink::shown`]).
    pub url: String,
    pub event: Kind,
    pub ok: bool,
    pub error: Option<String>,
}

/// Every (sink, notice) pair to send: each sink gets the notices it wants.
pub fn pairs<'a>(sinks: &'a [Sink], notices: &'a [Notice]) -> Vec<(&'a Sink, &'a Notice)> {
    notices
        .iter()
        .flat_map(|n| {
            sinks
                .iter()
                .filter(|s| s.wants(n.event))
                .map(move |s| (s, n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Failure;

    const AT: &str = "2026-12-01T10:00:00Z";

    fn subject(command: &'static str) -> Subject {
        Subject {
            command,
            app: Some("shop".into()),
            environment: Some("production".into()),
            who: Some("alice".into()),
            targets: vec!["10.0.0.5:6379/0".into()],
        }
    }

    struct Did(Option<Happened>);
    impl Notable for Did {
        fn happened(&self) -> Option<Happened> {
            self.0.clone()
        }
    }

    /// A switch followed by a wait for the fleet.
    struct Waited(Convergence);
    impl Notable for Waited {
        fn happened(&self) -> Option<Happened> {
            Some(activated())
        }
        fn convergence(&self) -> Option<Convergence> {
            Some(self.0.clone())
        }
    }

    fn activated() -> Happened {
        Happened {
            kind: Kind::Activated,
            release: Some("3f2a9c0d1e2f3a4b".into()),
            previous: Some("1a2b3c4d5e6f7a8b".into()),
            about: About {
                message: Some("fix checkout".into()),
                git_sha: Some("9f8e7d6c5b4a39281706f5e4d3c2b1a098765432".into()),
                build_url: Some("https://ci.example/b/42".into()),
            },
        }
    }

    #[test]
    fn the_payload_has_every_documented_field_in_order() {
        let n = Notice::new(&subject("deploy"), activated(), AT);
        let v: serde_json::Value = serde_json::from_str(&n.body(Format::Json)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "v",
                "event",
                "command",
                "app",
                "release",
                "previous",
                "who",
                "message",
                "git_sha",
                "ci_build_url",
                "environment",
                "targets",
                "exit_code",
                "error",
                "convergence",
                "at"
            ]
        );
        assert_eq!(v["v"], 1);
        assert_eq!(v["event"], "activated");
        assert_eq!(v["release"], "3f2a9c0d1e2f3a4b");
        assert_eq!(v["previous"], "1a2b3c4d5e6f7a8b");
        assert_eq!(v["who"], "alice");
        assert_eq!(v["ci_build_url"], "https://ci.example/b/42");
        assert_eq!(v["environment"], "production");
        assert_eq!(v["targets"], serde_json::json!(["10.0.0.5:6379/0"]));
        assert_eq!(v["exit_code"], 0);
        assert!(v["error"].is_null() && v["convergence"].is_null());
    }

    #[test]
    fn an_outcome_tells_what_it_did_an_error_is_failed_a_dry_run_nothing() {
        let s = subject("activate");
        let attempt = Attempt {
            release: Some("3f2a".into()),
            about: About {
                git_sha: Some("abc".into()),
                ..About::default()
            },
            ..Attempt::default()
        };
        let did = Did(Some(activated()));
        let sent = decide(&s, &attempt, Ok(&did), AT);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].event, Kind::Activated);
        // Nothing happened (already live, recorded, ...): nothing sent.
        assert!(decide(&s, &attempt, Ok(&Did(None)), AT).is_empty());
        // An error: failed, with its exit code and its line.
        let err = Failure::refused("lock held by ci-42");
        let sent = decide(&s, &attempt, Err(&err), AT);
        assert_eq!(sent.len(), 1);
        let n = &sent[0];
        assert_eq!(
            (n.event, n.exit_code, n.error.as_deref()),
            (Kind::Failed, 3, Some("lock held by ci-42"))
        );
        assert_eq!(n.release.as_deref(), Some("3f2a"));
        assert_eq!(n.git_sha.as_deref(), Some("abc"));
        assert_eq!(n.command, "activate");
        // A dry run sends nothing, whatever its result.
        let dry = Attempt {
            dry_run: true,
            ..attempt
        };
        assert!(decide(&s, &dry, Ok(&did), AT).is_empty());
        assert!(decide(&s, &dry, Err(&err), AT).is_empty());
    }

    #[test]
    fn an_outcome_that_waited_for_the_fleet_tells_the_switch_then_the_wait() {
        let waited = Waited(Convergence {
            processes: 2,
            on_release: 1,
            behind: vec!["web-2:77".into()],
        });
        let sent = decide(&subject("deploy"), &Attempt::default(), Ok(&waited), AT);
        let kinds: Vec<Kind> = sent.iter().map(|n| n.event).collect();
        assert_eq!(kinds, [Kind::Activated, Kind::NotConverged]);
        assert_eq!(sent[0].convergence, None);
        assert_eq!(sent[1].convergence, Some(waited.0.clone()));
    }

    #[test]
    fn convergence_follows_the_switch() {
        let switched = Notice::new(&subject("deploy"), activated(), AT);
        let all = convergence(
            &switched,
            Convergence {
                processes: 4,
                on_release: 4,
                behind: vec![],
            },
        );
        assert_eq!(all.event, Kind::Converged);
        assert_eq!(all.release, switched.release);
        let some = convergence(
            &switched,
            Convergence {
                processes: 4,
                on_release: 3,
                behind: vec!["web-1:4242".into()],
            },
        );
        assert_eq!(some.event, Kind::NotConverged);
        let v: serde_json::Value = serde_json::from_str(&some.body(Format::Json)).unwrap();
        assert_eq!(
            v["convergence"],
            serde_json::json!({"processes": 4, "on_release": 3, "behind": ["web-1:4242"]})
        );
        assert!(
            some.text().contains("3 of 4 processes serve"),
            "{}",
            some.text()
        );
        assert!(some.text().contains("web-1:4242"));
    }

    #[test]
    fn slack_gets_one_escaped_line() {
        let mut h = activated();
        h.about.message = Some("<b>fix</b> & ship\nnow".into());
        let n = Notice::new(&subject("deploy"), h, AT);
        let v: serde_json::Value = serde_json::from_str(&n.body(Format::Slack)).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        let text = v["text"].as_str().unwrap();
        assert_eq!(
            text,
            "shop (production): release 3f2a9c0d1e2f3a4b is live (was 1a2b3c4d5e6f7a8b), by alice: \
             \"&lt;b&gt;fix&lt;/b&gt; &amp; ship now\" (git 9f8e7d6c5b4a) <https://ci.example/b/42|CI build>"
        );
        let failed = Notice::failed(
            &subject("rollback"),
            &Attempt::default(),
            2,
            "no release".into(),
            AT,
        );
        assert_eq!(
            failed.text(),
            "shop (production): rollback FAILED (exit 2): no release, by alice"
        );
    }

    #[test]
    fn sinks_filter_events_and_show_only_scheme_and_host() {
        let sink = Sink {
            url: Some("https://hooks.slack.com/services/T0/B0/SeCrEt".into()),
            url_env: Some("SLACK_WEBHOOK_URL".into()),
            events: Some(vec![Kind::Failed]),
            format: Format::Slack,
            origin: "cutover.toml:3".into(),
        };
        assert!(sink.wants(Kind::Failed) && !sink.wants(Kind::Activated));
        assert_eq!(sink.shown(), "https://hooks.slack.com/***");
        assert_eq!(
            sink.describe(),
            "https://hooks.slack.com/*** (from SLACK_WEBHOOK_URL), format slack, events: failed"
        );
        assert_eq!(masked("http://127.0.0.1:9/x?t=1"), "http://127.0.0.1:9/***");
        assert_eq!(masked("http://u:p@[::1]:9/x"), "http://[::1]:9/***");
        let unset = Sink {
            url: None,
            events: None,
            ..sink.clone()
        };
        assert_eq!(unset.shown(), "$SLACK_WEBHOOK_URL");
        assert!(unset.wants(Kind::Converged));
        let n = Notice::new(&subject("pin"), activated(), AT);
        let notices = [n];
        assert_eq!(pairs(&[sink.clone(), unset.clone()], &notices).len(), 1);
    }

    #[test]
    fn every_part_of_a_url_after_its_host_is_a_secret() {
        let s = secrets("https://user:PassWord1@hooks.example.com/services/T0/B0/Tok%20en?x=1");
        assert!(
            s.contains(&"services/T0/B0/Tok%20en?x=1".to_string()),
            "{s:?}"
        );
        assert!(s.contains(&"PassWord1".to_string()));
        crate::error::register_secrets(secrets(
            "https://hooks.example.com/services/T1/B1/PlantedTok",
        ));
        assert_eq!(
            crate::error::redact("POST https://hooks.example.com/services/T1/B1/PlantedTok failed"),
            "POST *** failed"
        );
        assert_eq!(
            crate::error::redact("to hooks.example.com/services/T1/B1/PlantedTok"),
            "to hooks.example.com/***"
        );
    }

    #[test]
    fn urls_are_checked_without_being_quoted_and_cleartext_is_warned() {
        assert!(check_url("https://hooks.slack.com/services/x").is_ok());
        let bad = check_url("ftp://secret-host/SeCrEt").unwrap_err();
        assert!(!bad.contains("SeCrEt") && bad.contains("ftp://"), "{bad}");
        let bad = check_url("not a url SeCrEt").unwrap_err();
        assert!(!bad.contains("SeCrEt"), "{bad}");
        let sink = |url: &str| Sink {
            url: Some(url.into()),
            url_env: None,
            events: None,
            format: Format::Json,
            origin: "cutover.toml:1".into(),
        };
        assert!(sink("http://127.0.0.1:8080/h")
            .cleartext_warning()
            .is_none());
        assert!(sink("http://localhost/h").cleartext_warning().is_none());
        assert!(sink("https://hooks.example/h")
            .cleartext_warning()
            .is_none());
        let w = sink("http://alerts.internal/h/SeCrEt")
            .cleartext_warning()
            .unwrap();
        assert!(
            w.contains("http://alerts.internal/***") && !w.contains("SeCrEt"),
            "{w}"
        );
    }

    #[test]
    fn kinds_and_formats_parse_from_their_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        assert_eq!(Kind::parse("deployed"), None);
        assert_eq!(Format::parse("slack"), Some(Format::Slack));
        assert_eq!(Format::parse("teams"), None);
    }
}
