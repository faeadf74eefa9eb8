//! What users read: `--help`, text output, the JSON documents (snapshots
//! with volatile fields redacted), configuration errors, and the
//! documentation: README.md and docs/, whose generated tables must match the
//! code's own tables and whose links must resolve.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fixtures::tiny_build;
use crate::support::{fixture, repo_root, rt, Ctx};

/// A JSON document with this test's names and ids replaced, so that a
/// snapshot holds the shape and the stable values only.
fn stable(ctx: &Ctx, text: &str, ids: &[(&str, &str)]) -> Value {
    let mut text = text
        .replace(&ctx.bucket, "BUCKET")
        .replace(&ctx.app, "APP")
        .replace(&ctx.redis_url, "REDIS_URL")
        // Where a switch happened: `host:port/db`.
        .replace(
            &format!("{}/0", ctx.redis_url.trim_start_matches("redis://")),
            "REDIS_HOST_PORT/0",
        );
    for (id, name) in ids {
        text = text.replace(id, name);
    }
    // Upload times (ms) inside step descriptions: " NX 1795761410188 ".
    let words: Vec<String> = text
        .split(' ')
        .map(|w| {
            if w.len() == 13 && w.bytes().all(|b| b.is_ascii_digit()) {
                "[ms]".to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    serde_json::from_str(&words.join(" ")).unwrap()
}

macro_rules! assert_document {
    ($name:expr, $value:expr) => {
        insta::assert_json_snapshot!($name, $value, {
            ".release.created_at" => "[time]",
            ".release.created_at_ms" => "[ms]",
            ".release.deployed_by" => "[user]",
            ".timings.scan" => "[seconds]",
            ".timings.list" => "[seconds]",
            ".timings.plan" => "[seconds]",
            ".timings.upload" => "[seconds]",
            ".timings.record" => "[seconds]",
            ".timings.register" => "[seconds]",
            ".timings.switch" => "[seconds]",
            ".timings.total" => "[seconds]",
            ".uploaded.seconds" => "[seconds]",
            ".record.created_at" => "[time]",
            ".record.created_at_ms" => "[ms]",
            ".record.deployed_by" => "[user]",
            ".last_event.at" => "[time]",
            ".last_event.by" => "[user]",
            ".pinned.at" => "[time]",
            ".pinned.by" => "[user]",
            ".releases[].record.created_at" => "[time]",
            ".releases[].record.created_at_ms" => "[ms]",
            ".releases[].record.deployed_by" => "[user]",
        });
    };
}

#[test]
fn help_groups_options_and_names_every_setting() {
    let ctx = Ctx::new("help");
    for args in [
        vec!["--help"],
        vec!["deploy", "--help"],
        vec!["activate", "--help"],
        vec!["rollback", "--help"],
        vec!["status", "--help"],
        vec!["releases", "--help"],
        vec!["unlock", "--help"],
    ] {
        let run = ctx.cutover(&args).env("COLUMNS", "100").run();
        run.expect(0);
        let name = format!("help-{}", args.join("-").trim_start_matches('-'));
        insta::assert_snapshot!(name, run.stdout);
    }
    let run = ctx.cutover(&["deploy", "--help"]).run();
    let text = &run.stdout;
    let global = text
        .find("Global options:")
        .expect("a Global options heading");
    let settings = text.find("Settings (").expect("a Settings heading");
    let own = text.find("Options:").expect("the command's own options");
    assert!(own < settings && settings < global, "{text}");
    // The command's own flags first, then the settings in the table's order.
    assert!(text.find("--dry-run").unwrap() < settings, "{text}");
    let order: Vec<usize> = [
        "--app ",
        "--bucket ",
        "--redis-url ",
        "--manifest ",
        "--git-sha ",
    ]
    .iter()
    .map(|f| {
        text.find(f)
            .unwrap_or_else(|| panic!("{f} missing: {text}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(order[0] > settings && order[4] < global, "{text}");
}

#[test]
fn json_documents_keep_their_shape() {
    let ctx = Ctx::new("json-shape");
    let a_dir = tiny_build(ctx.work.path(), "console.log('a')");
    let a_path = a_dir.to_str().unwrap();
    let dry = ctx.run(&["deploy", a_path, "--dry-run", "--json"]);
    dry.expect(0);
    let a = dry.json()["release"]["id"].as_str().unwrap().to_string();
    let ids = [(a.as_str(), "RELEASE_A")];
    assert_document!("deploy-dry-run", stable(&ctx, &dry.stdout, &ids));

    let run = ctx.run(&["deploy", a_path, "--json", "-m", "first"]);
    run.expect(0);
    assert_document!("deploy", stable(&ctx, &run.stdout, &ids));

    let b_dir = ctx.work.path().join("b");
    let b_path = tiny_build(&b_dir, "console.log('b')");
    let run = ctx.run(&["deploy", b_path.to_str().unwrap(), "--json"]);
    run.expect(0);
    let b = run.json()["release"]["id"].as_str().unwrap().to_string();
    let ids = [(a.as_str(), "RELEASE_A"), (b.as_str(), "RELEASE_B")];

    let run = ctx.run(&["rollback", "--dry-run", "--json"]);
    run.expect(0);
    assert_document!("rollback-dry-run", stable(&ctx, &run.stdout, &ids));
    let run = ctx.run(&["rollback", "--json"]);
    run.expect(0);
    assert_document!("rollback", stable(&ctx, &run.stdout, &ids));
    // The rollback pinned the app: activating again clears the pin.
    let run = ctx.run(&["activate", &b, "--unpin", "--json"]);
    run.expect(0);
    assert_document!("activate", stable(&ctx, &run.stdout, &ids));
    let run = ctx.run(&["status", "--json"]);
    run.expect(0);
    assert_document!("status", stable(&ctx, &run.stdout, &ids));
    let run = ctx.run(&["releases", "--json"]);
    run.expect(0);
    assert_document!("releases", stable(&ctx, &run.stdout, &ids));

    // Errors under --json: one document with the message and the exit code,
    // the password masked as everywhere.
    let run = ctx
        .cutover(&["status", "--json"])
        .env("REDIS_URL", "redis://:hunter2@127.0.0.1:1")
        .run();
    run.expect(1);
    let doc = run.json();
    assert_eq!(doc["exit_code"], 1, "{run:?}");
    let error = doc["error"].as_str().unwrap();
    assert!(error.contains("redis://:***@127.0.0.1:1"), "{run:?}");
    assert!(!run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"));
}

#[test]
fn text_output_counts_and_tables() {
    let ctx = Ctx::new("text-output");
    let one = ctx.work.path().join("one");
    std::fs::create_dir_all(one.join("js")).unwrap();
    std::fs::write(one.join("js/a-0a1b2c3d4e5f6a7b8c9d.js"), "a").unwrap();
    std::fs::write(
        one.join("manifest.json"),
        r#"{"a.js": "https://cdn.example.com/packs/js/a-0a1b2c3d4e5f6a7b8c9d.js"}"#,
    )
    .unwrap();
    let run = ctx.run(&["deploy", one.to_str().unwrap()]);
    run.expect(0)
        .stdout_has(&["uploaded 1 file (1 B)", "skipped 0 files"]);
    let first = ctx.run(&["status", "--json"]).json()["current"]
        .as_str()
        .unwrap()
        .to_string();
    let tiny = tiny_build(ctx.work.path(), "x");
    ctx.run(&["deploy", tiny.to_str().unwrap()]).expect(0);
    // Going back uploads nothing and says nothing about uploads.
    let run = ctx.run(&["activate", &first]);
    run.expect(0)
        .stdout_has(&[&format!("release {first} is live for")])
        .stdout_lacks(&["uploaded"]);
    let run = ctx.run(&["deploy", one.to_str().unwrap()]);
    run.expect(0)
        .stdout_has(&["is already live", "nothing to do"])
        .stdout_lacks(&["uploaded"]);

    // `releases`: a header row; --limit 0 lists all.
    let big = ctx.work.path().join("big");
    tiny_build(&big, "y");
    ctx.run(&[
        "deploy",
        big.join("tiny").to_str().unwrap(),
        "--no-activate",
    ])
    .expect(0);
    let run = ctx.run(&["releases", "--limit", "1"]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("STATE  RELEASE  "), "{run:?}");
    assert_eq!(lines.len(), 2, "{run:?}");
    let run = ctx.run(&["releases", "--limit", "0"]);
    assert_eq!(
        run.stdout.lines().count(),
        4,
        "header and 3 releases: {run:?}"
    );
}

#[test]
fn a_dry_run_that_finds_a_conflict_plans_no_writes() {
    let ctx = Ctx::new("conflict-writes");
    let tiny = tiny_build(ctx.work.path(), "ours");
    let script = std::fs::read_dir(tiny.join("js"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let key = format!("packs/js/{}", script.to_str().unwrap());
    rt().block_on(ctx.put(&key, b"theirs!!!"));
    let run = ctx.run(&["deploy", tiny.to_str().unwrap(), "--dry-run"]);
    run.expect(3)
        .stderr_has(&["warning: 1 object in s3://", "would be overwritten"])
        .stdout_has(&["1 conflict", "writes: none"])
        .stdout_lacks(&["Redis", "EVAL"]);
    let run = ctx.run(&["deploy", tiny.to_str().unwrap(), "--dry-run", "--json"]);
    run.expect(3);
    assert_eq!(run.json()["steps"], serde_json::json!([]), "{run:?}");
    assert_eq!(run.json()["outcome"], "conflict", "{run:?}");
}

#[test]
fn every_configuration_problem_is_reported_at_once() {
    let ctx = Ctx::new("config-all");
    std::fs::write(ctx.work.path().join("cutover.toml"), "bukket = \"b\"\n").unwrap();
    let build = fixture("flat");
    let before = ctx.world();
    let run = ctx
        .cutover(&["deploy", build.to_str().unwrap()])
        .env("CUTOVER_CONCURRENCY", "many")
        .env("CUTOVER_LOCK_TTL", "1")
        .run();
    run.expect(2).error_has(&[
        "3 configuration problems",
        "invalid concurrency = \"many\" (from environment variable CUTOVER_CONCURRENCY)",
        "invalid lock_ttl_secs = \"1\"",
        "unknown key `bukket`",
    ]);
    ctx.assert_unchanged(&before, "a bad configuration");
}

#[test]
fn the_redis_cluster_setting_reaches_the_connection_from_every_source() {
    // The shared test Redis is not a cluster: a connection in cluster mode
    // is refused by it, which proves the setting was used.
    let ctx = Ctx::new("cluster-setting");
    let expect_cluster_mode = |run: crate::support::Run| {
        run.expect(2).error_has(&["is not a Redis Cluster"]);
    };
    expect_cluster_mode(ctx.cutover(&["status", "--redis-cluster"]).run());
    expect_cluster_mode(
        ctx.cutover(&["status"])
            .env("CUTOVER_REDIS_CLUSTER", "true")
            .run(),
    );
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        "redis_cluster = true\n",
    )
    .unwrap();
    expect_cluster_mode(ctx.cutover(&["status"]).run());
    std::fs::remove_file(ctx.work.path().join("cutover.toml")).unwrap();
    ctx.cutover(&["status"]).run().expect(0);
}

#[test]
fn rediss_to_a_plain_redis_fails_within_the_timeout_naming_tls() {
    let ctx = Ctx::new("rediss-plain");
    let url = format!("rediss://127.0.0.1:{}", ctx.redis_port());
    let started = Instant::now();
    let run = ctx
        .cutover(&["status"])
        .env("REDIS_URL", &url)
        .env("CUTOVER_REDIS_TIMEOUT", "1")
        .run();
    run.expect(1).error_has(&[
        "no answer from Redis",
        "within 1s",
        "rediss://",
        "use redis://",
    ]);
    // Once 31 s; the bound is generous so a busy machine cannot flake it.
    assert!(started.elapsed() < Duration::from_secs(15), "{run:?}");
}

/// Replace the table starting with `table`'s header line by `table`.
fn replace_table(doc: &str, table: &str) -> String {
    let header = table.lines().next().unwrap();
    let start = doc.find(header).expect("the table's header is in the doc");
    let end = doc[start..]
        .find("\n\n")
        .map(|i| start + i + 1)
        .unwrap_or(doc.len());
    format!("{}{table}{}", &doc[..start], &doc[end..])
}

/// The generated tables and the doc that holds each: the configuration
/// table (config/keys.rs) and the exit codes (error.rs).
fn generated_tables() -> [(&'static str, String); 2] {
    [
        ("docs/configuration.md", cutover::config::keys::markdown()),
        ("docs/output.md", cutover::error::exit_codes_markdown()),
    ]
}

/// README.md and every file of docs/, as (path from the root, text), sorted.
fn documentation(root: &Path) -> Vec<(String, String)> {
    let mut docs = vec!["README.md".to_string()];
    docs.extend(docs_files(root));
    docs.into_iter()
        .map(|d| {
            let text = std::fs::read_to_string(root.join(&d))
                .unwrap_or_else(|e| panic!("reading {d}: {e}"));
            (d, text)
        })
        .collect()
}

/// Every file in docs/, as `docs/NAME`, sorted.
fn docs_files(root: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("a docs/ folder")
        .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    files.sort();
    files
}

#[test]
fn readme_docs_tables_match_the_code() {
    let root = repo_root();
    for (doc, table) in generated_tables() {
        let path = root.join(doc);
        if std::env::var_os("CUTOVER_UPDATE_README").is_some() {
            // Regenerate the tables in place: CUTOVER_UPDATE_README=1 cargo test readme
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, replace_table(&text, &table)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&table),
            "{doc}'s table differs from the code (CUTOVER_UPDATE_README=1 cargo test readme rewrites it); it should read:\n{table}"
        );
        // One copy, in its doc: no stale table elsewhere.
        let header = table.lines().next().unwrap();
        for (other, text) in documentation(&root) {
            let copies = text.matches(header).count();
            assert_eq!(
                copies,
                usize::from(other == doc),
                "{other} has {copies} tables headed {header:?}; the generated one belongs in {doc} only"
            );
        }
    }
}

/// The command reference names every command and every flag; the README
/// shows the daily commands.
#[test]
fn readme_docs_mention_every_command_and_flag() {
    let root = repo_root();
    let reference = std::fs::read_to_string(root.join("docs/commands.md")).unwrap();
    let cmd = cutover::cli::args::command();
    let mut missing = Vec::new();
    for sub in cmd.get_subcommands() {
        for arg in sub.get_arguments().chain(cmd.get_arguments()) {
            if let Some(long) = arg.get_long() {
                if !["help", "version"].contains(&long) && !reference.contains(&format!("--{long}"))
                {
                    missing.push(format!("{} --{long}", sub.get_name()));
                }
            }
        }
        if !reference.contains(&format!("cutover {}", sub.get_name())) {
            missing.push(format!("command {}", sub.get_name()));
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "docs/commands.md does not mention: {missing:?}"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for daily in ["deploy", "rollback", "status", "releases", "activate"] {
        assert!(
            readme.contains(&format!("\ncutover {daily}")),
            "README.md shows no example of cutover {daily}"
        );
    }
}

/// `text` without its fenced code blocks and inline code spans, and its
/// fenced blocks' lines blanked, so neither links nor headings are seen
/// inside code.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match fence {
            Some(f) if trimmed.starts_with(f) => fence = None,
            Some(_) => {}
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    // Inline code: a run of backticks up to the next run of the same length.
    let mut plain = String::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find('`') {
        plain.push_str(&rest[..i]);
        let run = rest[i..].len() - rest[i..].trim_start_matches('`').len();
        let ticks = &rest[i..i + run];
        let after = &rest[i + run..];
        match after.find(ticks) {
            Some(j) => rest = &after[j + run..],
            None => {
                plain.push_str(ticks);
                rest = after;
            }
        }
    }
    plain.push_str(rest);
    plain
}

/// The anchors GitHub gives a markdown file's headings: lowercased, spaces
/// to `-`, punctuation dropped, `-N` after repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match fence {
            Some(f) if trimmed.starts_with(f) => fence = None,
            Some(_) => {}
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => {
                let level = line.len() - line.trim_start_matches('#').len();
                let Some(title) = line[level..].strip_prefix(' ') else {
                    continue;
                };
                if !(1..=6).contains(&level) {
                    continue;
                }
                let slug: String = title
                    .trim()
                    .trim_end_matches('#')
                    .trim()
                    .to_lowercase()
                    .chars()
                    .filter_map(|c| match c {
                        ' ' => Some('-'),
                        c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                        _ => None,
                    })
                    .collect();
                let mut anchor = slug.clone();
                let mut n = 0;
                while seen.contains(&anchor) {
                    n += 1;
                    anchor = format!("{slug}-{n}");
                }
                seen.insert(anchor);
            }
        }
    }
    seen
}

/// The targets of a markdown text's links: inline `[text](target)`
/// (images too) and reference definitions `[name]: target`.
fn link_targets(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut targets = Vec::new();
    let mut rest = prose.as_str();
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let target = rest[..end].split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(['<', '>']).to_string());
    }
    for line in prose.lines() {
        if let Some((label, target)) = line.trim_start().split_once("]: ") {
            if label.starts_with('[') && !label.contains(']') {
                targets.push(target.trim().to_string());
            }
        }
    }
    targets
}

/// What is wrong with the documentation under `root`: a README of 300
/// lines or more, a file of docs/ the README does not link, and every
/// relative link of README.md and docs/* that names no file, or an anchor
/// no heading of its markdown file has.
fn documentation_problems(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let docs = documentation(root);
    let readme_lines = docs[0].1.lines().count();
    if readme_lines >= 300 {
        problems.push(format!(
            "README.md has {readme_lines} lines: keep it under 300, the rest in docs/"
        ));
    }
    let mut linked_from_readme = BTreeSet::new();
    for (doc, text) in &docs {
        let dir = Path::new(doc).parent().unwrap();
        for target in link_targets(text) {
            if target.is_empty() {
                problems.push(format!("{doc}: a link without a target"));
                continue;
            }
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            // The path from the root, `..` resolved; None above the root.
            let path = if file.is_empty() {
                Some(PathBuf::from(doc))
            } else {
                dir.join(file)
                    .components()
                    .try_fold(PathBuf::new(), |mut p, c| match c {
                        Component::CurDir => Some(p),
                        Component::ParentDir => p.pop().then_some(p),
                        Component::Normal(n) => {
                            p.push(n);
                            Some(p)
                        }
                        _ => None,
                    })
            };
            let Some(path) = path.filter(|p| root.join(p).exists()) else {
                problems.push(format!("{doc}: link to {target}: no such file"));
                continue;
            };
            if doc == "README.md" {
                linked_from_readme.insert(path.clone());
            }
            if let Some(anchor) = anchor {
                if path.extension().is_some_and(|e| e == "md") {
                    let text = std::fs::read_to_string(root.join(&path)).unwrap();
                    if !anchors(&text).contains(anchor) {
                        problems.push(format!(
                            "{doc}: link to {target}: {} has no heading #{anchor}",
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    for file in docs_files(root) {
        if !linked_from_readme.contains(Path::new(&file)) {
            problems.push(format!("README.md does not link {file}"));
        }
    }
    problems
}

#[test]
fn readme_is_short_links_every_doc_and_every_link_resolves() {
    let problems = documentation_problems(&repo_root());
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The link check is a check: on a small tree with each kind of mistake it
/// names every one, and only those.
#[test]
fn readme_link_check_finds_each_kind_of_broken_link() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("ruby")).unwrap();
    std::fs::write(root.join("ruby/README.md"), "# Ruby\n\n## Install\n").unwrap();
    std::fs::write(
        root.join("docs/a.md"),
        "# A\n\n## Redis contract (what the `app` reads)\n\n## Notes\n\n## Notes\n\n\
         [up](../README.md#top) [ok](#notes-1) [ok](../ruby/README.md#install) \
         [bad](#notes-2) [bad](../ruby/README.md#usage) [bad](b.md)\n\n\
         ```md\n[in code](nowhere.md)\n# Not a heading\n```\n\n`[in code](nowhere.md)`\n",
    )
    .unwrap();
    std::fs::write(root.join("docs/unlinked.md"), "# Unlinked\n").unwrap();
    let readme = format!(
        "# Top\n\n[a](docs/a.md#redis-contract-what-the-app-reads) [ruby](ruby/README.md) \
         [web](https://example.com/x.md#nothing) [ref]\n\n[ref]: docs/missing.md\n\
         [bad](docs/a.md#not-a-heading) [bad](../outside.md)\n{}",
        "line\n".repeat(300)
    );
    std::fs::write(root.join("README.md"), readme).unwrap();
    assert_eq!(
        documentation_problems(root),
        [
            "README.md has 306 lines: keep it under 300, the rest in docs/",
            "README.md: link to docs/a.md#not-a-heading: docs/a.md has no heading #not-a-heading",
            "README.md: link to ../outside.md: no such file",
            "README.md: link to docs/missing.md: no such file",
            "docs/a.md: link to #notes-2: docs/a.md has no heading #notes-2",
            "docs/a.md: link to ../ruby/README.md#usage: ruby/README.md has no heading #usage",
            "docs/a.md: link to b.md: no such file",
            "README.md does not link docs/unlinked.md",
        ]
    );
}

#[test]
fn config_prints_each_resolved_value_with_its_origin_per_environment() {
    let ctx = Ctx::new("config-envs");
    std::fs::write(
        ctx.work.path().join("cutover.toml"),
        "prefix = \"assets\"\n\n[environments.production]\ncdn_url = \"https://cdn.prod.example\"\nredis_url = [\"redis://:hunter2@pod1:6379\", \"redis://pod2:6379\"]\n",
    )
    .unwrap();
    let run = ctx
        .cutover(&["config", "--json", "--env", "production"])
        .env("CUTOVER_CDN_URL", "")
        .env("REDIS_URL", "")
        .run();
    run.expect(0).stdout_lacks(&["hunter2"]);
    let doc = run.json();
    assert_eq!(doc["environment"], "production");
    let setting = |key: &str| {
        doc["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap_or_else(|| panic!("{key} in {doc}"))
            .clone()
    };
    assert_eq!(setting("prefix")["origin"], "cutover.toml:1");
    assert_eq!(setting("cdn_url")["value"], "https://cdn.prod.example");
    assert_eq!(
        setting("cdn_url")["origin"],
        "cutover.toml:4 [environments.production]"
    );
    assert_eq!(
        setting("redis_url")["value"],
        "redis://:***@pod1:6379 redis://pod2:6379"
    );
    assert_eq!(setting("app")["origin"], "environment variable CUTOVER_APP");
    assert_eq!(setting("concurrency")["origin"], "default");
    // CUTOVER_ENV selects it too; an unknown environment is exit 2 naming the known ones.
    let run = ctx
        .cutover(&["config"])
        .env("CUTOVER_ENV", "production")
        .env("CUTOVER_CDN_URL", "")
        .run();
    run.expect(0)
        .stdout_has(&["environment production", "[environments.production]"]);
    ctx.run(&["config", "--env", "prod"]).expect(2).error_has(&[
        "environment \"prod\" (from flag --env) is not defined",
        "defined: production",
    ]);
}
