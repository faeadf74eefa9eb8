//! The switch plans: which release a rollback goes to, what activate,
//! rollback and promote write and refuse, the pin's and the lock's plans.

use std::collections::{BTreeSet, HashMap};

use serde_json::json;

use crate::contract::{Action, ActivationEvent, Pin, PinChange};
use crate::error::exit_code;
use crate::plan::promote::promote;
use crate::plan::switch::*;
use crate::plan::{ObjectCopy, Step};
use crate::release::ReleaseRecord;
use crate::state::{Found, Inspected, LiveState, Stored};

/// A release of two files, one of them mutable (`logo.svg`).
fn release(id: &str) -> ReleaseRecord {
    serde_json::from_value(json!({
        "id": id, "app": "shop", "created_at": "", "created_at_ms": 0, "file_count": 2,
        "bytes": 6, "git_sha": null, "git_branch": null, "build_url": null, "deployed_by": null,
        "message": null, "bucket": "assets", "prefix": "packs", "cdn_url": "https://cdn.example.com",
        "manifest": {"a.js": format!("https://cdn.example.com/packs/js/a-{id}.js")},
        "files": [
            {"path": format!("js/a-{id}.js"), "size": 3, "sha256": "aa", "md5": "a1", "etag": "a1",
             "headers": {"content_type": "text/javascript; charset=utf-8", "cache_control": "immutable"}},
            {"path": "logo.svg", "size": 3, "sha256": format!("{id}5"), "md5": "b1", "etag": "b1", "mutable": true,
             "headers": {"content_type": "image/svg+xml", "cache_control": "no-cache"}},
        ],
    }))
    .unwrap()
}

fn live(current: Option<&str>, pin: Option<Pin>) -> LiveState {
    LiveState {
        current: current.map(str::to_string),
        manifest: current.map(|id| release(id).manifest),
        pin,
        ..Default::default()
    }
}

fn pin_of(release: &str) -> Pin {
    Pin {
        release: Some(release.into()),
        by: Some("ana".into()),
        at: "2026-01-01T00:00:00Z".into(),
        message: Some("incident".into()),
    }
}

/// Every object of `record` as `found` says, intact unless named.
fn objects<'r>(
    record: &'r ReleaseRecord,
    found: &[(&str, Found)],
) -> Vec<(String, &'r crate::release::ReleaseFile, Found)> {
    record
        .files
        .iter()
        .flatten()
        .map(|f| {
            let state = found
                .iter()
                .find(|(p, _)| *p == f.path)
                .map_or(Found::Intact, |(_, s)| s.clone());
            (format!("packs/{}", f.path), &**f, state)
        })
        .collect()
}

/// The mutable file's public key holding `record`'s bytes (nothing to restore).
fn restored(record: &ReleaseRecord) -> HashMap<String, Inspected> {
    let logo = &record.files.as_ref().unwrap()[1];
    HashMap::from([(
        "packs/logo.svg".to_string(),
        Inspected::Sha256(logo.sha256.clone()),
    )])
}

fn facts<'a>(
    action: Action,
    record: &'a ReleaseRecord,
    live: &'a LiveState,
    in_redis: &'a Stored<ReleaseRecord>,
    objects: &'a [(String, &'a crate::release::ReleaseFile, Found)],
    mutable: &'a HashMap<String, Inspected>,
) -> SwitchFacts<'a> {
    SwitchFacts {
        action,
        record,
        in_redis,
        live,
        several: false,
        objects,
        mutable,
        meta_prefix: "_cutover/shop/",
        bucket: "assets",
        live_record: None,
    }
}

fn names(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(Step::name).collect()
}

fn the_switch(steps: &[Step]) -> &crate::plan::Switch {
    steps
        .iter()
        .find_map(|s| match s {
            Step::Switch(s) => Some(s),
            _ => None,
        })
        .expect("a switch step")
}

#[test]
fn rollback_goes_to_the_newest_release_not_rolled_back_from() {
    let event = |release: &str, previous: Option<&str>| ActivationEvent {
        release: release.into(),
        previous: previous.map(str::to_string),
        action: "deploy".into(),
        at: String::new(),
        by: None,
        message: None,
        percent: None,
    };
    // Newest first: c (after b), b (after a).
    let history = [event("c", Some("b")), event("b", Some("a"))];
    let none = BTreeSet::new();
    let target = |current: Option<&str>, rolled_back: &BTreeSet<String>| {
        rollback_target("shop", &live(current, None), &history, rolled_back)
    };
    assert_eq!(target(Some("c"), &none).unwrap(), "b");
    // b was rolled back from once: the next rollback walks past it.
    let b = BTreeSet::from(["b".to_string()]);
    assert_eq!(target(Some("c"), &b).unwrap(), "a");
    let all = BTreeSet::from(["a".to_string(), "b".to_string()]);
    let e = target(Some("c"), &all).unwrap_err();
    assert_eq!(exit_code(&e), 2);
    assert!(e.to_string().contains("rollback --to"), "{e}");
    assert_eq!(exit_code(&target(None, &none).unwrap_err()), 2);
    // Only one release was ever live: nothing earlier, and no mention of
    // releases "rolled back from".
    let first = [event("a", None)];
    let e = rollback_target("shop", &live(Some("a"), None), &first, &none).unwrap_err();
    assert_eq!(exit_code(&e), 2);
    let text = e.to_string();
    assert!(
        text.contains("no release of shop was live before a"),
        "{text}"
    );
    assert!(!text.contains("rolled back from"), "{text}");
    // The history does not know the live release.
    assert!(target(Some("x"), &none)
        .unwrap_err()
        .to_string()
        .contains("does not say what was live before x"));
}

#[test]
fn activate_checks_then_switches_last() {
    let (old, new) = (release("01d"), release("2e3"));
    let live = live(Some(&old.id), None);
    let in_redis = Stored::Valid(new.summary());
    let objects = objects(&new, &[]);
    let mutable = restored(&new);
    let f = facts(Action::Activate, &new, &live, &in_redis, &objects, &mutable);
    let opts = SwitchOptions {
        verify_cdn: true,
        ..Default::default()
    };
    let plan = switch(&f, &opts).unwrap();
    assert!(!plan.already_live && !plan.repair);
    assert_eq!(names(&plan.steps), ["verify_cdn", "switch"]);
    let s = the_switch(&plan.steps);
    assert_eq!(s.expected(), Some(old.id.as_str()));
    assert_eq!(
        (s.pin.clone(), s.rolled_back_from.clone()),
        (PinChange::Respect, None)
    );
    assert_eq!(plan.manifest_diff.unwrap().changed.len(), 1);

    // Redis lost the record: registered again first.
    let lost = Stored::Missing;
    let f = facts(Action::Activate, &new, &live, &lost, &objects, &mutable);
    let plan = switch(&f, &SwitchOptions::default()).unwrap();
    assert_eq!(names(&plan.steps), ["register", "switch"]);

    // A missing object refuses the switch: exit 4, naming it.
    let broken = self::objects(&new, &[("js/a-2e3.js", Found::Missing)]);
    let f = facts(Action::Activate, &new, &live, &in_redis, &broken, &mutable);
    let e = switch(&f, &SwitchOptions::default()).unwrap_err();
    assert_eq!(exit_code(&e), 4);
    assert!(e.to_string().contains("packs/js/a-2e3.js: missing"), "{e}");
}

#[test]
fn already_live_writes_nothing_and_a_lost_manifest_is_repaired() {
    let r = release("01d");
    let in_redis = Stored::Valid(r.summary());
    let (objects, mutable) = (Vec::new(), HashMap::new());
    let serving = live(Some(&r.id), None);
    let f = facts(
        Action::Activate,
        &r,
        &serving,
        &in_redis,
        &objects,
        &mutable,
    );
    let plan = switch(&f, &SwitchOptions::default()).unwrap();
    assert!(plan.already_live && plan.steps.is_empty());
    assert!(is_live(&serving, &r, &in_redis));

    // `current` is the release but its manifest is gone: repaired.
    let damaged = LiveState {
        manifest: None,
        ..serving.clone()
    };
    let objects = self::objects(&r, &[]);
    let mutable = restored(&r);
    let f = facts(
        Action::Activate,
        &r,
        &damaged,
        &in_redis,
        &objects,
        &mutable,
    );
    let plan = switch(&f, &SwitchOptions::default()).unwrap();
    assert!(plan.repair && !plan.already_live);
    assert_eq!(names(&plan.steps), ["switch"]);

    // Redis holds another release's record, or a damaged one, under its
    // key: not "already live"; the record is written again, replacing it.
    for wrong in [
        Stored::Valid(release("2e3").summary()),
        Stored::Broken("not a valid release record".into()),
    ] {
        assert!(!is_live(&serving, &r, &wrong));
        let f = facts(Action::Activate, &r, &serving, &wrong, &objects, &mutable);
        let plan = switch(&f, &SwitchOptions::default()).unwrap();
        assert!(plan.repair && !plan.already_live);
        assert_eq!(names(&plan.steps), ["register", "switch"]);
        assert!(matches!(
            plan.steps[0],
            Step::Register {
                replace_broken: true,
                ..
            }
        ));
    }
}

#[test]
fn the_pin_refuses_activate_rollback_pins_and_unpin_clears() {
    let (old, new) = (release("01d"), release("2e3"));
    let pinned = live(Some(&old.id), Some(pin_of(&old.id)));
    let in_redis = Stored::Valid(new.summary());
    let objects = objects(&new, &[]);
    let mutable = restored(&new);
    let f = facts(
        Action::Activate,
        &new,
        &pinned,
        &in_redis,
        &objects,
        &mutable,
    );
    let e = switch(&f, &SwitchOptions::default()).unwrap_err();
    assert_eq!(exit_code(&e), 3);
    assert!(e.to_string().contains("--unpin"), "{e}");

    let unpin = SwitchOptions {
        unpin: true,
        ..Default::default()
    };
    let plan = switch(&f, &unpin).unwrap();
    assert_eq!(the_switch(&plan.steps).pin, PinChange::Clear);
    assert_eq!(plan.pin_after, None);

    // Rollback is not refused by the pin: it sets its own, and marks the
    // release it leaves as rolled back from.
    let f = facts(
        Action::Rollback,
        &new,
        &pinned,
        &in_redis,
        &objects,
        &mutable,
    );
    let opts = SwitchOptions {
        by: Some("bo".into()),
        at: "now".into(),
        message: Some("bad deploy".into()),
        ..Default::default()
    };
    let plan = switch(&f, &opts).unwrap();
    let s = the_switch(&plan.steps);
    let pin = Pin {
        release: Some(new.id.clone()),
        by: Some("bo".into()),
        at: "now".into(),
        message: Some("bad deploy".into()),
    };
    assert_eq!(s.pin, PinChange::Set(pin.clone()));
    assert_eq!(s.rolled_back_from.as_deref(), Some(old.id.as_str()));
    assert_eq!(plan.pin_after, Some(pin));
}

#[test]
fn mutable_files_are_restored_and_invalidated() {
    let (old, new) = (release("01d"), release("2e3"));
    let live = live(Some(&old.id), None);
    let in_redis = Stored::Valid(new.summary());
    let objects = objects(&new, &[]);
    // The public logo holds the old release's bytes.
    let mutable = restored(&old);
    let f = facts(Action::Rollback, &new, &live, &in_redis, &objects, &mutable);
    let opts = SwitchOptions {
        invalidate: Some(("E123".into(), false)),
        ..Default::default()
    };
    let plan = switch(&f, &opts).unwrap();
    assert_eq!(names(&plan.steps), ["copy", "switch", "invalidate"]);
    let Step::Copy(copies) = &plan.steps[0] else {
        panic!()
    };
    assert_eq!(
        (copies[0].from.as_str(), copies[0].to.as_str()),
        ("_cutover/shop/mutable/2e35", "packs/logo.svg")
    );
    let Step::Invalidate { paths, .. } = &plan.steps[2] else {
        panic!()
    };
    assert_eq!(paths, &["/packs/logo.svg"]);
}

#[test]
fn promote_copies_first_and_counts_copied_objects_as_there() {
    let r = release("2e3");
    let live = live(None, None);
    let in_redis = Stored::Missing;
    // The target lacks a.js: it is copied, so the switch finds it.
    let objects = objects(&r, &[("js/a-2e3.js", Found::Missing)]);
    let mutable = restored(&r);
    let f = facts(Action::Promote, &r, &live, &in_redis, &objects, &mutable);
    let copy = ObjectCopy {
        from_bucket: Some("staging".into()),
        from: "packs/js/a-2e3.js".into(),
        to: "packs/js/a-2e3.js".into(),
        headers: r.files.as_ref().unwrap()[0].headers.clone().unwrap(),
        sha256: "aa".into(),
        if_match: None,
    };
    let plan = promote(
        vec![copy],
        Some("_cutover/shop/releases/2e3.json".into()),
        &f,
        &SwitchOptions::default(),
    )
    .unwrap();
    assert_eq!(names(&plan.steps), ["copy", "record", "register", "switch"]);
    // Without the copy, the missing object refuses the promote.
    let e = promote(Vec::new(), None, &f, &SwitchOptions::default()).unwrap_err();
    assert_eq!(exit_code(&e), 4);
}

#[test]
fn pin_and_unlock_plans() {
    let nothing_live = live(None, None);
    let e = pin("shop", &nothing_live, Some((None, "now".into(), None))).unwrap_err();
    assert_eq!(exit_code(&e), 2);
    // Unpin with no pin: nothing to write.
    assert!(pin("shop", &nothing_live, None).unwrap().1.is_empty());
    let serving = live(Some("01d"), None);
    let (new_pin, steps) = pin(
        "shop",
        &serving,
        Some((Some("ana".into()), "now".into(), None)),
    )
    .unwrap();
    assert_eq!(new_pin.unwrap().release.as_deref(), Some("01d"));
    assert_eq!(names(&steps), ["pin"]);
    let pinned = live(Some("01d"), Some(pin_of("01d")));
    let (none, steps) = pin("shop", &pinned, None).unwrap();
    assert!(none.is_none());
    assert!(matches!(steps.as_slice(), [Step::Pin(None)]));
    assert!(
        matches!(unlock("me/1/ab", None).as_slice(), [Step::Unlock { owner, wrong_type: None }] if owner == "me/1/ab")
    );
    assert!(
        matches!(unlock("", Some("hash")).as_slice(), [Step::Unlock { wrong_type: Some(t), .. }] if t == "hash")
    );
}

#[test]
fn the_stale_guard_refuses_an_older_commit_unless_allowed_or_unknown() {
    let timed = |id: &str, sha: &str, at: Option<&str>| {
        let mut r = release(id);
        r.git_sha = Some(sha.into());
        r.git_committed_at = at.map(str::to_string);
        r
    };
    let live = timed("b", "222", Some("2026-12-02T00:00:00Z"));
    let older = timed("a", "111", Some("2026-12-01T23:59:59+00:00"));
    let newer = timed("c", "333", Some("2026-12-02T00:00:01Z"));
    let e = not_older(&older, Some(&live), false).unwrap_err();
    assert_eq!(exit_code(&e), 3);
    let text = e.to_string();
    assert!(
        text.contains("commit 111") && text.contains("older than commit 222"),
        "{text}"
    );
    assert!(not_older(&older, Some(&live), true).unwrap().is_none());
    assert!(not_older(&newer, Some(&live), false).unwrap().is_none());
    // The same release, nothing live, or no commit time: never refused.
    assert!(not_older(&live, Some(&live), false).unwrap().is_none());
    assert!(not_older(&older, None, false).unwrap().is_none());
    let untimed = timed("d", "444", None);
    let why = not_older(&untimed, Some(&live), false).unwrap().unwrap();
    assert!(why.contains("no commit time"), "{why}");
    assert!(not_older(&older, Some(&untimed), false).unwrap().is_some());
}
