# frozen_string_literal: true

require "test_helper"
require "digest"
require "rack/mock"
require "socket"
require "support/rollout"

# The rollout scenarios of tests/contract/scenarios.md (test_contract_<id>,
# counted by ContractTest#test_every_contract_scenario_has_a_test), driven by
# the real `cutover rollout` against moto and redis-server.
class RolloutContractTest < Minitest::Test
  include CutoverTestHelpers
  include RolloutHelpers

  POPULATION = (0...10_000).map { |i| "user-#{i}" }.freeze

  def rollout!(w, *args)
    w.cutover!("rollout", *args)
  end

  # The canary key as the CLI wrote it.
  def canary_key(w)
    JSON.parse(admin.get(w.key("canary")))
  end

  # The assignment as docs/redis.md writes it, computed here rather than by
  # the reader under test.
  def bucket(salt, key)
    Digest::SHA256.digest("#{salt}:#{key}")[0, 4].unpack1("N") % 10_000
  end

  def fleet_report(w, pid = Process.pid)
    json = admin.get(w.key("fleet:#{Socket.gethostname}:#{pid}"))
    json && JSON.parse(json)
  end

  def test_contract_canary_assignment
    w = World.new("c-assign")
    a = w.deploy(:a)
    b = w.deploy(:b)
    r = reader(w, report_interval: 60)
    assert_equal b, r.release_id
    wait_for_subscription(r)

    rollout!(w, a, "--percent", "5")
    wait_until("the reader serves the canary within 2 s") { r.canary_release_id == a }
    canary = canary_key(w)
    assert_equal [a, 5], canary.values_at("release", "percent")
    salt = canary["salt"]
    assert_match(/\A\h{32}\z/, salt)
    expected = ->(threshold) { POPULATION.map { |k| bucket(salt, k) < threshold ? a : b } }
    at5 = POPULATION.map { |k| r.snapshot(key: k) }
    assert_equal expected.(500), at5.map(&:release_id)
    # A's source map entry is "application.js.map" (Shakapacker), B's "application-js.map" (flat).
    canary_map = JSON.parse(admin.get(w.key("canary_manifest"))).dig("application.js.map", "src")
    live_map = JSON.parse(admin.get(w.key("manifest")))["application-js.map"]
    assert [canary_map, live_map].all?
    assert_equal expected.(500).map { |id| id == a ? canary_map : live_map },
                 at5.map { |s| s.lookup("application.js.map") || s.lookup("application-js.map") },
                 "A's manifest for the keys on the canary, B's for the others"
    assert_equal b, r.snapshot.release_id, "no key: B"

    rollout!(w, "--percent", "25")
    wait_until("the raise reached the reader within 2 s") { r.status[:canary]&.fetch(:percent) == 25 }
    assert_equal salt, canary_key(w)["salt"], "the salt is kept"
    at25 = POPULATION.map { |k| r.snapshot(key: k).release_id }
    assert_equal expected.(2500), at25
    assert(POPULATION.each_index.all? { |i| at5[i].release_id != a || at25[i] == a }, "every key on A stays on A")

    report = wait_until("the fleet report names the canary") { (d = fleet_report(w)) && d["canary"] == a && d }
    assert_equal b, report["release"]
  end

  # A rollout of A over B at 50 %, a reader and two workers forked from it
  # serving it; yields them and the two keys on either side.
  def with_rollout_and_workers(name)
    w = World.new(name)
    a = w.deploy(:a)
    b = w.deploy(:b)
    rollout!(w, a, "--percent", "50")
    salt = canary_key(w)["salt"]
    keys = [POPULATION.find { |k| bucket(salt, k) < 5000 }, POPULATION.find { |k| bucket(salt, k) >= 5000 }]
    parent = reader(w, report_interval: 60)
    workers = Array.new(2) { fork_rollout_worker(parent, keys) }
    processes = [parent] + workers
    wait_until("every process serves the rollout") { all_serve?(processes, keys, b, a, [a, b]) }
    wait_for_subscription(parent)
    yield w, a, b, processes, keys
  ensure
    stop_workers(workers) if workers
  end

  def test_contract_rollout_complete
    with_rollout_and_workers("c-complete") do |w, a, b, processes, keys|
      rollout!(w, "complete")
      wait_until("every process serves A to everyone within 2 s") { all_serve?(processes, keys, a, nil, [a, a]) }
      report = wait_until("the fleet report says A, no canary") { (d = fleet_report(w)) && d["release"] == a && d }
      assert_nil report["canary"]
      assert admin.zscore(w.key("retired"), b), "B is retired"
      assert_nil admin.get(w.key("canary"))
    end
  end

  def test_contract_rollout_abort
    with_rollout_and_workers("c-abort") do |w, a, b, processes, keys|
      rollout!(w, "abort")
      wait_until("every process serves B to everyone within 2 s") { all_serve?(processes, keys, b, nil, [b, b]) }
      report = wait_until("the fleet report says no canary") { (d = fleet_report(w)) && d.key?("canary") && d["canary"].nil? && d }
      assert_equal b, report["release"]
      assert admin.zscore(w.key("retired"), a), "A is retired"
      assert_equal a, processes.first.release_snapshot(a)&.release_id, "a request naming A still gets it"
    end
  end

  def test_contract_skew
    w = World.new("c-skew")
    a = w.deploy(:a)
    b = w.deploy(:b)
    assert admin.zscore(w.key("retired"), a), "the deploy of B retired A"
    r = reader(w)
    assert_same r.snapshot, r.release_snapshot(b), "the live release, from memory"

    rollout!(w, a, "--percent", "5")
    wait_until("the reader serves the canary") { r.canary_release_id == a }
    as_canary = r.release_snapshot(a)
    assert_equal [a, :canary], [as_canary.release_id, as_canary.origin]
    rollout!(w, "abort")
    wait_until("the canary is off") { r.canary_release_id.nil? }
    retired = r.release_snapshot(a)
    assert_equal [a, :retired], [retired.release_id, retired.origin]
    assert_equal as_canary.urls.sort, retired.urls.sort, "the manifest A served as the canary"
    assert_equal as_canary.entrypoint("application"), retired.entrypoint("application")

    # Through the Rack middleware: the header chooses, and the response says it.
    # (the body: A's "application.js.map", which B does not have)
    app = Cutover::Middleware.new(lambda do |env|
      [200, { "Content-Type" => "text/plain" }, [Cutover::Middleware.snapshot(env).lookup("application.js.map").to_s]]
    end, reader: r)
    status, headers, body = app.call(Rack::MockRequest.env_for("/", "HTTP_X_CUTOVER_RELEASE" => a))
    assert_equal [200, a, retired.lookup("application.js.map")], [status, headers["X-Cutover-Release"], body.join]
    refute_empty body.join
    _, headers, body = app.call(Rack::MockRequest.env_for("/"))
    assert_equal [b, ""], [headers["X-Cutover-Release"], body.join]

    assert_nil r.release_snapshot("0123456789abcdef"), "not a release"
    short = reader(w, skew_max_age: 1)
    wait_until("A was retired more than a second ago", timeout: 3) { short.release_snapshot(a).nil? }
    assert_operator now_ms - admin.zscore(w.key("retired"), a), :>, 1000
    admin.del(w.key("release:#{a}"))
    assert_nil reader(w).release_snapshot(a), "its record deleted, as prune does"
  end
end
