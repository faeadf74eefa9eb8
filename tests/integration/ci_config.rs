//! The CircleCI pipeline is real configuration: parse it and check it runs
//! the same test command as .ci/run.

use serde_yaml::Value;

use crate::support::repo_root;

fn load() -> Value {
    let text = std::fs::read_to_string(repo_root().join(".circleci/config.yml")).unwrap();
    serde_yaml::from_str(&text).expect(".circleci/config.yml is valid YAML")
}

#[test]
fn circleci_pipeline_runs_the_test_suite_and_references_real_jobs() {
    let cfg = load();
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
    // The test job runs exactly what .ci/run runs.
    let test_steps = jobs[&Value::from("test")]["steps"].as_sequence().unwrap();
    let commands: Vec<&str> = test_steps
        .iter()
        .filter_map(|s| s["run"]["command"].as_str())
        .collect();
    assert!(commands.contains(&"bash .ci/run"), "{commands:?}");
    let ci_run = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(ci_run.contains("scripts/test.sh"));
    // Every job a workflow names exists, and every `requires` names a job of the workflow.
    for (_, wf) in cfg["workflows"].as_mapping().unwrap() {
        let entries = wf["jobs"].as_sequence().unwrap();
        let names: Vec<String> = entries
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                Value::Mapping(m) => m.keys().next().unwrap().as_str().unwrap().to_string(),
                other => panic!("bad workflow entry {other:?}"),
            })
            .collect();
        for (entry, name) in entries.iter().zip(&names) {
            assert!(
                jobs.contains_key(Value::from(name.as_str())),
                "workflow names unknown job {name}"
            );
            if let Some(reqs) = entry[name.as_str()]["requires"].as_sequence() {
                for r in reqs {
                    assert!(
                        names.iter().any(|n| Some(n.as_str()) == r.as_str()),
                        "{name} requires unknown {r:?}"
                    );
                }
            }
        }
    }
}
