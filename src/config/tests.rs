use super::keys::KEYS;
use super::*;
use crate::error::exit_code;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn file(text: &str) -> FileSource {
    FileSource {
        path: PathBuf::from("cutover.toml"),
        text: text.to_string(),
    }
}

fn error(flags: &FlagValues, env: &[(&str, &str)], f: Option<&str>) -> String {
    let f = f.map(file);
    let err = load(flags, &env_of(env), f.as_ref()).unwrap_err();
    assert_eq!(exit_code(&err), 2);
    err.to_string()
}

#[test]
fn flags_beat_env_beat_file_beat_defaults() {
    let f = file("app = \"from-file\"\nbucket = \"file-bucket\"\nprefix = \"file\"\n");
    let env = env_of(&[("CUTOVER_BUCKET", "env-bucket"), ("CUTOVER_PREFIX", "env")]);
    let mut flags = FlagValues::new();
    flags.insert("prefix", "flag/".into());
    let c = load(&flags, &env, Some(&f)).unwrap();
    assert_eq!(c.app.as_deref(), Some("from-file"));
    assert_eq!(c.bucket.as_deref(), Some("env-bucket"));
    assert_eq!(c.prefix, "flag");
    assert_eq!(c.concurrency, 32);
    assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
    assert_eq!(c.origins["prefix"], Origin::Flag("prefix"));
    assert!(matches!(c.origins["app"], Origin::File { line: 1, .. }));
}

#[test]
fn every_key_is_reachable_from_flag_env_and_file() {
    // redis_cluster was once missing from the table and silently ignored.
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("x.pem");
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let pem = pem.to_str().unwrap();
    let signing = dir.path().join("signing.pem");
    let key_pem = crate::signing::SigningKey::generate()
        .unwrap()
        .private_pem();
    std::fs::write(&signing, key_pem.as_bytes()).unwrap();
    let signing = signing.to_str().unwrap();
    for key in KEYS {
        // Settings some keys need beside them (cross_checks).
        let companions: Vec<(&str, &str)> = match key.name {
            "redis_ca_file" | "redis_tls_insecure" => vec![("REDIS_URL", "rediss://h:1")],
            "redis_tls_cert_file" => vec![
                ("REDIS_URL", "rediss://h:1"),
                ("CUTOVER_REDIS_TLS_KEY_FILE", pem),
            ],
            "redis_tls_key_file" => vec![
                ("REDIS_URL", "rediss://h:1"),
                ("CUTOVER_REDIS_TLS_CERT_FILE", pem),
            ],
            "redis_sentinel_password" => vec![("REDIS_URL", "redis+sentinel://h:1/m")],
            _ => vec![],
        };
        let sample = match key.name {
            "app" => "shop",
            "bucket" => "b-1",
            "prefix" | "meta_prefix" => "somewhere",
            "cdn_url" | "s3_endpoint" | "build_url" | "app_origin" => "https://x.example",
            "cloudfront_distribution_id" => "E2ABCDEF",
            "role_arn" => "arn:aws:iam::123456789012:role/deploy",
            "redis_url" => "redis://h:1",
            "redis_cluster" | "s3_path_style" | "redis_tls_insecure" | "require_signature" => {
                "true"
            }
            "signing_key" => signing,
            "redis_ca_file" | "redis_tls_cert_file" | "redis_tls_key_file" => pem,
            "manifest" => "m.json",
            "manifest_format" => "vite",
            "cache_control" | "deployed_by" | "git_sha" | "git_branch" => "v",
            _ => "7",
        };
        let text = format!("{} = \"{sample}\"\n", key.name);
        let c = load(&FlagValues::new(), &env_of(&companions), Some(&file(&text)))
            .unwrap_or_else(|e| panic!("{}: {e}", key.name));
        assert!(c.origins.contains_key(key.name), "file: {}", key.name);
        let mut env = companions.clone();
        env.push((key.env[0], sample));
        let c = load(&FlagValues::new(), &env_of(&env), None).unwrap();
        assert!(c.origins.contains_key(key.name), "env: {}", key.name);
        if let Some(flag) = key.flag {
            let mut flags = FlagValues::new();
            flags.insert(key.name, sample.to_string());
            let c = load(&flags, &env_of(&companions), None).unwrap();
            assert_eq!(c.origins[key.name], Origin::Flag(flag));
        }
    }
    let c = load(
        &FlagValues::new(),
        &env_of(&[("CUTOVER_REDIS_CLUSTER", "true")]),
        None,
    )
    .unwrap();
    assert!(c.redis_cluster);
}

#[test]
fn bad_values_name_key_origin_and_allowed() {
    let msg = error(&FlagValues::new(), &[("CUTOVER_CONCURRENCY", "lots")], None);
    assert!(
        msg.contains("concurrency")
            && msg.contains("CUTOVER_CONCURRENCY")
            && msg.contains("1 to 512"),
        "{msg}"
    );
    let msg = error(
        &FlagValues::new(),
        &[],
        Some("app = \"x\"\n\nbucket = \"Not_A_Bucket\"\n"),
    );
    assert!(
        msg.contains("cutover.toml:3") && msg.contains("bucket"),
        "{msg}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let msg = error(
        &FlagValues::new(),
        &[("CUTOVER_CONCURRENCY", "lots"), ("CUTOVER_LOCK_TTL", "1")],
        Some("bukket = \"b\"\n"),
    );
    assert!(msg.starts_with("3 configuration problems: "), "{msg}");
    for part in ["concurrency", "lock_ttl_secs", "bukket"] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
}

#[test]
fn unknown_file_key_and_bad_toml_are_reported_with_line() {
    let msg = error(
        &FlagValues::new(),
        &[],
        Some("app = \"a\"\nbukket = \"b\"\n"),
    );
    assert!(
        msg.contains("unknown key `bukket`") && msg.contains("cutover.toml:2"),
        "{msg}"
    );
    let msg = error(&FlagValues::new(), &[], Some("app = \n"));
    assert!(
        msg.contains("not valid TOML") && msg.contains("cutover.toml:1"),
        "{msg}"
    );
}

#[test]
fn redis_password_never_echoed() {
    let msg = error(
        &FlagValues::new(),
        &[("REDIS_URL", "http://:hunter2@host:6379")],
        None,
    );
    assert!(!msg.contains("hunter2"), "{msg}");
    assert_eq!(
        mask_url("redis://user:hunter2@h:6379/0"),
        "redis://user:***@h:6379/0"
    );
    assert_eq!(mask_url("redis://:hunter2@h:6379"), "redis://:***@h:6379");
    assert_eq!(mask_url("redis://hunter2@h:6379"), "redis://***@h:6379");
    assert_eq!(mask_url("redis://h:6379"), "redis://h:6379");
}

#[test]
fn header_rules_and_keys() {
    let f = file(
        "app = \"shop\"\ncdn_url = \"https://cdn.example.com/\"\n[[headers]]\nglob = \"**/*.wasm\"\ncache_control = \"no-cache\"\n",
    );
    let c = load(&FlagValues::new(), &env_of(&[]), Some(&f)).unwrap();
    assert_eq!(c.header_rules.len(), 1);
    assert!(c.header_rules[0].matcher.is_match("js/a.wasm"));
    assert_eq!(c.meta_prefix().unwrap(), "_cutover/shop/");
    assert_eq!(c.object_key("js/a.js"), "packs/js/a.js");
    assert_eq!(
        c.public_url("js/a.js").unwrap(),
        "https://cdn.example.com/packs/js/a.js"
    );
    let msg = error(
        &FlagValues::new(),
        &[],
        Some("[[headers]]\nglob = \"*.js\"\n"),
    );
    assert!(msg.contains("sets nothing"), "{msg}");
}

#[test]
fn exclude_is_a_list_in_every_layer_and_later_layers_replace_it() {
    let f = file("exclude = [\"**/*.map\", \"stats.json\"]\n");
    let c = load(&FlagValues::new(), &env_of(&[]), Some(&f)).unwrap();
    assert_eq!(c.exclude.globs, ["**/*.map", "stats.json"]);
    assert!(c.exclude.matches("js/a.js.map") && c.exclude.matches("a.js.map"));
    assert!(!c.exclude.matches("js/a.js"));
    // The environment replaces the file's list; a flag replaces both.
    let c = load(
        &FlagValues::new(),
        &env_of(&[("CUTOVER_EXCLUDE", " *.txt  *.md ")]),
        Some(&f),
    )
    .unwrap();
    assert_eq!(c.exclude.globs, ["*.txt", "*.md"]);
    let flags = FlagValues::from([("exclude", "*.LICENSE.txt".to_string())]);
    let c = load(&flags, &env_of(&[("CUTOVER_EXCLUDE", "*.md")]), Some(&f)).unwrap();
    assert_eq!(c.exclude.globs, ["*.LICENSE.txt"]);
    assert!(c.exclude.leaves_out("x.LICENSE.txt.gz"));

    let msg = error(&FlagValues::new(), &[], Some("exclude = [\"a b\"]\n"));
    assert!(
        msg.contains("without spaces") && msg.contains("cutover.toml:1"),
        "{msg}"
    );
    let msg = error(&FlagValues::new(), &[], Some("exclude = [1]\n"));
    assert!(msg.contains("array of strings"), "{msg}");
    let msg = error(&FlagValues::new(), &[("CUTOVER_EXCLUDE", "js/[")], None);
    assert!(
        msg.contains("exclude") && msg.contains("CUTOVER_EXCLUDE") && msg.contains("bad glob"),
        "{msg}"
    );
    // A list key only: other keys still refuse arrays.
    let msg = error(&FlagValues::new(), &[], Some("app = [\"a\"]\n"));
    assert!(msg.contains("expected a string"), "{msg}");
}

#[test]
fn several_redis_targets_from_every_layer() {
    let f = file("redis_targets = [\"redis://a:1\", \"redis://:pw@b:2/1\"]\n");
    let c = load(&FlagValues::new(), &env_of(&[]), Some(&f)).unwrap();
    assert_eq!(c.redis_urls, ["redis://a:1", "redis://:pw@b:2/1"]);
    assert_eq!(c.redis_url, "redis://a:1");
    assert_eq!(c.for_redis("redis://b:2").redis_urls, ["redis://b:2"]);
    let c = load(
        &FlagValues::new(),
        &env_of(&[("CUTOVER_REDIS_URL", "redis://x:1 redis://y:1")]),
        Some(&f),
    )
    .unwrap();
    assert_eq!(c.redis_urls, ["redis://x:1", "redis://y:1"]);
    // Without a file, the generic REDIS_URL applies.
    let c = load(
        &FlagValues::new(),
        &env_of(&[("REDIS_URL", "redis://x:1 redis://y:1")]),
        None,
    )
    .unwrap();
    assert_eq!(c.redis_urls, ["redis://x:1", "redis://y:1"]);
    // Default: one.
    let c = load(&FlagValues::new(), &env_of(&[]), None).unwrap();
    assert_eq!(c.redis_urls, ["redis://127.0.0.1:6379"]);

    let msg = error(
        &FlagValues::new(),
        &[],
        Some("redis_url = \"redis://a:1\"\nredis_targets = [\"redis://b:1\"]\n"),
    );
    assert!(
        msg.contains("redis_url is set twice") && msg.contains("redis_targets is another name"),
        "{msg}"
    );
    let msg = error(
        &FlagValues::new(),
        &[("REDIS_URL", "redis://:hunter2@a:1 redis://:hunter2@a:1")],
        None,
    );
    assert!(
        msg.contains("listed twice") && !msg.contains("hunter2"),
        "{msg}"
    );
    let msg = error(
        &FlagValues::new(),
        &[("REDIS_URL", "redis://:hunter2@a:1 http://:hunter2@b")],
        None,
    );
    assert!(
        msg.contains("redis://") && !msg.contains("hunter2"),
        "{msg}"
    );
}

#[test]
fn environments_layer_between_the_top_level_and_the_environment() {
    let text = "app = \"shop\"\nbucket = \"shared\"\n\n[environments.staging]\ncdn_url = \"https://staging-cdn.example\"\nredis_targets = [\"redis://s:1\"]\n\n[environments.production]\ncdn_url = \"https://cdn.example\"\nbucket = \"prod-assets\"\n";
    let f = file(text);
    let flags = FlagValues::from([(ENV_FLAG, "production".to_string())]);
    let c = load(&flags, &env_of(&[]), Some(&f)).unwrap();
    assert_eq!(c.environment.as_deref(), Some("production"));
    assert_eq!(c.bucket.as_deref(), Some("prod-assets"));
    assert_eq!(c.cdn_url.as_deref(), Some("https://cdn.example"));
    assert_eq!(c.app.as_deref(), Some("shop"));
    assert_eq!(
        c.origins["bucket"].to_string(),
        "cutover.toml:10 [environments.production]"
    );
    // CUTOVER_ENV selects too; environment variables still win over it.
    let c = load(
        &FlagValues::new(),
        &env_of(&[
            ("CUTOVER_ENV", "staging"),
            ("CUTOVER_CDN_URL", "https://x.example"),
        ]),
        Some(&f),
    )
    .unwrap();
    assert_eq!(c.bucket.as_deref(), Some("shared"));
    assert_eq!(c.redis_urls, ["redis://s:1"]);
    assert_eq!(c.cdn_url.as_deref(), Some("https://x.example"));
    // No environment selected: the top level alone.
    let c = load(&FlagValues::new(), &env_of(&[]), Some(&f)).unwrap();
    assert_eq!(c.cdn_url, None);

    let flags = FlagValues::from([(ENV_FLAG, "prod".to_string())]);
    let msg = error(&flags, &[], Some(text));
    assert!(
        msg.contains("environment \"prod\" (from flag --env) is not defined")
            && msg.contains("defined: production, staging"),
        "{msg}"
    );
    let msg = error(&flags, &[], None);
    assert!(msg.contains("has no [environments.prod]"), "{msg}");
    // Errors name the environment and the line.
    let flags = FlagValues::from([(ENV_FLAG, "production".to_string())]);
    let msg = error(
        &flags,
        &[],
        Some("[environments.production]\ncdn_url = \"ftp://x\"\nbogus = 1\n"),
    );
    assert!(
        msg.contains(
            "invalid cdn_url = \"ftp://x\" (from cutover.toml:2 [environments.production])"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("unknown key `bogus` in cutover.toml:3 [environments.production]"),
        "{msg}"
    );
    let msg = error(&flags, &[], Some("[environments]\nproduction = 1\n"));
    assert!(msg.contains("invalid environments"), "{msg}");
}

#[test]
fn header_values_are_printable_ascii() {
    let msg = error(
        &FlagValues::new(),
        &[("CUTOVER_CACHE_CONTROL", "public\r\nX-Evil: 1")],
        None,
    );
    assert!(
        msg.contains("cache_control") && msg.contains("printable ASCII"),
        "{msg}"
    );
    let msg = error(
        &FlagValues::new(),
        &[],
        Some("[[headers]]\nglob = \"*.js\"\ncache_control = \"caché\"\n"),
    );
    assert!(msg.contains("printable ASCII"), "{msg}");
}

#[test]
fn ci_metadata_from_circleci_and_github() {
    let env = env_of(&[
        ("CIRCLE_SHA1", "abc"),
        ("CIRCLE_BRANCH", "main"),
        ("USER", "root"),
    ]);
    let c = load(&FlagValues::new(), &env, None).unwrap();
    assert_eq!(
        (c.git_sha.as_deref(), c.git_branch.as_deref()),
        (Some("abc"), Some("main"))
    );
    assert_eq!(c.deployed_by.as_deref(), Some("root"));
    let env = env_of(&[
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "o/r"),
        ("GITHUB_RUN_ID", "7"),
        ("GITHUB_ACTOR", "octo"),
        ("USER", "root"),
    ]);
    let c = load(&FlagValues::new(), &env, None).unwrap();
    assert_eq!(
        c.build_url.as_deref(),
        Some("https://github.com/o/r/actions/runs/7")
    );
    assert_eq!(c.deployed_by.as_deref(), Some("octo"));
}

#[test]
fn prefixes_one_rule_and_no_overlap() {
    // Empty means "not set" from every source.
    let mut flags = FlagValues::new();
    flags.insert("prefix", String::new());
    let c = load(&flags, &env_of(&[("CUTOVER_PREFIX", "")]), None).unwrap();
    assert_eq!(c.prefix, "packs");
    // The bucket root is refused: release records would be public.
    let msg = error(&FlagValues::new(), &[("CUTOVER_PREFIX", "/")], None);
    assert!(msg.contains("not the bucket root"), "{msg}");
    for (prefix, meta) in [("_cutover", ""), ("packs", "packs/_meta"), ("a", "a")] {
        let mut env = vec![("CUTOVER_APP", "shop"), ("CUTOVER_PREFIX", prefix)];
        if !meta.is_empty() {
            env.push(("CUTOVER_META_PREFIX", meta));
        }
        let msg = error(&FlagValues::new(), &env, None);
        assert!(msg.contains("overlap"), "{prefix} {meta}: {msg}");
    }
}

#[test]
fn redis_tls_and_sentinel_settings_are_checked_together() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let pem = pem.to_str().unwrap();
    let msg = error(
        &FlagValues::new(),
        &[("REDIS_URL", "redis://h:1"), ("CUTOVER_REDIS_CA_FILE", pem)],
        None,
    );
    assert!(
        msg.contains("redis_ca_file (from environment variable CUTOVER_REDIS_CA_FILE) applies to TLS connections only")
            && msg.contains("rediss://"),
        "{msg}"
    );
    let msg = error(
        &FlagValues::new(),
        &[
            ("REDIS_URL", "rediss://h:1"),
            ("CUTOVER_REDIS_TLS_CERT_FILE", pem),
        ],
        None,
    );
    assert!(msg.contains("needs redis_tls_key_file"), "{msg}");
    let missing = dir.path().join("nope.pem");
    let msg = error(
        &FlagValues::new(),
        &[
            ("REDIS_URL", "rediss://h:1"),
            ("CUTOVER_REDIS_CA_FILE", missing.to_str().unwrap()),
        ],
        None,
    );
    assert!(
        msg.contains("invalid redis_ca_file") && msg.contains("readable PEM file"),
        "{msg}"
    );
    let msg = error(
        &FlagValues::new(),
        &[
            ("REDIS_URL", "redis+sentinel://:hunter2@h:1/m"),
            ("CUTOVER_REDIS_CLUSTER", "true"),
        ],
        None,
    );
    assert!(
        msg.contains("Sentinel") && !msg.contains("hunter2"),
        "{msg}"
    );
    let msg = error(
        &FlagValues::new(),
        &[("REDIS_URL", "redis+sentinel://:hunter2@h:1")],
        None,
    );
    assert!(
        msg.contains("master's name is missing") && !msg.contains("hunter2"),
        "{msg}"
    );
    let c = load(
        &FlagValues::new(),
        &env_of(&[
            (
                "REDIS_URL",
                "redis+sentinel://:pw@h:26379,h2:26379/mymaster",
            ),
            ("CUTOVER_REDIS_SENTINEL_PASSWORD", "s"),
        ]),
        None,
    )
    .unwrap();
    assert_eq!(
        c.redis_url_masked(),
        "redis+sentinel://:***@h:26379,h2:26379/mymaster"
    );
}

#[test]
fn cdn_url_with_credentials_is_refused() {
    let msg = error(
        &FlagValues::new(),
        &[("CUTOVER_CDN_URL", "https://user:secret@cdn.example.com")],
        None,
    );
    assert!(msg.contains("without credentials"), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
}

#[test]
fn cdn_url_with_dot_segments_is_refused() {
    for url in [
        "https://cdn.example.com/../_cutover",
        "https://cdn.example.com/a/./b",
        "https://cdn.example.com/a/%2E%2E/b",
        "https://cdn.example.com/a/..",
    ] {
        let msg = error(&FlagValues::new(), &[("CUTOVER_CDN_URL", url)], None);
        assert!(msg.contains("without `.` or `..` segments"), "{url}: {msg}");
    }
}

#[test]
fn a_signing_key_is_never_shown_nor_quoted() {
    let key = crate::signing::SigningKey::generate().unwrap();
    let pem = key.private_pem().to_string();
    let body = pem.lines().nth(1).unwrap().to_string();
    // Inline (CUTOVER_SIGNING_KEY holding the PEM): loaded, never kept as given.
    let c = load(
        &FlagValues::new(),
        &env_of(&[("CUTOVER_APP", "shop"), ("CUTOVER_SIGNING_KEY", &pem)]),
        None,
    )
    .unwrap();
    assert_eq!(
        c.signing_key.as_ref().unwrap().fingerprint(),
        key.fingerprint()
    );
    assert!(!c.values["signing_key"].contains(&body));
    // A bad inline key, or a value that is neither a file nor a PEM (a key
    // pasted without its PEM lines): the error never quotes it.
    let broken = pem.replace(&body[4..24], "BBBBBBBBBBBBBBBBBBBB");
    for value in [broken.as_str(), body.as_str()] {
        let e = error(&FlagValues::new(), &[("CUTOVER_SIGNING_KEY", value)], None);
        assert!(e.contains("signing_key"), "{e}");
        assert!(!e.contains(&body[24..44]), "{e}");
    }
    // require_signature without a key: refused before anything, naming signing_key.
    let c = load(
        &FlagValues::new(),
        &env_of(&[("CUTOVER_REQUIRE_SIGNATURE", "true")]),
        None,
    )
    .unwrap();
    let e = c.check_can_sign().unwrap_err();
    assert_eq!(exit_code(&e), 2);
    assert!(e.to_string().contains("signing_key"));
}

#[test]
fn an_empty_flag_or_environment_value_counts_as_not_set() {
    let f = file("bucket = \"file-bucket\"\nprefix = \"top\"\n");
    let mut flags = FlagValues::new();
    flags.insert("prefix", "".into());
    flags.insert("bucket", " ".into());
    let c = load(&flags, &env_of(&[]), Some(&f)).unwrap();
    assert_eq!(
        (c.prefix.as_str(), c.bucket.as_deref()),
        ("top", Some("file-bucket"))
    );
    assert!(matches!(c.origins["prefix"], Origin::File { .. }));
    let env = env_of(&[("CUTOVER_PREFIX", "env"), ("CUTOVER_BUCKET", "env-bucket")]);
    let c = load(&flags, &env, Some(&f)).unwrap();
    assert_eq!(
        (c.prefix.as_str(), c.bucket.as_deref()),
        ("env", Some("env-bucket"))
    );
    // An empty value in [environments.NAME] leaves the top level's.
    let f = file("prefix = \"top\"\n[environments.staging]\nprefix = \"\"\n");
    let mut flags = FlagValues::new();
    flags.insert(ENV_FLAG, "staging".into());
    assert_eq!(load(&flags, &env_of(&[]), Some(&f)).unwrap().prefix, "top");
}

#[test]
fn the_aws_endpoint_variables_are_read_like_the_s3_client_reads_them() {
    assert_eq!(aws_endpoint(&env_of(&[])), None);
    let both = env_of(&[
        ("AWS_ENDPOINT_URL", "http://b"),
        ("AWS_ENDPOINT_URL_S3", "http://a"),
    ]);
    assert_eq!(
        aws_endpoint(&both),
        Some(("AWS_ENDPOINT_URL_S3", "http://a".into()))
    );
    let empty_s3 = env_of(&[
        ("AWS_ENDPOINT_URL", "http://b"),
        ("AWS_ENDPOINT_URL_S3", ""),
    ]);
    assert_eq!(
        aws_endpoint(&empty_s3),
        Some(("AWS_ENDPOINT_URL", "http://b".into()))
    );
}

#[test]
fn generic_variables_rank_below_the_file_and_say_so() {
    // A CI image's REDIS_URL must not switch another Redis than the file's.
    let f = file("redis_targets = [\"redis://:filepw@pod1:6379\", \"redis://pod2:6379/2\"]\nrole_arn = \"arn:aws:iam::1:role/file\"\n");
    let env = [
        ("REDIS_URL", "redis://:genericpw@ci-redis:6379"),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/other"),
    ];
    let c = load(&FlagValues::new(), &env_of(&env), Some(&f)).unwrap();
    assert_eq!(
        c.redis_urls,
        ["redis://:filepw@pod1:6379", "redis://pod2:6379/2"]
    );
    assert_eq!(c.role_arn.as_deref(), Some("arn:aws:iam::1:role/file"));
    assert!(matches!(
        c.origins["redis_url"],
        Origin::File { line: 1, .. }
    ));
    assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
    let note = c.notes.iter().find(|n| n.starts_with("redis_url")).unwrap();
    assert!(
        note.contains("hides REDIS_URL")
            && note.contains("ci-redis")
            && note.contains("cutover.toml:1")
            && note.contains("CUTOVER_REDIS_URL or --redis-url"),
        "{note}"
    );
    assert!(
        !note.contains("filepw") && !note.contains("genericpw"),
        "{note}"
    );
    // The environment section ranks above generic variables too.
    let f = file("[environments.prod]\nredis_url = \"redis://pod1:1\"\n");
    let flags = FlagValues::from([(ENV_FLAG, "prod".to_string())]);
    let c = load(&flags, &env_of(&env), Some(&f)).unwrap();
    assert_eq!(c.redis_urls, ["redis://pod1:1"]);
    assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
    // cutover's own variable and the flag still win over the file, silently.
    let own = [("CUTOVER_REDIS_URL", "redis://own:1"), env[0]];
    let c = load(&flags, &env_of(&own), Some(&f)).unwrap();
    assert_eq!(c.redis_urls, ["redis://own:1"]);
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    let flag = FlagValues::from([
        (ENV_FLAG, "prod".to_string()),
        ("redis_url", "redis://flag:1".to_string()),
    ]);
    let c = load(&flag, &env_of(&env), Some(&f)).unwrap();
    assert_eq!(c.redis_urls, ["redis://flag:1"]);
    // The same value in both: nothing hidden, nothing to say.
    let f = file("redis_url = \"redis://:genericpw@ci-redis:6379\"\n");
    let c = load(&FlagValues::new(), &env_of(&env[..1]), Some(&f)).unwrap();
    assert!(c.notes.is_empty(), "{:?}", c.notes);
}

#[test]
fn promote_does_not_refuse_a_generic_variable_the_environments_hide() {
    let f = file("[environments.a]\nredis_url = \"redis://a:1\"\n[environments.b]\nredis_url = \"redis://b:1\"\n");
    let (a, b) = load_pair(
        &FlagValues::new(),
        &env_of(&[("REDIS_URL", "redis://ci:1")]),
        Some(&f),
        "a",
        "b",
    )
    .unwrap();
    assert_eq!(
        (a.redis_url.as_str(), b.redis_url.as_str()),
        ("redis://a:1", "redis://b:1")
    );
    let err = load_pair(
        &FlagValues::new(),
        &env_of(&[("CUTOVER_REDIS_URL", "redis://ci:1")]),
        Some(&f),
        "a",
        "b",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("CUTOVER_REDIS_URL sets redis_url"),
        "{err}"
    );
}

#[test]
fn redis_targets_are_named_host_port_db_without_credentials() {
    assert_eq!(redis_target("redis://:pw@h:6380/3"), "h:6380/3");
    assert_eq!(redis_target("redis://user:pw@h"), "h:6379/0");
    assert_eq!(redis_target("redis://secret@h:1/"), "h:1/0");
    assert_eq!(
        redis_target("rediss://u:pw@h:6390/1#insecure"),
        "h:6390/1 (TLS)"
    );
    assert_eq!(redis_target("redis://[::1]:7000"), "[::1]:7000/0");
    assert_eq!(
        redis_target("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2"),
        "mymaster via s1:26379,s2:26380/2"
    );
    assert_eq!(redis_target("not a url"), "<unparseable URL>");
}

#[test]
fn an_aws_endpoint_variable_in_effect_is_noted_unless_s3_endpoint_pins_it() {
    let env = [("AWS_ENDPOINT_URL", "http://localstack:4566")];
    let c = load(&FlagValues::new(), &env_of(&env), None).unwrap();
    assert!(
        c.notes.len() == 1
            && c.notes[0].contains("AWS_ENDPOINT_URL")
            && c.notes[0].contains("localstack:4566"),
        "{:?}",
        c.notes
    );
    let f = file("s3_endpoint = \"http://minio:9000\"\n");
    let c = load(&FlagValues::new(), &env_of(&env), Some(&f)).unwrap();
    assert!(c.notes.is_empty(), "{:?}", c.notes);
}

#[test]
fn notify_entries_resolve_their_url_and_keep_their_line() {
    use crate::notify::{Format, Kind};
    let f = file(
        "app = \"shop\"\n\n\
         [[notify]]\nurl_env = \"SLACK_WEBHOOK_URL\"\nformat = \"slack\"\nevents = [\"failed\", \"rolled_back\"]\n\n\
         [[notify]]\nurl = \"https://hooks.example.com/h/T0k3n-in-the-file\"\n",
    );
    let env = env_of(&[(
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T0/B0/Pl4nted",
    )]);
    let c = load(&FlagValues::new(), &env, Some(&f)).unwrap();
    assert_eq!(c.notify.len(), 2);
    let (slack, plain) = (&c.notify[0], &c.notify[1]);
    assert_eq!(
        slack.url.as_deref(),
        Some("https://hooks.slack.com/services/T0/B0/Pl4nted")
    );
    assert_eq!(slack.url_env.as_deref(), Some("SLACK_WEBHOOK_URL"));
    assert_eq!(slack.format, Format::Slack);
    assert_eq!(slack.events, Some(vec![Kind::Failed, Kind::RolledBack]));
    assert_eq!(slack.origin, "cutover.toml:4");
    assert_eq!(plain.format, Format::Json);
    assert_eq!(plain.events, None);
    assert_eq!(plain.origin, "cutover.toml:9");
    // Every URL is a secret but its scheme and host.
    let secrets = c.secrets();
    assert!(secrets.iter().any(|s| s == "services/T0/B0/Pl4nted"));
    assert!(secrets.iter().any(|s| s == "h/T0k3n-in-the-file"));
    // The variable unset: kept without a URL (warned about when used),
    // so that read-only commands work where the secret is not given.
    let c = load(&FlagValues::new(), &env_of(&[]), Some(&f)).unwrap();
    assert_eq!(c.notify[0].url, None);
    assert_eq!(c.notify[0].shown(), "$SLACK_WEBHOOK_URL");
}

#[test]
fn bad_notify_entries_are_exit_2_naming_the_key_and_the_fix_never_the_url() {
    let bad = |text: &str, env: &[(&str, &str)]| error(&FlagValues::new(), env, Some(text));
    let msg = bad(
        "[[notify]]\nurl_env = \"H\"\nevents = [\"deployed\"]\n",
        &[],
    );
    assert!(
        msg.contains("unknown event \"deployed\"")
            && msg.contains("rolled_back")
            && msg.contains("cutover.toml:3"),
        "{msg}"
    );
    let msg = bad("[[notify]]\nurl_env = \"H\"\nformat = \"teams\"\n", &[]);
    assert!(
        msg.contains("format") && msg.contains("json") && msg.contains("slack"),
        "{msg}"
    );
    let msg = bad("[[notify]]\nurl_env = \"H\"\nchannel = \"#ops\"\n", &[]);
    assert!(
        msg.contains("unknown key `channel` in [[notify]]") && msg.contains("url_env"),
        "{msg}"
    );
    let msg = bad("[[notify]]\nurl_env = \"H\"\nevents = []\n", &[]);
    assert!(msg.contains("empty list sends nothing"), "{msg}");
    let msg = bad("[[notify]]\nformat = \"json\"\n", &[]);
    assert!(
        msg.contains("has no URL") && msg.contains("url_env"),
        "{msg}"
    );
    let msg = bad(
        "[[notify]]\nurl = \"https://h.example/x\"\nurl_env = \"H\"\n",
        &[],
    );
    assert!(msg.contains("both url and url_env"), "{msg}");
    let msg = bad("notify = \"https://h.example/Secr3tPath\"\n", &[]);
    assert!(
        msg.contains("[[notify]]") && !msg.contains("Secr3tPath"),
        "{msg}"
    );
    // A URL is never quoted: a bad one, a URL put in url_env, a variable
    // holding something else.
    let msg = bad("[[notify]]\nurl = \"ftp://h.example/Secr3tPath\"\n", &[]);
    assert!(
        msg.contains("[[notify]] url") && !msg.contains("Secr3tPath"),
        "{msg}"
    );
    let msg = bad(
        "[[notify]]\nurl_env = \"https://h.example/Secr3tPath\"\n",
        &[],
    );
    assert!(
        msg.contains("url_env") && !msg.contains("Secr3tPath"),
        "{msg}"
    );
    let msg = bad(
        "[[notify]]\nurl_env = \"HOOK\"\n",
        &[("HOOK", "h.example/Secr3tPath")],
    );
    assert!(msg.contains("HOOK") && !msg.contains("Secr3tPath"), "{msg}");
    // A list the file's other lists keep from being read with their
    // lines: its problems name the list's line.
    let msg = bad(
        "[environments.staging]\nnotify = \"x\"\n\n[[environments.production.notify]]\nurl_env = \"H\"\nformat = \"bad\"\n",
        &[],
    );
    assert!(
        msg.contains("invalid notify (from cutover.toml:2 [environments.staging])")
            && msg.contains("format = \"bad\" (from cutover.toml:4 [environments.production])"),
        "{msg}"
    );
    // Every problem at once.
    let msg = bad(
        "[[notify]]\nurl_env = \"H\"\nformat = \"x\"\n\n[[notify]]\nevents = [\"nope\"]\n",
        &[],
    );
    assert!(msg.starts_with("3 configuration problems"), "{msg}");
}

#[test]
fn an_environments_notify_list_replaces_the_top_level() {
    let f = file(
        "[[notify]]\nurl = \"https://top.example/h/aaaaaaaa\"\n\n\
         [environments.staging]\nbucket = \"b-staging\"\n\n\
         [environments.production]\nbucket = \"b-production\"\n\n\
         [[environments.production.notify]]\nurl = \"https://prod.example/h/bbbbbbbb\"\nevents = [\"failed\"]\n",
    );
    let for_env = |name: &str| {
        let flags = FlagValues::from([(ENV_FLAG, name.to_string())]);
        load(&flags, &env_of(&[]), Some(&f)).unwrap().notify
    };
    let staging = for_env("staging");
    assert_eq!(staging.len(), 1);
    assert_eq!(staging[0].shown(), "https://top.example/***");
    let production = for_env("production");
    assert_eq!(production.len(), 1);
    assert_eq!(production[0].shown(), "https://prod.example/***");
    assert!(production[0].origin.contains("[environments.production]"));
    let (_, target) = load_pair(
        &FlagValues::new(),
        &env_of(&[]),
        Some(&f),
        "staging",
        "production",
    )
    .unwrap();
    assert_eq!(target.notify, production);
}
