# frozen_string_literal: true

require "test_helper"
require "active_support/notifications"
require "socket"
require "support/rollout"

# Rollouts in the reader (docs/redis.md, "Rollouts and skew protection"):
# the assignment vectors, which keys get the canary, which canaries are
# refused, and how a running reader and its forked workers follow a rollout.
# The canary keys are written by hand per the contract (support/rollout.rb);
# contract_test.rb drives the real `cutover rollout`.
class RolloutTest < Minitest::Test
  include CutoverTestHelpers
  include RolloutHelpers

  POPULATION = (0...10_000).map { |i| "user-#{i}" }.freeze

  def test_every_vector_of_rollout_json
    VECTORS["cases"].each do |c|
      assert_equal c["bucket"], Cutover::Rollout.bucket(c["salt"], c["key"]), "#{c['salt']} #{c['key'].inspect}"
      # The same key in another Ruby encoding hashes its UTF-8 bytes.
      assert_equal c["bucket"], Cutover::Rollout.bucket(c["salt"], c["key"].b)
    end
    assert_operator VECTORS["cases"].size, :>=, 10
    assert_includes VECTORS["cases"].map { |c| c["key"] }, "ü-ñ", "a non-ASCII key is among them"
    VECTORS["thresholds"].each do |t|
      assert_equal t["threshold"], Cutover::Rollout.threshold(t["percent"]), "percent #{t['percent']}"
    end
    population = VECTORS["population"]
    assert_equal "user-0 .. user-9999", population["keys"]
    buckets = POPULATION.map { |k| Cutover::Rollout.bucket(population["salt"], k) }
    assert_equal population["canary_at_5"], buckets.count { |b| b < 500 }
    assert_equal population["canary_at_25"], buckets.count { |b| b < 2500 }
    assert_raises(ArgumentError) { Cutover::Rollout.bucket(SALT, "") }
  end

  # A reader serving B live and A as the canary, at 5 % then 25 %: the
  # population's counts are the vectors', and raising keeps every key.
  def test_ten_thousand_keys_at_5_then_25_percent
    w = World.new("canary-population")
    (a, manifest_a), (b,) = deployed(w).values_at(:a, :b)
    r = reader(w, report_interval: 60)
    assert_equal b, r.release_id
    assert_nil r.canary_release_id
    wait_for_subscription(r)

    write_canary(w, canary_json(a, 5), manifest_a)
    wait_until("the reader serves the canary") { r.canary_release_id == a }
    at5 = POPULATION.select { |k| r.snapshot(key: k).release_id == a }
    assert_equal VECTORS.dig("population", "canary_at_5"), at5.size
    on_canary = r.snapshot(key: at5.first)
    assert on_canary.canary?
    assert_equal :canary, on_canary.origin
    assert on_canary.lookup("application.js.map"), "the canary snapshot is A's manifest"
    assert_equal b, r.snapshot.release_id, "no key: the live release"
    assert_equal b, r.snapshot(key: "").release_id
    assert_equal b, r.release_id
    assert_equal({ release_id: a, percent: 5 }, r.status[:canary])

    write_canary(w, canary_json(a, 25), manifest_a)
    wait_until("the reader serves the canary at 25 %") { r.status[:canary][:percent] == 25 }
    at25 = POPULATION.select { |k| r.snapshot(key: k).release_id == a }
    assert_equal VECTORS.dig("population", "canary_at_25"), at25.size
    assert_empty at5 - at25, "every key on the canary at 5 % is still on it at 25 %"
    assert_same on_canary, r.snapshot(key: at5.first), "raising the percent keeps the checked snapshot"
    assert_equal 1, log_lines.grep(/serving canary release #{a} .* to 5% of keys/).size, log_lines.join
    assert_equal 1, log_lines.grep(/serving canary release #{a} .* to 25% of keys/).size, log_lines.join

    report = wait_until("the fleet report names the canary") do
      json = admin.get(w.key("fleet:#{Socket.gethostname}:#{Process.pid}"))
      (doc = json && JSON.parse(json)) && doc["canary"] == a && doc
    end
    assert_equal b, report["release"]
    refute report.key?("refused")
  end

  # A canary written without an event: the poll of MGET current canary finds it.
  def test_the_poll_finds_a_canary_without_an_event
    w = World.new("canary-poll")
    (a, manifest_a), (b,) = deployed(w).values_at(:a, :b)
    r = reader(w)
    wait_for_subscription(r)
    canary_key, live_key = keys_around(Cutover::Rollout.threshold(50))
    write_canary(w, canary_json(a, 50), manifest_a, publish: false)
    wait_until("the poll found the canary") { r.snapshot(key: canary_key).release_id == a }
    assert_equal b, r.snapshot(key: live_key).release_id
    abort_canary(w, a, publish: false)
    wait_until("the poll found the canary gone") { r.canary_release_id.nil? }
    assert_equal b, r.snapshot(key: canary_key).release_id
    assert_equal 1, log_lines.grep(/no canary release of #{w.app} any more \(was #{a}, via poll\)/).size, log_lines.join
  end

  def rejections(app)
    events = []
    subscription = ActiveSupport::Notifications.subscribe("rejected.cutover") do |*args|
      payload = ActiveSupport::Notifications::Event.new(*args).payload
      events << payload if payload[:app] == app
    end
    yield events
  ensure
    ActiveSupport::Notifications.unsubscribe(subscription) if subscription
  end

  def fleet_report(w)
    json = admin.get(w.key("fleet:#{Socket.gethostname}:#{Process.pid}"))
    json && JSON.parse(json)
  end

  # Every key gets the live release.
  def assert_nobody_on_the_canary(r, live)
    assert_nil r.canary_release_id
    assert_equal [live], POPULATION.first(2000).map { |k| r.snapshot(key: k).release_id }.uniq
  end

  def test_a_canary_that_fails_a_check_is_served_to_nobody_and_reported
    w = World.new("canary-refused")
    (a, manifest_a), (b, manifest_b) = deployed(w).values_at(:a, :b)
    admin.set(w.key("signature"), sign("k1", b, manifest_b))
    forged = JSON.parse(manifest_a)
    forged["application.js"] = forged["application.js"].merge("src" => "https://evil.example/x.js")
    forged = JSON.generate(forged)
    rejections(w.app) do |events|
      r = reader(w, verify_keys: [PUBLIC["k1"]], asset_origins: [World::CDN], report_interval: 60)
      assert_equal b, r.release_id
      wait_for_subscription(r)
      no_release = canary_json(a, 5).sub(%("release":"#{a}"), '"release":7')
      signed = ->(manifest) { sign("k1", a, manifest) }
      # canary JSON, canary_manifest, canary_signature, why, the release the refusal names
      cases = [
        [no_release, manifest_a, signed.(manifest_a), /names no release/, nil],
        ["[1]", manifest_a, signed.(manifest_a), /not a JSON object/, nil],
        [canary_json(a, 50), manifest_a, nil, /unsigned/, a],
        [canary_json(a, 50), manifest_a, sign("other", a, manifest_a), /not configured/, a],
        [canary_json(a, 50), manifest_a, sign("k1", b, manifest_b), /signature is for release/, a],
        [canary_json(a, 50), forged, signed.(forged), /origin not in asset_origins/, a],
        [canary_json(a, 50), "{not json", signed.("{not json"), /cannot be read/, a],
        [canary_json(a, 50), nil, nil, /no cutover:\{#{w.app}\}:canary_manifest/, a],
        [canary_json(a, 0), manifest_a, signed.(manifest_a), /percent 0 is not/, a],
        [canary_json(a, 100), manifest_a, signed.(manifest_a), /percent 100 is not/, a],
        [canary_json(a, 5, salt: "abc"), manifest_a, signed.(manifest_a), /salt/, a],
        [canary_json(a, 5).sub('"v":1', '"v":2'), manifest_a, signed.(manifest_a), /unsupported canary/, a]
      ]
      cases.each_with_index do |(json, manifest, signature, reason, named), i|
        before = events.size
        write_canary(w, json, manifest, signature)
        wait_until("refusal #{i} (#{reason.source})") { events.size > before }
        assert_match reason, events.last[:reason]
        assert events.last[:canary]
        assert_equal [named], [events.last[:release]]
        assert_nobody_on_the_canary(r, b)
        assert_equal b, r.status[:release_id], "the live release is kept"
        assert_equal [named], [r.status[:canary_rejected]]
        refused = wait_until("the report names refusal #{i}") do
          (doc = fleet_report(w)) && doc["refused"] && doc["refused"]["reason"] == events.last[:reason] && doc
        end
        assert_equal [b, nil, named], [refused["release"], refused["canary"], refused["refused"]["release"]]
        refute r.refresh!, "a poll does not take it either"
      end
      assert_equal 12, events.size, "each refusal instrumented once"
      assert_equal 12, log_lines.grep(/refused canary release/).size, "and logged once"
      # The same refused canary read again (the full re-read an event makes,
      # run here from the test's thread) is not logged or instrumented again.
      assert_equal cases.last[0], admin.get(w.key("canary"))
      2.times { refute r.__send__(:refresh, :pubsub, r.__send__(:local).source, full: true) }
      assert_equal 12, log_lines.grep(/refused canary release/).size, log_lines.join
      assert_equal 12, events.size

      # Rightly signed, on the CDN: served, and the report's refusal of A
      # (the last one) is gone.
      write_canary(w, canary_json(a, 50), manifest_a, sign("k1", a, manifest_a))
      wait_until("the canary is served once it passes") { r.canary_release_id == a }
      doc = wait_until("the report names the canary") { (d = fleet_report(w)) && d["canary"] == a && d }
      refute doc.key?("refused"), doc.inspect
    end
  end

  def test_a_canary_naming_the_live_release_is_ignored
    w = World.new("canary-current")
    (a, manifest_a), (b, manifest_b) = deployed(w).values_at(:a, :b)
    r = reader(w, report_interval: 60)
    wait_for_subscription(r)
    write_canary(w, canary_json(b, 50), manifest_b)
    wait_until("the reader read it") { log_lines.grep(/names the live release #{b}/).any? }
    assert_nobody_on_the_canary(r, b)
    doc = wait_until("the first report") { fleet_report(w) }
    assert_nil doc["canary"]
    refute doc.key?("refused")
    assert_nil r.status[:canary_rejected]
    # A canary of A after it is served.
    write_canary(w, canary_json(a, 50), manifest_a)
    wait_until("the canary A is served") { r.canary_release_id == a }
  end

  # At boot, and in a process whose live release is refused: the canary is
  # checked on its own.
  def test_a_reader_booting_during_a_rollout_serves_the_canary
    w = World.new("canary-boot")
    (a, manifest_a), (b,) = deployed(w).values_at(:a, :b)
    write_canary(w, canary_json(a, 50), manifest_a)
    canary_key, live_key = keys_around(5000)
    r = reader(w)
    assert_equal a, r.snapshot(key: canary_key).release_id
    assert_equal b, r.snapshot(key: live_key).release_id
    assert_equal 1, log_lines.grep(/serving canary release #{a} of #{w.app} to 50% of keys \(live #{b}, via boot\)/).size
  end

  # ------------------------------------------------------- abort, complete, fork

  # Abort and complete reach a running reader and its forked workers within 2 s.
  def test_abort_and_complete_are_followed_by_a_reader_and_its_forked_workers
    w = World.new("canary-workers")
    (a, manifest_a), (b,) = deployed(w).values_at(:a, :b)
    keys = keys_around(5000)
    write_canary(w, canary_json(a, 50), manifest_a)
    parent = reader(w)
    assert_equal a, parent.canary_release_id
    workers = Array.new(2) { fork_rollout_worker(parent, keys) }
    serving = ->(*want) { all_serve?([parent] + workers, keys, *want) }
    wait_until("every worker serves the canary it inherited") { serving.(b, a, [a, b]) }
    wait_for_subscription(parent)

    abort_canary(w, a)
    wait_until("the abort reached the reader and every worker within 2 s") { serving.(b, nil, [b, b]) }

    write_canary(w, canary_json(a, 50), manifest_a)
    wait_until("the new rollout reached them") { serving.(b, a, [a, b]) }

    complete_canary(w, a, manifest_a)
    wait_until("the completion reached the reader and every worker within 2 s") { serving.(a, nil, [a, a]) }
    refute(workers.any? { |k| k.read.any? { |r| r["error"] } })
  ensure
    stop_workers(workers) if workers
  end
end
