# frozen_string_literal: true

require "test_helper"
require "securerandom"
require "support/rollout"

# Skew protection in the reader (Reader#release_snapshot): which releases a
# request may name, read once from their records and cached, and how little
# Redis a request path costs. Releases deployed by the real CLI; the
# retired set written by hand per the contract.
class SkewTest < Minitest::Test
  include CutoverTestHelpers
  include RolloutHelpers

  def retire(w, id, age_seconds)
    admin.zadd(w.key("retired"), now_ms - (age_seconds * 1000).round, id)
  end

  def test_current_canary_and_recently_retired_releases_are_served
    w = World.new("skew")
    (a, manifest_a), (b, manifest_b) = deployed(w).values_at(:a, :b)
    retire(w, a, 3600)
    r = reader(w)
    assert_equal 86_400, r.skew_max_age

    live = r.release_snapshot(b)
    assert_same r.snapshot, live, "the live release, from memory"
    old = r.release_snapshot(a)
    assert_equal [a, :retired], [old.release_id, old.origin]
    assert_equal JSON.parse(manifest_a).dig("application.js", "src"), old.lookup("application.js")
    assert_equal 3, old.entrypoint("application")["js"].size
    zscores = command_calls("zscore")
    gets = command_calls("get")
    100.times { assert_same old, r.release_snapshot(a) }
    assert_equal [zscores, gets], [command_calls("zscore"), command_calls("get")], "cached: no Redis"

    # A as the canary (B live): the canary's own snapshot.
    write_canary(w, canary_json(a, 10), manifest_a)
    wait_until("the canary is served") { r.canary_release_id == a }
    assert_equal :canary, r.release_snapshot(a).origin
    abort_canary(w, a)
    wait_until("the canary is gone") { r.canary_release_id.nil? }
    assert_equal :retired, r.release_snapshot(a).origin, "retired again: from the cache"
    assert_equal b, r.release_snapshot(b).release_id
    refute_includes log_lines.join, "refused"
    assert manifest_b
  end

  def test_too_old_unknown_pruned_or_malformed_ids_get_nil
    w = World.new("skew-nil")
    (a,), (b,) = deployed(w).values_at(:a, :b)
    r = reader(w, skew_max_age: 600)
    assert_equal 600, r.skew_max_age

    retire(w, a, 601)
    assert_nil r.release_snapshot(a), "retired longer ago than skew_max_age"
    never = (a.to_i(16) ^ 1).to_s(16).rjust(16, "0")
    assert_nil r.release_snapshot(never), "not a release"
    pruned = "0123456789abcdef"
    retire(w, pruned, 1)
    assert_nil r.release_snapshot(pruned), "retired, but its record is gone"
    calls = command_calls("zscore")
    [nil, "", 7, a[0, 6], a.upcase, "#{a}0", "../#{a}", "#{a}\r\nX: 1", b * 4, "ü" * 16].each do |id|
      assert_nil r.release_snapshot(id), id.inspect
    end
    assert_equal calls, command_calls("zscore"), "ids that are not full release ids are not looked up"
  end

  def test_the_age_is_checked_on_every_use
    w = World.new("skew-age")
    (a,), = deployed(w).values_at(:a, :b)
    r = reader(w, skew_max_age: 1.5)
    retire(w, a, 1)
    assert_equal a, r.release_snapshot(a)&.release_id
    wait_until("A ages out of the window", timeout: 3) { r.release_snapshot(a).nil? }
    calls = command_calls("zscore")
    50.times { assert_nil r.release_snapshot(a) }
    assert_equal calls, command_calls("zscore"), "the negative answer is cached"
  end

  # Random ids cost at most one lookup each, and no more than
  # Skew::LOOKUPS_PER_SECOND a second in all.
  def test_random_ids_cannot_make_every_request_read_redis
    w = World.new("skew-flood")
    deployed(w)
    r = reader(w)
    ids = Array.new(200) { SecureRandom.hex(8) }
    calls = command_calls("zscore")
    started = monotonic
    3.times { ids.each { |id| assert_nil r.release_snapshot(id) } }
    elapsed = monotonic - started
    looked_up = command_calls("zscore") - calls
    assert_operator looked_up, :>, 0
    assert_operator looked_up, :<=, Cutover::Skew::LOOKUPS_PER_SECOND * (elapsed.ceil + 1),
                    "600 requests in #{elapsed.round(2)} s"
  end

  # The record's manifest passes the checks a live manifest passes: with
  # verify_keys, its signature over JSON.generate of the parsed manifest
  # (what the CLI signed: serde's compact JSON in the record's key order).
  def test_a_retired_record_is_checked_like_a_live_manifest
    w = World.new("skew-signed")
    signed = { "CUTOVER_SIGNING_KEY" => SIGNATURES["private_keys"]["k1"], "CUTOVER_PREFIX" => "packs" }
    deploy = lambda do |build|
      w.cutover!("deploy", File.join(World::FIXTURES, World::BUILDS.fetch(build)), env: signed)["release"].fetch("id")
    end
    a = deploy.(:a)
    deploy.(:b)
    retire(w, a, 10)
    r = reader(w, verify_keys: [PUBLIC["k1"]], asset_origins: [World::CDN])
    assert_equal a, r.release_snapshot(a)&.release_id, "signed by the CLI: verified"

    record = JSON.parse(admin.get(w.key("release:#{a}")))
    assert record["signature"], "the CLI signed A's record"
    altered = lambda do |src|
      record["manifest"].merge("application.js" => record["manifest"]["application.js"].merge("src" => src))
    end
    evil = altered.("https://evil.example/x.js")
    {
      ->(_) { record } => /signature is for release/, # A's record, signature and all, under another id
      lambda do |id| # altered after signing
        record.merge("manifest" => altered.("#{World::CDN}/packs/x.js"),
                     "signature" => sign("k1", id, JSON.generate(record["manifest"])))
      end => /SHA-256/,
      ->(_) { record.except("signature") } => /unsigned/,
      ->(id) { record.merge("manifest" => evil, "signature" => sign("k1", id, JSON.generate(evil))) } => /origin not in asset_origins/,
      ->(_) { record.merge("manifest" => "{not json") } => /no readable manifest/,
      ->(id) { record.merge("manifest" => [], "signature" => sign("k1", id, "[]")) } => /no readable manifest/
    }.each_with_index do |(forge, reason), i|
      id = format("%016x", 0xabc0 + i)
      admin.set(w.key("release:#{id}"), JSON.generate(forge.(id).merge("id" => id)))
      retire(w, id, 10)
      2.times { assert_nil r.release_snapshot(id), reason.source }
      assert_equal 1, log_lines.grep(/refused retired release #{id} of #{w.app} for skew protection: .*#{reason.source}/).size,
                   log_lines.join
    end
    assert_equal a, r.release_snapshot(a)&.release_id
  end

  def test_redis_errors_mean_nil_and_the_cache_still_answers
    server = RedisServer.new.start
    w = World.new("skew-down", redis_url: server.url)
    a = w.deploy(:a)
    w.deploy(:b)
    server.admin.zadd(w.key("retired"), now_ms, a)
    r = reader(w)
    assert_equal a, r.release_snapshot(a)&.release_id
    server.pause
    started = monotonic
    assert_nil r.release_snapshot("0123456789abcdef"), "Redis does not answer: nil"
    assert_operator monotonic - started, :<, 0.6, "within the previews' short timeout"
    assert_equal a, r.release_snapshot(a)&.release_id, "a cached release needs no Redis"
    started = monotonic
    assert_nil r.release_snapshot("fedcba9876543210")
    assert_operator monotonic - started, :<, 0.1, "no lookup for a while after an error"
    assert_equal 1, log_lines.grep(/cannot read retired release/).size, "logged once: #{log_lines.join}"
  ensure
    server&.kill
  end
end
