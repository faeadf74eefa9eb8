//! The binary's front: parse arguments, load the configuration, run one
//! command, print its outcome (text or JSON) and map it to an exit code.

pub mod args;
pub mod progress;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use serde_json::json;

use crate::commands::{
    deploy, diff, doctor, inspect, pin, promote, prune, settings, switch, unlock, verify, Ctx,
};
use crate::config::{self, FileSource};
use crate::error::{exit_code, one_line, Failure};
use crate::events::Event;
use crate::notify;
use crate::render::Render;
use args::{Cli, Command};

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // One TLS crypto provider for every client (S3, Redis, the CDN check).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    crate::error::register_secrets(
        [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "CUTOVER_REDIS_SENTINEL_PASSWORD",
        ]
        .into_iter()
        .filter_map(|v| std::env::var(v).ok()),
    );
    // A signing key given inline: its base64 lines.
    crate::error::register_secrets(
        std::env::var("CUTOVER_SIGNING_KEY")
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("-----"))
            .map(str::to_string)
            .collect::<Vec<_>>(),
    );
    crate::error::install_panic_hook();
    let (cli, flags) = match args::parse(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(e) => {
            // --help and --version print and exit 0; usage errors exit 2,
            // with the error document on stdout under `--json`.
            let _ = e.print();
            let code = e.exit_code();
            if code != 0 && asks_for_json(std::env::args_os()) {
                // The error's first paragraph, on one line ("... were not
                // provided: <DIR>"), without the usage and tips after it.
                let rendered = e.render().to_string();
                let line = rendered
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ");
                let line = line.strip_prefix("error: ").unwrap_or(&line);
                println!("{}", json!({"error": line, "exit_code": code}));
            }
            return ExitCode::from(code as u8);
        }
    };
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                json,
                &anyhow::anyhow!("cannot start the async runtime: {e}"),
                &[],
            )
        }
    };
    let code = runtime.block_on(run(cli, flags));
    // Don't wait for background tasks (the lock renewer) to notice.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

async fn run(cli: Cli, flags: config::FlagValues) -> ExitCode {
    let json = cli.global.json;
    if let Command::Promote(a) = &cli.command {
        let (source, target) = match promote_contexts(&cli, &flags, &a.from, &a.to) {
            Ok(contexts) => contexts,
            Err(e) => return fail(json, &e, &[]),
        };
        let mut switch = switch_request(a.switch.clone());
        switch.verify_cdn = a.verify_cdn;
        let req = promote::Request {
            release: a.release.clone(),
            from: a.from.clone(),
            to: a.to.clone(),
            switch,
        };
        // The target's webhooks: it is where something changes.
        let attempt = attempt(
            &target,
            a.switch.dry_run,
            Some(a.release.clone()),
            a.switch.message.clone(),
        );
        let result = promote::run(&source, &target, req).await;
        return finish(&target, json, "promote", attempt, result).await;
    }
    // The policy of promote between two environments reads both.
    if let Command::Policy(a) = &cli.command {
        if let (Some(from), Some(to)) = (&a.from, &a.to) {
            let result = promote_contexts(&cli, &flags, from, to).and_then(|(source, target)| {
                crate::commands::policy::run_promote(
                    &source.config,
                    &target.config,
                    a.role,
                    a.format,
                    a.wait,
                )
            });
            return emit(json, result);
        }
    }
    // A key pair needs no configuration.
    if let Command::Keygen(a) = &cli.command {
        return emit(json, crate::commands::keygen::run(Some(&a.out)));
    }
    let ctx = match context(&cli, &flags) {
        Ok(ctx) => ctx,
        Err(e) => return fail(json, &e, &[]),
    };
    match cli.command {
        Command::Deploy(a) => {
            let attempt = attempt(&ctx, a.dry_run, None, a.message.clone());
            let req = deploy::Request {
                dir: a.dir,
                dry_run: a.dry_run,
                no_activate: a.no_activate,
                force: a.force,
                message: a.message,
                verify_cdn: a.verify_cdn,
                allow_older: a.allow_older,
                rollout: a.rollout,
                wait: a.wait,
                no_redis: a.no_redis,
                timings: a.timings,
            };
            let result = deploy::run(&ctx, req).await;
            finish(&ctx, json, "deploy", attempt, result).await
        }
        Command::Activate(a) => {
            let attempt = attempt(
                &ctx,
                a.switch.dry_run,
                Some(a.release.clone()),
                a.switch.message.clone(),
            );
            let mut req = switch_request(a.switch);
            req.unpin = a.unpin;
            req.verify_cdn = a.verify_cdn;
            req.allow_older = a.allow_older;
            let result = switch::activate(&ctx, &a.release, req).await;
            finish(&ctx, json, "activate", attempt, result).await
        }
        Command::Rollback(a) => {
            let attempt = attempt(
                &ctx,
                a.switch.dry_run,
                a.to.clone(),
                a.switch.message.clone(),
            );
            let result = switch::rollback(&ctx, a.to.as_deref(), switch_request(a.switch)).await;
            finish(&ctx, json, "rollback", attempt, result).await
        }
        Command::Rollout(a) => rollout(&ctx, json, a).await,
        Command::Status => emit(json, inspect::status(&ctx).await),
        Command::Fleet => emit(json, crate::commands::fleet::run(&ctx).await),
        Command::Releases(a) => emit(json, inspect::releases(&ctx, a.limit).await),
        Command::History(a) => emit(json, inspect::history(&ctx, a.limit).await),
        Command::Diff(a) => emit(
            json,
            diff::run(&ctx, a.from.as_deref(), a.to.as_deref()).await,
        ),
        Command::Pin(a) => {
            let attempt = attempt(&ctx, a.dry_run, None, a.message.clone());
            let req = pin::Request {
                dry_run: a.dry_run,
                message: a.message,
            };
            let result = pin::run(&ctx, true, req).await;
            finish(&ctx, json, "pin", attempt, result).await
        }
        Command::Unpin(a) => {
            let attempt = attempt(&ctx, a.dry_run, None, None);
            let req = pin::Request {
                dry_run: a.dry_run,
                message: None,
            };
            let result = pin::run(&ctx, false, req).await;
            finish(&ctx, json, "unpin", attempt, result).await
        }
        Command::Prune(a) => {
            let req = prune::Request {
                options: crate::plan::prune::PruneOptions {
                    keep: a.keep,
                    keep_days: a.keep_days,
                    grace_ms: a.grace as i64 * 1000,
                    include_unreferenced: a.include_unreferenced,
                },
                max_delete: a.max_delete,
                dry_run: a.dry_run,
            };
            emit(json, prune::run(&ctx, req).await)
        }
        Command::Verify(a) => {
            let req = verify::Request {
                release: a.release,
                cdn: a.cdn,
                sample: a.sample,
                read: a.read,
            };
            emit(json, verify::run(&ctx, req).await)
        }
        Command::Config => emit(json, Ok(settings::run(&ctx))),
        Command::Policy(a) => emit(
            json,
            crate::commands::policy::run(&ctx.config, a.role, a.format, a.wait),
        ),
        Command::Promote(_) => unreachable!("promote runs with two contexts, above"),
        Command::Keygen(_) => unreachable!("keygen runs without a context, above"),
        Command::Doctor(a) => emit(json, doctor::run(&ctx, a.dir.as_deref()).await),
        Command::Unlock(a) => {
            let req = unlock::Request {
                force: a.force,
                dry_run: a.dry_run,
            };
            emit(json, unlock::run(&ctx, req).await)
        }
    }
}

/// `cutover rollout`: `complete` is a switch; a release starts a rollout;
/// nothing (or `abort`) changes the running one. Flags that do not fit
/// what was asked are usage errors (exit 2).
async fn rollout(ctx: &Ctx, json: bool, a: args::RolloutArgs) -> ExitCode {
    use crate::commands::rollout as cmd;
    use crate::plan::rollout::Ask;
    let usage = |msg: &str| emit::<cmd::Outcome>(json, Err(crate::error::Failure::input(msg)));
    let what = a.what.as_deref();
    let release = what.filter(|w| !matches!(*w, "complete" | "abort"));
    let attempt = attempt(
        ctx,
        a.switch.dry_run,
        release.map(str::to_string),
        a.switch.message.clone(),
    );
    let only_complete = a.verify_cdn || a.switch.force || a.switch.wait;
    if only_complete && what != Some("complete") {
        return usage("--verify-cdn, --force and --wait apply to `cutover rollout complete` only");
    }
    let req = cmd::Request {
        dry_run: a.switch.dry_run,
        message: a.switch.message.clone(),
        allow_older: a.allow_older,
    };
    let result = match (what, a.percent) {
        (Some("complete"), None) => {
            let mut sw = switch_request(a.switch);
            sw.verify_cdn = a.verify_cdn;
            let result = switch::complete(ctx, sw).await;
            return finish(ctx, json, "rollout", attempt, result).await;
        }
        (Some("abort"), None) => cmd::change(ctx, Ask::Abort, req).await,
        (Some("complete" | "abort"), Some(_)) => {
            return usage("`cutover rollout complete` and `abort` take no --percent")
        }
        (Some(id), Some(p)) => cmd::start(ctx, id, p, req).await,
        (None, Some(p)) => cmd::change(ctx, Ask::Set(p), req).await,
        (_, None) => {
            return usage(
                "give --percent N: `cutover rollout RELEASE --percent 5` starts a rollout, `cutover rollout --percent 25` changes the running one",
            )
        }
    };
    finish(ctx, json, "rollout", attempt, result).await
}

fn switch_request(f: args::SwitchFlags) -> switch::Request {
    switch::Request {
        dry_run: f.dry_run,
        force: f.force,
        message: f.message,
        unpin: false,
        verify_cdn: false,
        wait: f.wait,
        allow_older: false,
    }
}

fn context(cli: &Cli, flags: &config::FlagValues) -> anyhow::Result<Ctx> {
    let file = config_file(cli)?;
    let env = |k: &str| std::env::var(k).ok();
    let config = config::load(flags, &env, file.as_ref())?;
    crate::error::register_secrets(config.secrets());
    Ok(with_config(cli, config))
}

fn config_file(cli: &Cli) -> anyhow::Result<Option<FileSource>> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::input(format!("cannot read the working directory: {e}")))?;
    FileSource::read(cli.global.config.as_deref(), &cwd)
}

/// The source's and the target's contexts of `promote`.
fn promote_contexts(
    cli: &Cli,
    flags: &config::FlagValues,
    from: &str,
    to: &str,
) -> anyhow::Result<(Ctx, Ctx)> {
    if cli.global.environment.is_some() || std::env::var("CUTOVER_ENV").is_ok_and(|v| !v.is_empty())
    {
        return Err(Failure::input(
            "promote takes its environments from --from and --to; drop --env (and CUTOVER_ENV)",
        ));
    }
    if from == to {
        return Err(Failure::input(format!(
            "--from and --to are both {from:?}; promote moves a release between two environments"
        )));
    }
    let file = config_file(cli)?;
    let env = |k: &str| std::env::var(k).ok();
    let (source, target) = config::load_pair(flags, &env, file.as_ref(), from, to)?;
    crate::error::register_secrets(source.secrets().into_iter().chain(target.secrets()));
    Ok((with_config(cli, source), with_config(cli, target)))
}

fn with_config(cli: &Cli, config: config::Config) -> Ctx {
    let mode = progress::mode(
        std::io::stderr().is_terminal(),
        std::env::var_os("CI").is_some(),
        cli.global.quiet,
    );
    let observer = progress::observer(
        mode,
        std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
    );
    if cli.global.verbose {
        for note in &config.notes {
            eprintln!("note: {note}");
        }
    }
    if config.redis_tls_insecure || config.redis_urls.iter().any(|u| u.ends_with("#insecure")) {
        observer.event(crate::events::Event::Warning(
            "Redis TLS certificate verification is OFF (redis_tls_insecure or #insecure): whoever sits between cutover and Redis can read and change what it sends; prefer redis_ca_file with your provider's CA certificate".into(),
        ));
    }
    Ctx {
        config,
        observer,
        verbose: cli.global.verbose,
    }
}

/// What a switching command's failure notice says besides the error:
/// the release asked for, `--message`, and this run's git sha and CI build.
fn attempt(
    ctx: &Ctx,
    dry_run: bool,
    release: Option<String>,
    message: Option<String>,
) -> notify::Attempt {
    notify::Attempt {
        dry_run,
        release,
        about: notify::About {
            message,
            git_sha: ctx.config.git_sha.clone(),
            build_url: ctx.config.build_url.clone(),
        },
    }
}

/// Print a switching command's outcome (or error), and tell the webhooks
/// (`[[notify]]`) what it did: with `--json` first, since the document
/// says how each notification went; in text after the result. A
/// notification never changes the exit code.
async fn finish<T: Render + notify::Notable>(
    ctx: &Ctx,
    json: bool,
    command: &'static str,
    attempt: notify::Attempt,
    result: anyhow::Result<T>,
) -> ExitCode {
    let config = &ctx.config;
    let subject = notify::Subject {
        command,
        app: config.app.clone(),
        environment: config.environment.clone(),
        who: config.deployed_by.clone(),
        targets: ctx.redis_targets(),
    };
    let outcome = result.as_ref().map(|o| o as &dyn notify::Notable);
    let notices = notify::decide(&subject, &attempt, outcome, &crate::release::now().0);
    if notices.is_empty() || config.notify.is_empty() {
        return emit(json, result);
    }
    if json {
        let deliveries = tell(ctx, &notices).await;
        return emit_with(json, result, &deliveries);
    }
    let code = emit(json, result);
    tell(ctx, &notices).await;
    code
}

/// Send the notices to the webhooks that want them (bounded: see
/// [`crate::store::notify::BOUND`]); a signal abandons them. Each failure
/// is a warning; at `-v` each success a note.
async fn tell(ctx: &Ctx, notices: &[notify::Notice]) -> Vec<notify::Delivery> {
    let sinks = &ctx.config.notify;
    let pairs = notify::pairs(sinks, notices);
    for sink in sinks
        .iter()
        .filter(|s| pairs.iter().any(|(p, _)| std::ptr::eq(*p, *s)))
    {
        if let Some(w) = sink.cleartext_warning() {
            ctx.observer.event(Event::Warning(w));
        }
    }
    let mut shutdown = crate::exec::Shutdown::listen();
    let deliveries = tokio::select! {
        d = crate::store::notify::send(sinks, notices) => d,
        _ = shutdown.signalled() => pairs
            .iter()
            .map(|(sink, notice)| notify::Delivery {
                url: sink.shown(),
                event: notice.event,
                ok: false,
                error: Some("abandoned: interrupted".into()),
            })
            .collect(),
    };
    for d in &deliveries {
        match &d.error {
            Some(e) => ctx.observer.event(Event::Warning(format!(
                "notification to {} failed: {e} (event {}); the command's result stands",
                d.url,
                d.event.as_str()
            ))),
            None if ctx.verbose => ctx.observer.event(Event::Info(format!(
                "note: notified {} of {}",
                d.url,
                d.event.as_str()
            ))),
            None => {}
        }
    }
    deliveries
}

/// Print an outcome on stdout, or the error on stderr (and as JSON on stdout
/// with `--json`); the exit code follows.
fn emit<T: Render>(json: bool, result: anyhow::Result<T>) -> ExitCode {
    emit_with(json, result, &[])
}

/// [`emit`], with how the notifications went (`notifications` in `--json`,
/// when any was sent).
fn emit_with<T: Render>(
    json: bool,
    result: anyhow::Result<T>,
    deliveries: &[notify::Delivery],
) -> ExitCode {
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return fail(json, &e, deliveries),
    };
    let text = if json && deliveries.is_empty() {
        serde_json::to_string_pretty(&outcome).expect("outcomes serialize") + "\n"
    } else if json {
        let mut doc = serde_json::to_value(&outcome).expect("outcomes serialize");
        doc["notifications"] = serde_json::to_value(deliveries).expect("deliveries serialize");
        serde_json::to_string_pretty(&doc).expect("outcomes serialize") + "\n"
    } else {
        outcome.text()
    };
    let text = crate::error::redact(&text);
    let code = outcome.exit_code();
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        // A closed pipe (`cutover releases | head -1`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            // The command did what it did; say so where it can still be read.
            let summary = outcome.text();
            eprintln!(
                "warning: cannot write the result to stdout ({e}); the command completed: {}",
                summary.lines().collect::<Vec<_>>().join("; ")
            );
            ExitCode::from(code)
        }
        _ => ExitCode::from(code),
    }
}

/// Does the command line ask for `--json` (before any `--`)? Read from the
/// raw arguments, for the usage errors that stop parsing.
fn asks_for_json(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// Report a failure: one line on stderr; with `--json`, a JSON document too
/// (with how the notifications of it went, when any was sent).
fn fail(json: bool, err: &anyhow::Error, deliveries: &[notify::Delivery]) -> ExitCode {
    let code = exit_code(err);
    let line = one_line(err);
    eprintln!("error: {line}");
    if json {
        let mut doc = json!({"error": line, "exit_code": code});
        if code == 6 {
            // The switch stands: a step after it did not complete.
            doc["switched"] = true.into();
        }
        if !deliveries.is_empty() {
            doc["notifications"] = serde_json::to_value(deliveries).expect("deliveries serialize");
        }
        println!("{doc}");
    }
    ExitCode::from(code)
}
