//! The commands: each turns a validated [`Config`] into a [`Report`] for
//! stdout. `run` maps errors to exit codes and prints them.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::HumanBytes;
use is_terminal::IsTerminal;
use serde_json::{json, Value};

use crate::cli::{ActivateArgs, Cli, Command, DeployArgs, ReleasesArgs, RollbackArgs, SwitchFlags};
use crate::config::{self, Config, FileSource};
use crate::deploy::{self, LockGuard};
use crate::error::{exit_code, one_line, Failure};
use crate::events::{Event, Observer};
use crate::manifest::Manifest;
use crate::plan::{Action, LiveState, Plan, RemoteObject};
use crate::registry::{Keys, Registry};
use crate::release::ReleaseRecord;
use crate::s3::S3Store;
use crate::scan::Build;

/// What a command prints on stdout, as text and as JSON, and its exit code.
pub struct Report {
    pub text: String,
    pub json: Value,
    pub code: u8,
}

impl Report {
    fn ok(text: String, json: Value) -> Report {
        Report {
            text,
            json,
            code: 0,
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match <Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli));
    // Don't wait for background tasks (lock renewer) to notice.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(report) => {
            let out = if json {
                serde_json::to_string_pretty(&report.json).expect("reports serialize") + "\n"
            } else {
                report.text
            };
            // A closed pipe (`cutover releases | head -1`) is not an error.
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|_| stdout.flush())
            {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: cannot write the result to stdout: {e}");
                    ExitCode::from(1)
                }
                _ => ExitCode::from(report.code),
            }
        }
        Err(err) if err.is::<Interrupted>() => {
            eprintln!("error: interrupted; nothing was switched. The next deploy uploads only what is still missing");
            ExitCode::from(130)
        }
        Err(err) => {
            let code = exit_code(&err);
            let line = one_line(&err);
            eprintln!("error: {line}");
            if json {
                println!("{}", json!({"error": line, "exit_code": code}));
            }
            ExitCode::from(code)
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (a cancelled CI job).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Report> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::input(format!("cannot read the working directory: {e}")))?;
    let file = FileSource::read(cli.global.config.as_deref(), &cwd)?;
    let env = |k: &str| std::env::var(k).ok();
    let config = config::load(&cli.flag_values(), &env, file.as_ref())?;
    let mode = crate::progress::mode(
        std::io::stderr().is_terminal(),
        std::env::var_os("CI").is_some(),
        cli.global.quiet,
    );
    let observer = crate::progress::observer(mode);
    match cli.command {
        Command::Deploy(args) => deploy_cmd(&config, args, observer.clone()).await,
        Command::Activate(args) => activate_cmd(&config, args, observer.as_ref()).await,
        Command::Rollback(args) => rollback_cmd(&config, args, observer.as_ref()).await,
        Command::Status => status_cmd(&config).await,
        Command::Releases(args) => releases_cmd(&config, args).await,
    }
}

/// Connect to S3 and Redis at once.
async fn connect(config: &Config) -> anyhow::Result<(S3Store, Registry)> {
    let (store, registry) = tokio::join!(S3Store::connect(config), Registry::connect(config));
    Ok((store?, registry?))
}

/// Scan and hash the build on the blocking pool, then check its manifest.
async fn scan_build(
    config: &Config,
    dir: &std::path::Path,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<(Build, Manifest)> {
    let (dir, threshold) = (dir.to_path_buf(), config.multipart_threshold);
    let build =
        tokio::task::spawn_blocking(move || crate::scan::scan(&dir, threshold, observer.as_ref()))
            .await
            .map_err(|e| Failure::operation(format!("hashing failed: {e}")))??;
    let manifest = crate::manifest::load(&build, &config.manifest, &|p| {
        config.public_url(p).unwrap_or_default()
    })?;
    Ok((build, manifest))
}

async fn deploy_cmd(
    config: &Config,
    args: DeployArgs,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<Report> {
    // Fail on missing settings before any work.
    let (app, bucket) = (config.app()?.to_string(), config.bucket()?.to_string());
    config.cdn_url()?;
    let started = std::time::Instant::now();
    // Hash the build while connecting, listing the bucket and reading the
    // live state: the two do not depend on each other. Problems with the
    // build are reported first.
    let services = async {
        let (store, mut registry) = connect(config).await?;
        let state = deploy::remote_state(config, &store, &mut registry, observer.as_ref()).await?;
        anyhow::Ok((store, registry, state))
    };
    let scanned = scan_build(config, &args.dir, observer.clone());
    tokio::pin!(scanned, services);
    let mut services_done = None;
    let scanned = loop {
        tokio::select! {
            s = &mut scanned => break s,
            r = &mut services, if services_done.is_none() => services_done = Some(r),
        }
    };
    // A bad build is reported at once, without waiting on S3 or Redis.
    let (build, manifest) = scanned?;
    let services = match services_done {
        Some(r) => r,
        None => services.await,
    };
    let (store, mut registry, (remote, live)) = services?;
    let prepared_secs = started.elapsed().as_secs_f64();
    let observer = observer.as_ref();

    if args.dry_run {
        let plan = deploy::make_plan(
            config,
            &store,
            &build,
            &manifest,
            &remote,
            &live,
            args.message.clone(),
            observer,
        )
        .await?;
        let code = if plan.count(Action::Conflict).0 > 0 {
            3
        } else {
            0
        };
        let mut report = plan_report(config, &plan, &registry.keys, true);
        report.code = code;
        if code == 3 {
            observer.event(Event::Warning(one_line(&deploy::conflict_error(
                &plan, &bucket,
            ))));
        }
        return Ok(report);
    }

    let owner = config
        .deployed_by
        .clone()
        .unwrap_or_else(|| "unknown".into());
    let lock = LockGuard::acquire(config, &registry, &owner, observer).await?;
    // From here on an interrupt must not leave multipart uploads open or the
    // lock held: catch SIGINT/SIGTERM (before, the default action is right:
    // nothing has been written yet).
    let result = tokio::select! {
        r = deploy_locked(config, &args, &store, &mut registry, &build, &manifest, remote, &lock, observer) => r,
        _ = shutdown_signal() => {
            store.abort_in_flight().await;
            Err(Interrupted.into())
        }
    };
    lock.release().await;
    let (plan, stats, activated_from) = result?;
    let mut report = plan_report(config, &plan, &registry.keys, false);
    let total_secs = started.elapsed().as_secs_f64();
    let outcome = if plan.already_live {
        "already_live"
    } else if args.no_activate {
        "recorded"
    } else {
        "activated"
    };
    let id = &plan.release.id;
    report.text = match outcome {
        "already_live" if stats.as_ref().is_some_and(|s| s.uploaded_files > 0) => {
            format!(
                "{}release {id} is already live for {app}; restored its missing objects\n",
                upload_line(&stats)
            )
        }
        "already_live" => format!("release {id} is already live for {app}; nothing to do\n"),
        "recorded" => format!(
            "{}recorded release {id} (not activated); make it live with: cutover activate {id}\n",
            upload_line(&stats)
        ),
        _ => format!(
            "{}release {id} is live for {app} (was {})\n",
            upload_line(&stats),
            activated_from.flatten().as_deref().unwrap_or("none")
        ),
    };
    if let Value::Object(m) = &mut report.json {
        m.insert("outcome".into(), json!(outcome));
        m.insert(
            "stats".into(),
            json!({
                "prepare_seconds": prepared_secs,
                "total_seconds": total_secs,
                "upload": stats,
            }),
        );
    }
    Ok(report)
}

fn upload_line(stats: &Option<deploy::UploadStats>) -> String {
    match stats {
        Some(s) => format!(
            "uploaded {} files ({}) in {:.1}s, {}/s\n",
            s.uploaded_files,
            HumanBytes(s.uploaded_bytes),
            s.seconds,
            HumanBytes(s.bytes_per_second as u64)
        ),
        None => String::new(),
    }
}

type Deployed = (Plan, Option<deploy::UploadStats>, Option<Option<String>>);

#[allow(clippy::too_many_arguments)]
async fn deploy_locked(
    config: &Config,
    args: &DeployArgs,
    store: &S3Store,
    registry: &mut Registry,
    build: &Build,
    manifest: &Manifest,
    remote: HashMap<String, RemoteObject>,
    lock: &LockGuard,
    observer: &dyn Observer,
) -> anyhow::Result<Deployed> {
    // The plan is made under the lock: if another deploy held it, list again;
    // otherwise the listing stands (conditional PUTs catch any late object)
    // and only the live state is read again.
    let (remote, live) = if lock.waited {
        deploy::remote_state(config, store, registry, observer).await?
    } else {
        (remote, registry.live().await?)
    };
    let plan = deploy::make_plan(
        config,
        store,
        build,
        manifest,
        &remote,
        &live,
        args.message.clone(),
        observer,
    )
    .await?;
    if plan.count(Action::Conflict).0 > 0 {
        return Err(deploy::conflict_error(&plan, store.bucket()));
    }
    if plan.already_live && plan.count(Action::Upload).0 == 0 {
        return Ok((plan, None, None));
    }
    // Uploads also run for the live release when objects went missing: a
    // redeploy repairs it.
    let stats = deploy::upload(config, store, &build.root, &plan, observer).await?;
    deploy::write_record(config, store, &plan.release).await?;
    registry.register(&plan.release).await?;
    if args.no_activate || plan.already_live {
        return Ok((plan, Some(stats), None));
    }
    lock.check()?;
    let previous = deploy::switch(
        registry,
        plan.live_release.as_deref(),
        &plan.release,
        "deploy",
        config.deployed_by.clone(),
        args.message.clone(),
        args.force,
    )
    .await?;
    Ok((plan, Some(stats), Some(previous)))
}

/// The plan, as text (what would change) and JSON.
fn plan_report(config: &Config, plan: &Plan, keys: &Keys, dry_run: bool) -> Report {
    let (up_n, up_b) = plan.count(Action::Upload);
    let (skip_n, skip_b) = plan.count(Action::Skip);
    let conflicts: Vec<&crate::plan::PlannedFile> = plan.conflicts().collect();
    let r = &plan.release;
    let mut t = String::new();
    let head = if dry_run {
        "dry run: nothing will be changed\n"
    } else {
        ""
    };
    t.push_str(head);
    t.push_str(&format!(
        "release {} of {}: {} files, {}\n",
        r.id,
        r.app,
        r.file_count,
        HumanBytes(r.bytes)
    ));
    if plan.already_live {
        t.push_str("already live: nothing to upload or switch\n");
    }
    t.push_str(&format!(
        "upload {up_n} files ({}), skip {skip_n} already in S3 ({}), {} conflicts\n",
        HumanBytes(up_b),
        HumanBytes(skip_b),
        conflicts.len()
    ));
    if dry_run {
        for f in plan.uploads() {
            t.push_str(&format!(
                "  + s3://{}/{}  {}  {}  {}{}\n",
                r.bucket,
                f.key,
                HumanBytes(f.size),
                f.headers.content_type,
                f.headers.cache_control,
                f.headers
                    .content_encoding
                    .as_deref()
                    .map(|e| format!("  encoding {e}"))
                    .unwrap_or_default()
            ));
        }
        for f in &conflicts {
            t.push_str(&format!(
                "  ! s3://{}/{}  S3 has {}, build has {} (sha256 {})\n",
                r.bucket,
                f.key,
                f.remote.as_deref().unwrap_or("other bytes"),
                HumanBytes(f.size),
                f.sha256
            ));
        }
        let d = &plan.manifest_diff;
        t.push_str(&format!(
            "manifest against live ({}): {} added, {} changed, {} removed, {} unchanged\n",
            plan.live_release.as_deref().unwrap_or("none"),
            d.added.len(),
            d.changed.len(),
            d.removed.len(),
            d.unchanged
        ));
        for (k, v) in &d.added {
            t.push_str(&format!("  + {k} -> {v}\n"));
        }
        for (k, old, new) in &d.changed {
            t.push_str(&format!("  ~ {k}: {old} -> {new}\n"));
        }
        for (k, v) in &d.removed {
            t.push_str(&format!("  - {k} (was {v})\n"));
        }
        if !plan.already_live {
            t.push_str("redis keys:\n");
            for line in redis_changes(config, plan, keys) {
                t.push_str(&format!("  {line}\n"));
            }
        }
    }
    let json = json!({
        "command": "deploy",
        "dry_run": dry_run,
        "app": r.app,
        "release": r.summary(),
        "live_release": plan.live_release,
        "already_live": plan.already_live,
        "upload": {"files": up_n, "bytes": up_b, "objects": plan.uploads().collect::<Vec<_>>()},
        "skip": {"files": skip_n, "bytes": skip_b},
        "conflicts": conflicts,
        "manifest_diff": plan.manifest_diff,
        "redis": if plan.already_live { Vec::new() } else { redis_changes(config, plan, keys) },
        "warnings": plan.warnings,
    });
    Report::ok(t, json)
}

fn redis_changes(config: &Config, plan: &Plan, keys: &Keys) -> Vec<String> {
    let r = &plan.release;
    let manifest_len = serde_json::to_string(&r.manifest)
        .map(|s| s.len())
        .unwrap_or(0);
    let meta = deploy::record_key(config, &r.id).unwrap_or_default();
    vec![
        format!("S3 PUT s3://{}/{meta} (release record)", r.bucket),
        format!("SET {} (release record)", keys.release(&r.id)),
        format!("ZADD {} {} {}", keys.releases, r.created_at_ms, r.id),
        format!(
            "SET {} {} (was {})",
            keys.current,
            r.id,
            plan.live_release.as_deref().unwrap_or("unset")
        ),
        format!("SET {} ({} bytes of JSON)", keys.manifest, manifest_len),
        format!(
            "LPUSH {} (deploy event), capped at {}",
            keys.history, config.history_limit
        ),
        format!("PUBLISH {}", keys.channel),
    ]
}

/// Resolve a release id or unique prefix against Redis, then the S3 records.
async fn resolve_release(
    config: &Config,
    registry: &mut Registry,
    store: &S3Store,
    wanted: &str,
) -> anyhow::Result<ReleaseRecord> {
    let wanted = wanted.trim();
    if wanted.is_empty() || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Failure::input(format!(
            "{wanted:?} is not a release id; release ids are hex, see `cutover releases`"
        )));
    }
    let ids = registry.release_ids(100_000).await?;
    let mut matches: Vec<String> = ids
        .into_iter()
        .filter(|id| id.starts_with(wanted))
        .collect();
    if matches.is_empty() {
        // Redis may have lost its data: look for S3 records.
        let prefix = format!("{}releases/{wanted}", config.meta_prefix()?);
        let listing = store.list(&prefix, &crate::events::Quiet).await?;
        matches = listing
            .keys()
            .filter_map(|k| {
                k.rsplit('/')
                    .next()?
                    .strip_suffix(".json")
                    .map(str::to_string)
            })
            .collect();
        matches.sort();
    }
    match matches.len() {
        0 => Err(Failure::input(format!(
            "no release {wanted} for app {}; see `cutover releases`",
            config.app()?
        ))),
        1 => {
            let id = matches.remove(0);
            // The S3 copy has the file list needed to verify the objects.
            let record = deploy::read_record(config, store, &id).await?;
            match record {
                Some(r) => {
                    if registry.record(&id).await?.is_none() {
                        // Restore what Redis lost from the S3 copy.
                        registry.register(&r).await?;
                    }
                    Ok(r)
                }
                None => Err(Failure::verification(format!(
                    "release {id} has no record in s3://{}/{}; it never finished uploading. Deploy its build again",
                    store.bucket(),
                    deploy::record_key(config, &id)?
                ))),
            }
        }
        n => Err(Failure::input(format!(
            "{wanted:?} matches {n} releases ({}); give more characters of the id",
            matches
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Shared by `activate` and `rollback`: verify the target's objects, then switch.
#[allow(clippy::too_many_arguments)]
async fn switch_to(
    config: &Config,
    registry: &mut Registry,
    store: &S3Store,
    target: ReleaseRecord,
    live: LiveState,
    action: &str,
    args: SwitchFlags,
    observer: &dyn Observer,
) -> anyhow::Result<Report> {
    let app = config.app()?.to_string();
    let current = live.current.as_deref();
    let id = target.id.clone();
    if current == Some(id.as_str()) {
        return Ok(Report::ok(
            format!("release {id} is already live for {app}; nothing to do\n"),
            json!({"command": action, "app": app, "release": id, "outcome": "already_live", "dry_run": args.dry_run}),
        ));
    }
    deploy::verify_objects(config, store, &target, observer).await?;
    let diff = crate::manifest::diff(live.manifest.as_ref(), &target.manifest);
    if args.dry_run {
        let text = format!(
            "dry run: nothing will be changed\nwould switch {app} from {} to {id} ({}); all {} objects are in S3\nmanifest: {} added, {} changed, {} removed\n",
            current.unwrap_or("none"),
            action,
            target.file_count,
            diff.added.len(),
            diff.changed.len(),
            diff.removed.len()
        );
        return Ok(Report::ok(
            text,
            json!({"command": action, "dry_run": true, "app": app, "release": id, "from": current, "manifest_diff": diff, "outcome": "planned"}),
        ));
    }
    let owner = config
        .deployed_by
        .clone()
        .unwrap_or_else(|| "unknown".into());
    let lock = LockGuard::acquire(config, registry, &owner, observer).await?;
    let result = deploy::switch(
        registry,
        current,
        &target,
        action,
        config.deployed_by.clone(),
        args.message,
        args.force,
    )
    .await;
    lock.release().await;
    let previous = result?;
    Ok(Report::ok(
        format!(
            "release {id} is live for {app} (was {}; {})\n",
            previous.as_deref().unwrap_or("none"),
            action
        ),
        json!({"command": action, "dry_run": false, "app": app, "release": id, "from": previous, "manifest_diff": diff, "outcome": "activated"}),
    ))
}

async fn activate_cmd(
    config: &Config,
    args: ActivateArgs,
    observer: &dyn Observer,
) -> anyhow::Result<Report> {
    config.app()?;
    let (store, mut registry) = connect(config).await?;
    let live = registry.live().await?;
    let target = resolve_release(config, &mut registry, &store, &args.release).await?;
    switch_to(
        config,
        &mut registry,
        &store,
        target,
        live,
        "activate",
        args.switch,
        observer,
    )
    .await
}

async fn rollback_cmd(
    config: &Config,
    args: RollbackArgs,
    observer: &dyn Observer,
) -> anyhow::Result<Report> {
    let app = config.app()?.to_string();
    let (store, mut registry) = connect(config).await?;
    let live = registry.live().await?;
    let target_id = match &args.to {
        Some(to) => to.clone(),
        None => {
            let current = live.current.clone().ok_or_else(|| {
                Failure::input(format!(
                    "no release is live for {app}; nothing to roll back (see `cutover releases`)"
                ))
            })?;
            let history = registry.history(config.history_limit).await?;
            let event = history.iter().find(|e| e.release == current).ok_or_else(|| {
                Failure::input(format!(
                    "the history of {app} does not say what was live before {current}; use `cutover rollback --to RELEASE`"
                ))
            })?;
            event.previous.clone().ok_or_else(|| {
                Failure::input(format!(
                    "{current} was the first release of {app}; there is nothing before it. Use `cutover rollback --to RELEASE`"
                ))
            })?
        }
    };
    let target = resolve_release(config, &mut registry, &store, &target_id).await?;
    switch_to(
        config,
        &mut registry,
        &store,
        target,
        live,
        "rollback",
        args.switch,
        observer,
    )
    .await
}

async fn status_cmd(config: &Config) -> anyhow::Result<Report> {
    let app = config.app()?.to_string();
    let mut registry = Registry::connect(config).await?;
    let live = registry.live().await?;
    let Some(id) = live.current else {
        return Ok(Report::ok(
            format!("no release is live for {app}\n"),
            json!({"command": "status", "app": app, "current": null, "record": null}),
        ));
    };
    let record = registry.record(&id).await?;
    let last = registry.history(1).await?.into_iter().next();
    let mut t = format!("live release of {app}: {id}\n");
    if let Some(r) = &record {
        t.push_str(&record_lines(r));
    } else {
        t.push_str(
            "  (its record is missing from Redis; `cutover activate` restores it from S3)\n",
        );
    }
    if let Some(e) = &last {
        t.push_str(&format!(
            "  last change: {} at {} by {} (previous {})\n",
            e.action,
            e.at,
            e.by.as_deref().unwrap_or("unknown"),
            e.previous.as_deref().unwrap_or("none")
        ));
    }
    Ok(Report::ok(
        t,
        json!({"command": "status", "app": app, "current": id, "record": record, "last_event": last}),
    ))
}

fn record_lines(r: &ReleaseRecord) -> String {
    let mut t = format!(
        "  created {} by {}\n",
        r.created_at,
        r.deployed_by.as_deref().unwrap_or("unknown")
    );
    t.push_str(&format!(
        "  {} files, {}\n",
        r.file_count,
        HumanBytes(r.bytes)
    ));
    if let Some(sha) = &r.git_sha {
        t.push_str(&format!(
            "  git {sha}{}\n",
            r.git_branch
                .as_deref()
                .map(|b| format!(" ({b})"))
                .unwrap_or_default()
        ));
    }
    if let Some(u) = &r.build_url {
        t.push_str(&format!("  build {u}\n"));
    }
    if let Some(m) = &r.message {
        t.push_str(&format!("  message: {m}\n"));
    }
    t
}

async fn releases_cmd(config: &Config, args: ReleasesArgs) -> anyhow::Result<Report> {
    let app = config.app()?.to_string();
    let mut registry = Registry::connect(config).await?;
    let current = registry.live().await?.current;
    let ids = registry.release_ids(args.limit.max(1)).await?;
    let mut rows = Vec::new();
    let mut t = String::new();
    let records = registry.records(&ids).await?;
    for (id, record) in ids.into_iter().zip(records) {
        let live = current.as_deref() == Some(id.as_str());
        match &record {
            Some(r) => t.push_str(&format!(
                "{} {}  {}  {}  {}  {}  {} files  {}{}\n",
                if live { "*" } else { " " },
                id,
                r.created_at,
                r.git_sha
                    .as_deref()
                    .map(|s| &s[..s.len().min(10)])
                    .unwrap_or("-"),
                r.git_branch.as_deref().unwrap_or("-"),
                r.deployed_by.as_deref().unwrap_or("-"),
                r.file_count,
                HumanBytes(r.bytes),
                r.message
                    .as_deref()
                    .map(|m| format!("  {m}"))
                    .unwrap_or_default()
            )),
            None => t.push_str(&format!(
                "{} {id}  (record missing)\n",
                if live { "*" } else { " " }
            )),
        }
        rows.push(json!({"id": id, "live": live, "record": record}));
    }
    if rows.is_empty() {
        t = format!("no releases for {app}\n");
    }
    Ok(Report::ok(
        t,
        json!({"command": "releases", "app": app, "current": current, "releases": rows}),
    ))
}
