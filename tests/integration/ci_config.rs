//! The pipeline files the repository ships are real configuration, checked
//! as CircleCI and GitHub would read them:
//! - `.circleci/config.yml`, the orb packed the way `circleci orb pack` packs
//!   it (`scripts/pack-orb.py`), every orb example and docs/ci.md's CircleCI
//!   config validate against CircleCI's config schema; `action.yml` against
//!   the GitHub Action schema, docs/ci.md's workflows against the workflow
//!   schema (pinned copies in `tests/fixtures/schemas`, checked with
//!   `check-jsonschema` from `.venv-ci`, which `scripts/setup.sh` installs);
//! - what a schema cannot see: every parameter reaches its script as the
//!   `PARAM_*` variable the script reads, jobs pass on every parameter of the
//!   commands they run, examples use only jobs and parameters the orb has,
//!   the Action mirrors the orb's deploy command, and every pinned version is
//!   the crate's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

use crate::support::repo_root;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

fn load_repo(path: &str) -> Value {
    load(&repo_root().join(path))
}

fn venv(tool: &str) -> PathBuf {
    let path = repo_root().join(".venv-ci/bin").join(tool);
    assert!(
        path.exists(),
        "{} not found: run scripts/setup.sh (it installs check-jsonschema into .venv-ci)",
        path.display()
    );
    path
}

/// Run `scripts/pack-orb.py` on `src`; Err(stderr) if it refuses.
fn pack(src: &Path) -> Result<String, String> {
    let out = Command::new(venv("python"))
        .arg(repo_root().join("scripts/pack-orb.py"))
        .arg(src)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The repository's orb, packed, written to `dir/orb.yml`.
fn packed_orb(dir: &Path) -> (PathBuf, Value) {
    let text = pack(&repo_root().join("orb/src")).expect("orb/src packs");
    let path = dir.join("orb.yml");
    std::fs::write(&path, &text).unwrap();
    (path, serde_yaml::from_str(&text).unwrap())
}

/// `check-jsonschema` with a pinned schema of tests/fixtures/schemas.
fn schema_check(schema: &str, files: &[PathBuf]) -> Result<(), String> {
    assert!(!files.is_empty());
    let out = Command::new(venv("check-jsonschema"))
        .arg("--schemafile")
        .arg(repo_root().join("tests/fixtures/schemas").join(schema))
        .args(files)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The doc with the CI examples: one CircleCI config, two GitHub workflows.
const CI_DOC: &str = "docs/ci.md";

/// The CI doc's fenced ```yaml blocks.
fn ci_doc_yaml_blocks() -> Vec<String> {
    let doc = std::fs::read_to_string(repo_root().join(CI_DOC)).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The CI doc's CircleCI configs and GitHub workflows, written to files.
fn ci_doc_configs(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut circle, mut github) = (Vec::new(), Vec::new());
    for (i, block) in ci_doc_yaml_blocks().iter().enumerate() {
        let path = dir.join(format!("ci-doc-{i}.yml"));
        std::fs::write(&path, block).unwrap();
        let doc: Value = serde_yaml::from_str(block).expect("docs/ci.md yaml block parses");
        if doc.get("version").is_some() {
            circle.push(path);
        } else if doc.get("runs-on").is_some() || doc.get("jobs").is_some() {
            github.push(path);
        } else {
            panic!(
                "docs/ci.md yaml block {i} is neither a CircleCI config nor a workflow:\n{block}"
            );
        }
    }
    (circle, github)
}

/// Each orb example's `usage` (a whole config), as a JSON file.
fn example_configs(orb: &Value, dir: &Path) -> Vec<PathBuf> {
    let examples = orb["examples"].as_mapping().expect("the orb has examples");
    examples
        .iter()
        .map(|(name, example)| {
            let path = dir.join(format!("example-{}.json", name.as_str().unwrap()));
            let usage: serde_json::Value =
                serde_json::to_value(&example["usage"]).expect("usage converts to JSON");
            std::fs::write(&path, serde_json::to_vec(&usage).unwrap()).unwrap();
            path
        })
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_mapping()
        .map(|m| m.keys().map(|k| s(k).to_string()).collect())
        .unwrap_or_default()
}

/// Every `<< parameters.NAME >>` in a definition.
fn parameter_refs(def: &Value) -> BTreeSet<String> {
    let text = serde_yaml::to_string(def).unwrap();
    text.match_indices("<< parameters.")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            rest[..rest.find(' ').unwrap()].to_string()
        })
        .collect()
}

/// Every `PREFIX[A-Z0-9_]+` variable a script mentions.
fn variables(script: &str, prefix: &str) -> BTreeSet<String> {
    script
        .match_indices(prefix)
        .map(|(i, _)| {
            script[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|v| v.len() > prefix.len())
        .collect()
}

fn env_name(prefix: &str, param: &str) -> String {
    format!("{prefix}{}", param.to_uppercase().replace('-', "_"))
}

/// The orb's source definitions of one kind: name -> definition.
fn orb_source(kind: &str) -> BTreeMap<String, Value> {
    let dir = repo_root().join("orb/src").join(kind);
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_str().unwrap().to_string(),
                load(&p),
            )
        })
        .collect()
}

/// The run steps of a definition that include a script: (script path, step).
fn script_steps(def: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    collect_script_steps(&def["steps"], &mut found);
    found
}

fn collect_script_steps(steps: &Value, found: &mut Vec<(String, Value)>) {
    for step in steps.as_sequence().into_iter().flatten() {
        if let Some(command) = step["run"]["command"].as_str() {
            if let Some(path) = command
                .strip_prefix("<<include(")
                .and_then(|r| r.strip_suffix(")>>"))
            {
                found.push((path.to_string(), step["run"].clone()));
            }
        }
        for nested in ["when", "unless"] {
            collect_script_steps(&step[nested]["steps"], found);
        }
    }
}

#[test]
fn circleci_pipeline_runs_the_test_suite_and_builds_release_files() {
    let cfg = load_repo(".circleci/config.yml");
    assert_eq!(cfg["version"], Value::from(2.1));
    let jobs = cfg["jobs"].as_mapping().expect("jobs");
    let executors = cfg["executors"].as_mapping().expect("executors");
    for (name, job) in jobs {
        let executor = job["executor"]
            .as_str()
            .unwrap_or_else(|| panic!("job {name:?} has no executor"));
        let exec = &executors[&Value::from(executor)];
        let image = exec["docker"][0]["image"]
            .as_str()
            .unwrap_or_else(|| panic!("executor {executor} has no image"));
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "image {image} must be pinned"
        );
        let steps = job["steps"].as_sequence().unwrap();
        assert_eq!(
            steps[0],
            Value::from("checkout"),
            "job {name:?} must check out the code first"
        );
    }
    let commands = |job: &str| -> Vec<String> {
        jobs[&Value::from(job)]["steps"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|s| s["run"]["command"].as_str().map(str::to_string))
            .collect()
    };
    // The test job runs exactly what .ci/run runs.
    assert!(
        commands("test").contains(&"bash .ci/run".to_string()),
        "{:?}",
        commands("test")
    );
    let ci_run = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(ci_run.contains("scripts/test.sh"));
    // The release job builds the dist profile (stripped: Cargo.toml) with the
    // lock file and packages that binary with the script the install test
    // runs, into the artifacts it stores.
    let release = commands("release");
    assert!(
        release.contains(&"cargo build --profile dist --locked".to_string()),
        "{release:?}"
    );
    assert!(
        release
            .contains(&"bash scripts/ci/package-release.sh target/dist/cutover dist".to_string()),
        "{release:?}"
    );
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap()).unwrap();
    let dist = &manifest["profile"]["dist"];
    assert_eq!(dist["inherits"].as_str(), Some("release"));
    assert_eq!(dist["strip"].as_bool(), Some(true));
    assert_eq!(dist["debug"].as_bool(), Some(false));
    let stored: Vec<&Value> = jobs[&Value::from("release")]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s.get("store_artifacts"))
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["path"], Value::from("dist"));
    // Every job a workflow names exists, and every `requires` names a job of the workflow.
    for (_, wf) in cfg["workflows"].as_mapping().unwrap() {
        let entries = wf["jobs"].as_sequence().unwrap();
        let names = workflow_job_names(entries);
        for (entry, name) in entries.iter().zip(&names) {
            assert!(
                jobs.contains_key(Value::from(name.as_str())),
                "workflow names unknown job {name}"
            );
            for r in entry[name.as_str()]["requires"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                assert!(
                    names.iter().any(|n| Some(n.as_str()) == r.as_str()),
                    "{name} requires unknown {r:?}"
                );
            }
        }
    }
}

fn workflow_job_names(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match e {
            Value::String(s) => s.clone(),
            Value::Mapping(m) => m.keys().next().unwrap().as_str().unwrap().to_string(),
            other => panic!("bad workflow entry {other:?}"),
        })
        .collect()
}

#[test]
fn circleci_config_packed_orb_examples_and_docs_config_match_circleci_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (orb_path, orb) = packed_orb(dir.path());
    let examples = example_configs(&orb, dir.path());
    assert!(examples.len() >= 2, "{examples:?}");
    let (doc, _) = ci_doc_configs(dir.path());
    assert_eq!(
        doc.len(),
        2,
        "docs/ci.md has two CircleCI configs: approval, gradual rollout"
    );
    let mut files = vec![repo_root().join(".circleci/config.yml"), orb_path];
    files.extend(examples);
    files.extend(doc);
    if let Err(e) = schema_check("circle-ci.json", &files) {
        panic!("CircleCI's schema rejects:\n{e}");
    }
}

#[test]
fn action_and_docs_workflows_match_github_schemas() {
    if let Err(e) = schema_check("github-actions.json", &[repo_root().join("action.yml")]) {
        panic!("the GitHub Action schema rejects action.yml:\n{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, workflows) = ci_doc_configs(dir.path());
    assert_eq!(
        workflows.len(),
        3,
        "docs/ci.md has three GitHub workflows: deploy, promote, rollout"
    );
    if let Err(e) = schema_check("github-workflows.json", &workflows) {
        panic!("the GitHub workflow schema rejects docs/ci.md's workflows:\n{e}");
    }
}

/// The schema check is a check: it rejects configs that are broken in ways
/// CircleCI and GitHub would reject.
#[test]
fn schema_check_rejects_broken_configs() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_yaml::to_string(v).unwrap()).unwrap();
        path
    };
    // A job whose `steps` is misspelled.
    let mut cfg = load_repo(".circleci/config.yml");
    let job = cfg["jobs"]["test"].as_mapping_mut().unwrap();
    let steps = job.remove("steps").unwrap();
    job.insert("step".into(), steps);
    rejected(
        schema_check("circle-ci.json", &[write("config.yml", &cfg)]),
        "config.yml::$.jobs.test:",
    );
    // An orb job that runs a step named `deploy` (CircleCI's own deploy step).
    let (_, mut orb) = packed_orb(dir.path());
    let steps = orb["jobs"]["deploy"]["steps"].as_sequence_mut().unwrap();
    steps.push(serde_yaml::from_str("deploy: {build_dir: public/packs}").unwrap());
    rejected(
        schema_check("circle-ci.json", &[write("orb.yml", &orb)]),
        "orb.yml::$.jobs.deploy",
    );
    // A composite action step without a shell.
    let mut action = load_repo("action.yml");
    action["runs"]["steps"][1]
        .as_mapping_mut()
        .unwrap()
        .remove("shell");
    rejected(
        schema_check("github-actions.json", &[write("action.yml", &action)]),
        "action.yml::$.runs",
    );
}

/// The schema check failed because the schema rejects the document at
/// `path`, not for any other reason (a missing tool, file or schema).
#[track_caller]
fn rejected(result: Result<(), String>, path: &str) {
    let err = result.expect_err("the broken file passed the schema check");
    assert!(
        err.contains("Schema validation errors were encountered") && err.contains(path),
        "not rejected at {path}: {err}"
    );
}

/// scripts/pack-orb.py follows `circleci orb pack`'s rules.
#[test]
fn pack_orb_merges_like_circleci_orb_pack() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    let write = |path: &str, text: &str| {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("@orb.yml", "version: 2.1\ndescription: test orb\n");
    write(
        "commands/greet.yml",
        "parameters:\n  loud: {type: boolean, default: on}\n  word: {type: string, default: \"on\"}\n\
         steps:\n  - run:\n      command: <<include(scripts/greet.sh)>>\n",
    );
    write(
        "commands/more/deeper.yml",
        "steps:\n  - run: echo << parameters.x >>\n",
    );
    write("scripts/greet.sh", "cat <<EOF\nhello\nEOF\n");
    write("scripts/README.md", "not yaml\n");
    write(
        "examples/use.yml",
        "usage:\n  version: 2.1\n  note: <<include(scripts/greet.sh)>>\n",
    );
    write(".hidden/x.yml", "ignored: true\n");
    let packed: Value = serde_yaml::from_str(&pack(root).unwrap()).unwrap();
    let expected: Value = serde_yaml::from_str(
        r#"
version: 2.1
description: test orb
commands:
  greet:
    parameters:
      loud: {type: boolean, default: true}
      word: {type: string, default: "on"}
    steps:
      - run:
          command: "cat \\<<EOF\nhello\nEOF\n"
  deeper:
    steps:
      - run: echo << parameters.x >>
examples:
  use:
    usage:
      version: 2.1
      note: <<include(scripts/greet.sh)>>
"#,
    )
    .unwrap();
    assert_eq!(packed, expected);
    // Two files that pack into one name are an error, as are missing includes.
    write("commands/more/greet.yml", "steps: []\n");
    assert!(pack(root).unwrap_err().contains("both define 'greet'"));
    std::fs::remove_file(root.join("commands/more/greet.yml")).unwrap();
    write(
        "jobs/j.yml",
        "steps:\n  - run:\n      command: <<include(scripts/missing.sh)>>\n",
    );
    assert!(pack(root).unwrap_err().contains("missing.sh"));
    // As in the CLI, an include is a whole value, one per value: a step's
    // script cannot be a shared file plus its own.
    for (command, error) in [
        (
            "\"echo <<include(scripts/greet.sh)>>\"",
            "entire string must be include statement",
        ),
        (
            "|\n        <<include(scripts/greet.sh)>>\n        <<include(scripts/greet.sh)>>",
            "multiple include statements",
        ),
    ] {
        write(
            "jobs/j.yml",
            &format!("steps:\n  - run:\n      command: {command}\n"),
        );
        let err = pack(root).unwrap_err();
        assert!(err.contains(error), "{command}: {err}");
    }
}

/// Every parameter reaches its script as the PARAM_* variable it reads, and
/// every variable a script reads is set; jobs pass on every parameter of the
/// commands they run; no definition uses an undeclared parameter.
#[test]
fn orb_parameters_reach_the_scripts() {
    let commands = orb_source("commands");
    let jobs = orb_source("jobs");
    let executors = orb_source("executors");
    assert_eq!(
        commands.keys().collect::<Vec<_>>(),
        ["activate", "deploy", "install", "promote", "rollback", "rollout"]
    );
    assert_eq!(
        jobs.keys().collect::<Vec<_>>(),
        ["activate", "deploy", "promote", "rollback", "rollout"]
    );
    let mut included = BTreeSet::new();
    let mut command_steps = BTreeMap::new();
    for (kind, defs) in [
        ("command", &commands),
        ("job", &jobs),
        ("executor", &executors),
    ] {
        for (name, def) in defs {
            let declared = keys(&def["parameters"]);
            let used = parameter_refs(def);
            assert!(
                used.is_subset(&declared),
                "{kind} {name} uses undeclared parameters {:?}",
                used.difference(&declared).collect::<Vec<_>>()
            );
            for p in def["parameters"].as_mapping().into_iter().flatten() {
                assert!(
                    p.1["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{kind} {name}: parameter {:?} has no description",
                    p.0
                );
            }
            for (script, step) in script_steps(def) {
                let text = std::fs::read_to_string(repo_root().join("orb/src").join(&script))
                    .unwrap_or_else(|_| panic!("{kind} {name} includes missing {script}"));
                let env = &step["environment"];
                let set = keys(env);
                let read = variables(&text, "PARAM_");
                assert_eq!(
                    set, read,
                    "{kind} {name}: the variables set for {script} and the ones it reads differ"
                );
                for var in &set {
                    let param = var["PARAM_".len()..].to_lowercase();
                    assert_eq!(
                        env[var.as_str()],
                        Value::from(format!("<< parameters.{param} >>")),
                        "{kind} {name}: {var}"
                    );
                }
                if kind == "command" {
                    assert_eq!(
                        set,
                        declared
                            .iter()
                            .map(|p| env_name("PARAM_", p))
                            .collect::<BTreeSet<_>>(),
                        "command {name} passes every parameter to {script}"
                    );
                    command_steps.insert(script.clone(), step.clone());
                }
                included.insert(script);
            }
        }
    }
    // Every script is included by something.
    let scripts: BTreeSet<String> = std::fs::read_dir(repo_root().join("orb/src/scripts"))
        .unwrap()
        .map(|e| format!("scripts/{}", e.unwrap().file_name().to_str().unwrap()))
        .collect();
    assert_eq!(scripts, included);
    // Jobs: a command they run gets every one of its parameters, from the
    // job's parameter of the same name; the deploy job's spelled-out step is
    // the deploy command's step.
    for (name, job) in &jobs {
        let declared = keys(&job["parameters"]);
        for step in job["steps"].as_sequence().unwrap() {
            let Some((command, args)) = step
                .as_mapping()
                .and_then(|m| m.iter().next())
                .filter(|(k, _)| commands.contains_key(s(k)))
            else {
                continue;
            };
            let command = s(command);
            let params = keys(&commands[command]["parameters"]);
            let passed = keys(args);
            let expected: BTreeSet<String> = params
                .iter()
                .filter(|p| *p != "install_dir")
                .cloned()
                .collect();
            assert_eq!(passed, expected, "job {name} passes to {command}");
            for p in &passed {
                assert!(declared.contains(p), "job {name} lacks parameter {p}");
                assert_eq!(
                    args[p.as_str()],
                    Value::from(format!("<< parameters.{p} >>"))
                );
                assert_eq!(
                    job["parameters"][p.as_str()]["default"],
                    commands[command]["parameters"][p.as_str()]["default"],
                    "job {name} and command {command} default {p} alike"
                );
            }
        }
    }
    let (_, deploy_step) = &script_steps(&jobs["deploy"])[0];
    assert_eq!(
        deploy_step["environment"],
        command_steps["scripts/deploy.sh"]["environment"]
    );
    for p in keys(&commands["deploy"]["parameters"]) {
        assert_eq!(
            jobs["deploy"]["parameters"][p.as_str()]["default"],
            commands["deploy"]["parameters"][p.as_str()]["default"],
            "deploy job and command default {p} alike"
        );
    }
    // The executor's image is pinned.
    let image = s(&executors["default"]["docker"][0]["image"]);
    assert!(image.starts_with("cimg/base:") && !image.ends_with("latest"));
}

/// The examples and docs/ci.md's config use the orb as it is: jobs it has,
/// parameters they declare, and the current version.
#[test]
fn orb_examples_and_docs_config_use_real_jobs_and_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let (_, orb) = packed_orb(dir.path());
    let (doc, _) = ci_doc_configs(dir.path());
    let mut configs: Vec<(String, Value)> = orb["examples"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (format!("example {}", s(k)), v["usage"].clone()))
        .collect();
    configs.extend(doc.iter().map(|p| (CI_DOC.to_string(), load(p))));
    let workflow_keys: BTreeSet<&str> = [
        "requires",
        "context",
        "filters",
        "name",
        "type",
        "matrix",
        "pre-steps",
        "post-steps",
    ]
    .into();
    let mut used_jobs = BTreeSet::new();
    for (what, cfg) in &configs {
        assert_eq!(
            cfg["orbs"]["cutover"],
            Value::from(format!("your-namespace/cutover@{VERSION}")),
            "{what}"
        );
        let pipeline_params = keys(&cfg["parameters"]);
        let text = serde_yaml::to_string(cfg).unwrap();
        for (i, m) in text.match_indices("<< pipeline.parameters.") {
            let rest = &text[i + m.len()..];
            let name = &rest[..rest.find(' ').unwrap()];
            assert!(pipeline_params.contains(name), "{what}: {name}");
        }
        for (_, wf) in cfg["workflows"].as_mapping().unwrap() {
            let entries = wf["jobs"].as_sequence().unwrap();
            let names = workflow_job_names(entries);
            // A job is required by its `name:` when it has one, else by its key.
            let required_as: Vec<String> = entries
                .iter()
                .zip(&names)
                .map(|(entry, name)| {
                    entry[name.as_str()]["name"]
                        .as_str()
                        .unwrap_or(name)
                        .to_string()
                })
                .collect();
            for (entry, name) in entries.iter().zip(&names) {
                let args = &entry[name.as_str()];
                for r in args["requires"].as_sequence().into_iter().flatten() {
                    assert!(
                        required_as.iter().any(|n| Some(n.as_str()) == r.as_str()),
                        "{what}: requires {r:?}, which no job of the workflow is named"
                    );
                }
                if let Some(job) = name.strip_prefix("cutover/") {
                    let def = &orb["jobs"][job];
                    assert!(def.is_mapping(), "{what}: the orb has no job {job}");
                    used_jobs.insert(job.to_string());
                    let declared = keys(&def["parameters"]);
                    for k in keys(args) {
                        assert!(
                            declared.contains(&k) || workflow_keys.contains(k.as_str()),
                            "{what}: cutover/{job} has no parameter {k}"
                        );
                    }
                } else if args["type"] != "approval" {
                    assert!(
                        cfg["jobs"][name.as_str()].is_mapping(),
                        "{what}: no job {name}"
                    );
                }
            }
        }
    }
    assert_eq!(
        used_jobs,
        ["activate", "deploy", "promote", "rollback", "rollout"]
            .map(String::from)
            .into(),
        "the examples show every job"
    );
}

/// The Action's inputs mirror the orb's deploy (and install) parameters with
/// the same defaults, reach the script as the INPUT_* variables it reads,
/// and its outputs are the ones the script writes.
#[test]
fn action_mirrors_the_orb_and_its_script() {
    let action = load_repo("action.yml");
    let commands = orb_source("commands");
    let mirrored: BTreeMap<String, (&str, Value)> = [
        ("deploy", &commands["deploy"]),
        ("install", &commands["install"]),
    ]
    .into_iter()
    .flat_map(|(cmd, def)| {
        def["parameters"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(k, _)| !["release_id_dir", "role_arn", "install_dir"].contains(&s(k)))
            .map(move |(k, v)| (s(k).replace('_', "-"), (cmd, v["default"].clone())))
    })
    // Promote and rollout modes: the action's own inputs, read by the same
    // script.
    .chain(
        ["promote-to", "promote-from", "release", "rollout-action"]
            .map(|k| (k.to_string(), ("deploy", Value::from("")))),
    )
    .collect();
    let inputs = action["inputs"].as_mapping().unwrap();
    assert_eq!(
        keys(&action["inputs"]),
        mirrored.keys().cloned().collect::<BTreeSet<_>>()
    );
    for (name, (_, default)) in &mirrored {
        let default = match default {
            Value::Bool(b) => b.to_string(),
            other => s(other).to_string(),
        };
        assert_eq!(
            inputs[&Value::from(name.as_str())]["default"],
            Value::from(default),
            "input {name}"
        );
    }
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    assert_eq!(action["runs"]["using"], Value::from("composite"));
    for step in steps {
        let run = s(&step["run"]);
        let file = run
            .strip_prefix("bash \"$GITHUB_ACTION_PATH/")
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or_else(|| panic!("a step runs one script of the repository: {run}"));
        let script = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let env = &step["env"];
        let set = keys(env);
        let (prefix, cmd) = if file == "orb/src/scripts/install.sh" {
            ("PARAM_", "install")
        } else {
            assert_eq!(file, "scripts/ci/github-action.sh");
            ("INPUT_", "deploy")
        };
        let expected: BTreeSet<String> = mirrored
            .iter()
            .filter(|(_, (c, _))| *c == cmd)
            .map(|(input, _)| env_name(prefix, input))
            .collect();
        assert_eq!(set, expected, "{file}");
        for (input, _) in mirrored.iter().filter(|(_, (c, _))| *c == cmd) {
            assert_eq!(
                env[env_name(prefix, input).as_str()],
                Value::from(format!("${{{{ inputs.{input} }}}}"))
            );
        }
        // Every variable of that prefix the script reads is set (install.sh
        // also reads PARAM_INSTALL_DIR: empty means its default).
        let read = variables(&script, prefix);
        let unset: Vec<&String> = read
            .difference(&set)
            .filter(|v| *v != "PARAM_INSTALL_DIR")
            .collect();
        assert!(unset.is_empty(), "{file} reads unset {unset:?}");
        if cmd == "deploy" {
            assert_eq!(step["id"], Value::from("deploy"));
            for (name, output) in action["outputs"].as_mapping().unwrap() {
                assert_eq!(
                    output["value"],
                    Value::from(format!("${{{{ steps.deploy.outputs.{} }}}}", s(name)))
                );
                assert!(
                    script.contains(&format!("\"{}=", s(name))),
                    "the script writes output {name:?}"
                );
            }
        }
    }
    // docs/ci.md's workflows use this action at the current version, with
    // inputs it has.
    let dir = tempfile::tempdir().unwrap();
    let (_, workflows) = ci_doc_configs(dir.path());
    let workflows: Vec<Value> = workflows.iter().map(|w| load(w)).collect();
    let uses: Vec<&Value> = workflows
        .iter()
        .flat_map(|wf| wf["jobs"].as_mapping().unwrap().values())
        .flat_map(|j| j["steps"].as_sequence().unwrap())
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("your-org/cutover@"))
        })
        .collect();
    assert_eq!(
        uses.len(),
        6,
        "deploy; staging, then promote; canary, change, complete"
    );
    for u in uses {
        assert_eq!(
            u["uses"],
            Value::from(format!("your-org/cutover@v{VERSION}"))
        );
        for k in keys(&u["with"]) {
            assert!(inputs.contains_key(Value::from(k.as_str())), "input {k}");
        }
    }
}

/// Every pinned cutover version is the crate's, so a release bump cannot
/// leave the orb or the Action installing the previous one.
#[test]
fn pinned_versions_are_the_crates() {
    let mut defaults = vec![(
        "command install".to_string(),
        orb_source("commands")["install"]["parameters"]["version"]["default"].clone(),
    )];
    for (name, job) in orb_source("jobs") {
        defaults.push((
            format!("job {name}"),
            job["parameters"]["version"]["default"].clone(),
        ));
    }
    defaults.push((
        "action.yml".to_string(),
        load_repo("action.yml")["inputs"]["version"]["default"].clone(),
    ));
    for (what, default) in defaults {
        assert_eq!(default, Value::from(VERSION), "{what}");
    }
    let doc = std::fs::read_to_string(repo_root().join(CI_DOC)).unwrap();
    assert!(doc.contains(&format!(
        "release/v{VERSION}/cutover-{VERSION}-x86_64-unknown-linux-gnu.tar.gz"
    )));
}

/// `cutover CMD --help` of the binary under test: the flags it takes and the
/// variables its settings read (a setting without a flag is not listed
/// there, so a script cannot map a parameter to one unnoticed).
fn cutover_help(command: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([command, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "cutover {command} --help");
    let help = String::from_utf8(out.stdout).unwrap();
    // clap wraps long help: `[env: A, B]` may span lines.
    let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let flags = help
        .lines()
        .flat_map(|l| l.split_whitespace().take_while(|t| t.starts_with('-')))
        .map(|t| t.trim_end_matches(',').to_string())
        .filter(|t| t.starts_with("--"))
        .collect();
    let vars = words
        .split("[env: ")
        .skip(1)
        .flat_map(|rest| rest[..rest.find(']').unwrap()].split(", "))
        .map(str::to_string)
        .collect();
    (flags, vars)
}

/// Variables a script passes on as they are, not as a setting or a flag.
const PASSED_AS_IS: &[(&str, &str)] = &[
    ("BUILD_DIR", "deploy's DIR argument"),
    ("RELEASE", "the RELEASE argument"),
    ("RELEASE_ID_DIR", "where the orb keeps the saved release id"),
    ("EXTRA_ARGS", "more flags, word for word"),
    (
        "ACTION",
        "the orb's rollout action: which `cutover rollout` to run",
    ),
    (
        "ROLLOUT_ACTION",
        "the Action's: `cutover rollout` instead of deploy",
    ),
];

/// How `script` hands each of `given` (the variables of its parameters or
/// inputs, `PREFIX_NAME`) to cutover: a flag of one of `commands`, or a
/// `CUTOVER_*` variable cutover reads there that an empty value leaves as
/// the job set it. The problems found.
fn unreached(script: &str, given: &BTreeSet<String>, commands: &[&str]) -> Vec<String> {
    let (mut flags, mut vars) = (BTreeSet::new(), BTreeSet::new());
    for c in commands {
        let (f, v) = cutover_help(c);
        flags.extend(f);
        vars.extend(v);
    }
    let mut problems = Vec::new();
    for var in given {
        let name = &var[var.find('_').unwrap() + 1..];
        if PASSED_AS_IS.iter().any(|(p, _)| name == *p) {
            if !script.contains(var.as_str()) {
                problems.push(format!("{var} is not read"));
            }
            continue;
        }
        let mut ways = Vec::new();
        let uses = |line: &str| {
            line.match_indices(var.as_str()).any(|(i, _)| {
                !line[i + var.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
        };
        for line in script.lines().map(str::trim).filter(|l| uses(l)) {
            // A setting: `export CUTOVER_X="${VAR:-${CUTOVER_X:-}}"`.
            if let Some((name, value)) =
                line.strip_prefix("export ").and_then(|r| r.split_once('='))
            {
                if value != format!("\"${{{var}:-${{{name}:-}}}}\"") {
                    problems.push(format!(
                        "{line}: an empty {var} must keep the job's own {name}"
                    ));
                } else if !vars.contains(name) {
                    problems.push(format!("{line}: cutover {commands:?} reads no {name}"));
                }
                ways.push(name.to_string());
                continue;
            }
            // A flag with the value (`--to "$VAR"`), or a switch the value
            // turns on (`[ "${VAR:-false}" != true ] || args+=(--dry-run)`).
            let mut found: Vec<&str> = [format!(" \"${var}"), format!(" \"${{{var}")]
                .iter()
                .flat_map(|value| line.match_indices(value.as_str()).map(|(i, _)| &line[..i]))
                .filter_map(|before| before.rsplit([' ', '(']).next())
                .filter(|w| w.starts_with("--"))
                .collect();
            if let Some(rest) = line
                .split("|| args+=(")
                .nth(1)
                .filter(|r| r.starts_with("--") && !r.contains(' '))
            {
                found.push(rest.trim_end_matches(')'));
            }
            for flag in found {
                if !flags.contains(flag) {
                    problems.push(format!("{line}: cutover {commands:?} has no {flag}"));
                }
                ways.push(flag.to_string());
            }
        }
        if ways.is_empty() {
            problems.push(format!(
                "{var} reaches cutover neither as a flag nor as a setting"
            ));
        }
    }
    problems
}

/// Each orb parameter and Action input that configures cutover reaches it:
/// as that command's flag, or as the `CUTOVER_*` variable of the setting,
/// keeping the job's own value (a context's, the step's `env:`) when the
/// parameter is left empty. A parameter that maps to nothing fails here.
#[test]
fn every_parameter_reaches_cutover_as_a_flag_or_its_setting() {
    let commands = orb_source("commands");
    let params = |name: &str| -> BTreeSet<String> {
        keys(&commands[name]["parameters"])
            .iter()
            .map(|p| env_name("PARAM_", p))
            .collect()
    };
    for name in ["activate", "deploy", "promote", "rollback", "rollout"] {
        let script = format!("orb/src/scripts/{name}.sh");
        let text = std::fs::read_to_string(repo_root().join(&script)).unwrap();
        let problems = unreached(&text, &params(name), &[name]);
        assert!(problems.is_empty(), "{script}: {problems:#?}");
    }
    let action = load_repo("action.yml");
    let inputs: BTreeSet<String> = action["runs"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|step| step["id"] == "deploy")
        .flat_map(|step| keys(&step["env"]))
        .collect();
    assert!(inputs.contains("INPUT_APP"), "{inputs:?}");
    let text = std::fs::read_to_string(repo_root().join("scripts/ci/github-action.sh")).unwrap();
    let problems = unreached(&text, &inputs, &["deploy", "promote", "rollout"]);
    assert!(problems.is_empty(), "github-action.sh: {problems:#?}");

    // The check finds a parameter that no longer reaches cutover, a flag
    // cutover lacks, and a setting that an empty parameter would clobber.
    let deploy = std::fs::read_to_string(repo_root().join("orb/src/scripts/deploy.sh")).unwrap();
    let export = "export CUTOVER_APP=\"${PARAM_APP:-${CUTOVER_APP:-}}\"";
    assert!(deploy.contains(export));
    for (broken, problem) in [
        (
            deploy.replace(export, ""),
            "PARAM_APP reaches cutover neither",
        ),
        (
            deploy.replace(export, "export CUTOVER_APP=\"$PARAM_APP\""),
            "an empty PARAM_APP must keep the job's own CUTOVER_APP",
        ),
        (
            deploy.replace(
                export,
                "export CUTOVER_APPNAME=\"${PARAM_APP:-${CUTOVER_APPNAME:-}}\"",
            ),
            "reads no CUTOVER_APPNAME",
        ),
        (
            deploy.replace("(--no-activate)", "(--no-activation)"),
            "has no --no-activation",
        ),
        (
            deploy.replace("(--message \"$PARAM_MESSAGE\")", "(\"$PARAM_MESSAGE\")"),
            "PARAM_MESSAGE reaches cutover neither",
        ),
    ] {
        let problems = unreached(&broken, &params("deploy"), &["deploy"]);
        assert!(
            problems.iter().any(|p| p.contains(problem)),
            "{problem:?} not in {problems:#?}"
        );
    }
}
