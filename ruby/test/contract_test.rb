# frozen_string_literal: true

require "test_helper"
require "active_support/notifications"
require "base64"
require "digest"
require "openssl"

# tests/contract/scenarios.md, one test per scenario (test_contract_<id>),
# against the real cutover binary, moto and redis-server.
class ContractTest < Minitest::Test
  include CutoverTestHelpers

  SCENARIOS = File.join(TestServers::ROOT, "tests/contract/scenarios.md")

  # What tells the two fixture releases apart: A (Shakapacker) has
  # "application.js.map" and a three-chunk entrypoint with integrity; B
  # (flat) has "application-js.map" and only application.js.
  def signature(snapshot)
    js = snapshot.entrypoint("application")["js"]
    [snapshot.lookup("application.js.map") ? :a : :b, snapshot.lookup("application-js.map") ? :b : :a,
     js.size == 3 ? :a : :b, js.all? { |c| c["integrity"] } ? :a : :b]
  end

  def serves?(reader, build)
    signature(reader.snapshot).uniq == [build]
  end

  # The scenarios' tests live here and in rollout_contract_test.rb.
  def test_every_contract_scenario_has_a_test
    ids = File.read(SCENARIOS).scan(/^- `([a-z0-9-]+)`:/).flatten
    assert_operator ids.size, :>=, 13, "scenarios.md lists the scenarios as - `id`: ..."
    require "rollout_contract_test"
    tests = [self.class, RolloutContractTest].flat_map { |k| k.public_instance_methods.map(&:to_s) }
    missing = ids.map { |id| "test_contract_#{id.tr('-', '_')}" } - tests
    assert_empty missing, "scenarios without a test"
  end

  def test_contract_boot
    w = World.new("boot")
    a = w.deploy(:a)
    r = reader(w)
    current, manifest = TestServers.redis.admin.mget(w.key("current"), w.key("manifest"))
    live = JSON.parse(manifest)

    assert_equal a, current
    assert_equal current, r.release_id
    assert_equal live.fetch("application.js").fetch("src"), r.lookup("application.js")
    assert_match %r{\Ahttps://cdn\.example\.com/packs/js/application-\h+\.js\z}, r.lookup("application.js")
    entry = r.entrypoint("application")
    expected = live.dig("entrypoints", "application", "assets")
    assert_equal expected["js"], entry["js"]
    assert_equal expected["css"], entry["css"]
    assert_equal [%r{/runtime-}, %r{/841-}, %r{/application-}], entry["js"].map { |c| Regexp.new(c["src"][%r{/[a-z0-9]+-}]) }
    assert(entry["js"].all? { |c| c["integrity"].start_with?("sha384-") })
    assert_equal [], entry["preload"]

    # From memory: 10,000 answers send no command (the background poll adds
    # at most a few GETs in the meantime).
    admin = TestServers.redis.admin
    before = admin.info("stats")["total_commands_processed"].to_i
    10_000.times { r.lookup("application.js") && r.entrypoint("application") && r.release_id }
    sent = admin.info("stats")["total_commands_processed"].to_i - before - 1 # the INFO itself
    assert_operator sent, :<, 10
  end

  def test_contract_missing_entry
    w = World.new("missing")
    a = w.deploy(:a)
    r = reader(w)

    assert_nil r.lookup("nope.js")
    assert_nil r.entrypoint("nope")
    error = assert_raises(Cutover::MissingEntry) { r.lookup!("nope.js") }
    assert_includes error.message, '"nope.js"'
    assert_includes error.message, a
    assert_equal ["nope.js", a], [error.entry, error.release_id]
    assert_includes assert_raises(Cutover::MissingEntry) { r.entrypoint!("nope") }.message, a
  end

  def test_contract_switch
    w = World.new("switch")
    a = w.deploy(:a)
    events = []
    subscription = ActiveSupport::Notifications.subscribe("refresh.cutover") do |*args|
      payload = ActiveSupport::Notifications::Event.new(*args).payload
      events << payload if payload[:app] == w.app
    end
    # A poll this slow never runs during the test: the switch must come by pub/sub.
    r = reader(w, poll_interval: 60)
    wait_for_subscription(r)

    b = w.deploy(:b)
    wait_until("the reader serves B") { r.release_id == b }
    assert serves?(r, :b)
    assert_equal({ release: b, previous: a, source: "pubsub" }, r.status[:last_switch].slice(:release, :previous, :source))
    refute r.refresh!, "a check right after the switch finds nothing new"
    assert_equal [{ app: w.app, release: a, previous: nil, source: "boot" },
                  { app: w.app, release: b, previous: a, source: "pubsub" }], events
    assert_equal 1, log_lines.grep(/serving release #{b} .*previous #{a}, via pubsub/).size, log_lines.join
  ensure
    ActiveSupport::Notifications.unsubscribe(subscription) if subscription
  end

  def test_contract_rollback
    w = World.new("rollback")
    a = w.deploy(:a)
    b = w.deploy(:b)
    r = reader(w)
    assert_equal b, r.release_id
    wait_for_subscription(r)

    assert_equal a, w.rollback.fetch("release")
    wait_until("the reader serves A again") { r.release_id == a }
    assert serves?(r, :a)
  end

  def test_contract_consistent_pair
    w = World.new("pair")
    ids = { a: w.deploy(:a), b: w.deploy(:b) }
    by_id = ids.invert
    r = reader(w)
    wait_for_subscription(r)
    stop = false
    samplers = Array.new(2) do
      Thread.new do
        seen = Hash.new(0)
        until stop
          snapshot = r.snapshot
          seen[[snapshot.release_id, signature(snapshot)]] += 1
          Thread.pass # like a request thread doing other work: do not starve the refresher
        end
        seen
      end
    end

    switches = %i[a b] * 5
    switches.each do |build|
      w.activate(ids[build])
      wait_until("the reader serves #{build}") { r.release_id == ids[build] }
    end
    stop = true
    seen = samplers.map(&:value).reduce { |x, y| x.merge(y) { |_, m, n| m + n } }

    assert_equal ids.values.sort, seen.keys.map(&:first).uniq.sort, "both releases were answered"
    assert_operator seen.values.sum, :>, 1000
    seen.each_key do |id, sig|
      assert_equal [by_id.fetch(id)] * 4, sig, "release #{id} answered with another release's manifest"
    end
  end

  Worker = Struct.new(:pid, :reports, :stop, :buffer) do
    # Every complete report received so far (non-blocking).
    def read
      loop { buffer << reports.read_nonblock(65_536) }
    rescue IO::WaitReadable, EOFError
      buffer.lines.select { |l| l.end_with?("\n") }.map { |l| JSON.parse(l) }
    end
  end

  # A worker process forked from a preloaded parent: it reports its release
  # over a pipe each time it changes, using the inherited reader with no hook.
  def fork_worker(reader)
    reports_r, reports_w = IO.pipe
    stop_r, stop_w = IO.pipe
    pid = fork do
      reports_r.close
      stop_w.close
      begin
        last = nil
        until IO.select([stop_r], nil, nil, 0.01)
          id = reader.release_id
          next if id == last

          chunks = reader.entrypoint("application")["js"].size
          reports_w.puts(JSON.generate("pid" => Process.pid, "release" => id, "chunks" => chunks))
          reports_w.flush
          last = id
        end
        exit!(0)
      rescue Exception => e # rubocop:disable Lint/RescueException
        reports_w.puts(JSON.generate("error" => "#{e.class}: #{e.message}"))
        exit!(1)
      end
    end
    reports_w.close
    stop_r.close
    Worker.new(pid, reports_r, stop_w, +"")
  end

  def test_contract_workers
    w = World.new("workers")
    a = w.deploy(:a)
    parent = reader(w)
    assert_equal a, parent.release_id
    workers = Array.new(2) { fork_worker(parent) }
    latest = ->(worker) { worker.read.last }
    serving = ->(id) { workers.all? { |k| latest.(k)&.fetch("release", nil) == id } }

    wait_until("every worker answers from the inherited release") { serving.(a) }
    pids = workers.map { |k| latest.(k)["pid"] }
    assert_equal workers.map(&:pid), pids
    refute_includes pids, Process.pid

    b = w.deploy(:b)
    wait_until("every worker serves B within 2s of the deploy") { serving.(b) }
    assert(workers.all? { |k| latest.(k)["chunks"] == 1 })

    w.rollback
    wait_until("every worker serves A within 2s of the rollback") { serving.(a) }
    assert(workers.all? { |k| latest.(k)["chunks"] == 3 })
    assert_equal a, parent.release_id
  ensure
    # Each worker also holds the stop pipes of the workers forked before it:
    # close them all before waiting for any.
    workers&.each { |k| k.stop.close }
    workers&.each do |k|
      _, status = Process.wait2(k.pid)
      assert status.success?, "worker #{k.pid} failed: #{k.read.last}"
    end
  end

  # ------------------------------------------------ idle worker, first request

  # A worker forked from a preloaded parent that stays idle (no lookup at
  # all) until told to answer once: its first answer, its pid and the
  # sockets it holds to the test Redis.
  def fork_idle_worker(reader)
    ask_r, ask_w = IO.pipe
    answer_r, answer_w = IO.pipe
    pid = fork do
      ask_w.close
      answer_r.close
      begin
        ask_r.read(1) # idle until asked
        snap = reader.snapshot
        answer_w.puts(JSON.generate("pid" => Process.pid, "release" => snap.release_id,
                                    "chunks" => snap.entrypoint("application")["js"].size,
                                    "sockets" => RedisSockets.of(Process.pid, TestServers.redis.port),
                                    "ports" => reader.status[:local_ports],
                                    "own" => RedisSockets.by_local_port(reader.status[:local_ports])))
        answer_w.flush
        ask_r.read(1) # hold the sockets until the parent has compared them
        exit!(0)
      rescue Exception => e # rubocop:disable Lint/RescueException
        answer_w.puts(JSON.generate("error" => "#{e.class}: #{e.message}"))
        exit!(1)
      end
    end
    ask_r.close
    answer_w.close
    [pid, ask_w, answer_r]
  end

  def test_contract_idle_worker_first_request
    w = World.new("idle")
    ids = { a: w.deploy(:a), b: w.deploy(:b) }
    w.activate(ids[:a])
    parent = reader(w)
    wait_for_subscription(parent)
    build = :a
    5.times do |round|
      workers = Array.new(2) { fork_idle_worker(parent) }
      build = build == :a ? :b : :a
      w.activate(ids[build]) # returns once the switch is made
      # The workers stay idle for longer than the poll interval (the
      # scenario, not a synchronisation): a worker whose refresher waits for
      # its first lookup to start still holds the release it was forked with.
      sleep parent.poll_interval * 1.5
      answers = workers.map do |_, ask, answer|
        ask.write("x")
        ask.flush
        JSON.parse(answer.gets || '{"error":"no answer"}')
      end
      # The parent reader's own connections, as socket inodes.
      parent_ports = parent.status[:local_ports]
      assert_equal 2, parent_ports.size
      parent_sockets = RedisSockets.by_local_port(parent_ports)
      workers.each { |_, ask, _| ask.close }
      workers.each do |pid, _, answer|
        _, status = Process.wait2(pid)
        answer.close
        assert status.success?, "worker #{pid} failed"
      end
      answers.each do |a|
        refute a["error"], a["error"]
        assert_equal ids[build], a["release"], "round #{round}: worker #{a['pid']}'s first answer is stale"
        assert_equal build == :a ? 3 : 1, a["chunks"]
        # Its own two connections (poll, subscribe); the parent reader's
        # sockets are not open in it.
        assert_equal 2, a["ports"].size, "round #{round}: worker #{a['pid']}'s connections #{a['ports'].inspect}"
        assert_empty a["ports"] & parent_ports
        assert_equal 2, (a["own"] & a["sockets"]).size, "the worker holds its own"
        assert_empty a["sockets"] & parent_sockets, "round #{round}: worker #{a['pid']} holds the parent's sockets"
      end
      assert_empty answers[0]["ports"] & answers[1]["ports"], "two workers share a connection"
    end
  end

  # ----------------------------------------------------------- refused releases

  K = JSON.parse(File.read(File.join(TestServers::ROOT, "tests/contract/signatures.json")))
  PRIVATE = K["private_keys"].transform_values { |pem| OpenSSL::PKey.read(pem) }
  PUBLIC = PRIVATE.transform_values(&:public_to_pem)

  # The signature value the CLI writes (tests/contract/signatures.json).
  def sign(key, release, manifest)
    pkey = PRIVATE.fetch(key)
    sha = Digest::SHA256.hexdigest(manifest.b)
    sig = pkey.sign(nil, Cutover::Verifier.message(release, sha))
    JSON.generate("v" => 1, "alg" => "ed25519", "key" => Cutover::Verifier.fingerprint(pkey),
                  "release" => release, "manifest_sha256" => sha, "sig" => Base64.strict_encode64(sig))
  end

  # End to end: what `cutover deploy` signs with signing_key, a reader with
  # the public key serves; a reader trusting only another key refuses; a
  # rollback made without the key puts the release's own signature back.
  def test_a_release_the_cli_signed_is_verified_end_to_end
    w = World.new("clisigned")
    signed = { "CUTOVER_SIGNING_KEY" => K["private_keys"]["k1"], "CUTOVER_PREFIX" => "packs" }
    deploy = ->(build) { w.cutover!("deploy", File.join(World::FIXTURES, World::BUILDS.fetch(build)), env: signed)["release"].fetch("id") }
    a = deploy.(:a)
    assert_equal a, reader(w, verify_keys: [PUBLIC["k1"]]).release_id
    assert_raises(Cutover::Unavailable) { reader(w, verify_keys: [PUBLIC["k2"]]) }
    b = deploy.(:b)
    refute_equal a, b
    w.rollback
    assert_equal a, reader(w, verify_keys: [PUBLIC["k1"]]).release_id
  end

  # Writes current, manifest and signature by hand, as one transaction (as
  # the activation script does), then the activation message.
  def publish(w, id, manifest, signature)
    admin = TestServers.redis.admin
    admin.multi do |t|
      t.set(w.key("current"), id)
      t.set(w.key("manifest"), manifest)
      signature ? t.set(w.key("signature"), signature) : t.del(w.key("signature"))
    end
    admin.publish(w.key("events"), JSON.generate("release" => id))
  end

  # The exact bytes `cutover deploy` wrote for fixture builds A and B.
  def deployed(w)
    admin = TestServers.redis.admin
    %i[a b].to_h do |build|
      w.deploy(build)
      [build, admin.mget(w.key("current"), w.key("manifest"))]
    end
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

  # Publishes a refused release and waits until the reader has refused it
  # (its rejected.cutover event): it still serves `build`.
  def assert_refused(r, w, events, id, manifest, signature, reason, build)
    before = events.size
    publish(w, id, manifest, signature)
    wait_until("the reader refused #{id}") { events.size > before }
    assert_equal [{ app: w.app, release: id }], events[before..].map { |e| e.slice(:app, :release) }
    assert_match reason, events.last[:reason]
    assert serves?(r, build), "still the last good release"
    refute r.refresh!, "a poll does not take it either"
    assert serves?(r, build)
  end

  def test_contract_foreign_origin_rejected
    w = World.new("origin")
    live = deployed(w)
    a, manifest_a = live[:a]
    rejections(w.app) do |events|
      r = reader(w, asset_origins: [World::CDN])
      w.activate(a)
      wait_until("the reader serves A") { r.release_id == a }
      wait_for_subscription(r)
      assert_empty log_lines.grep(/no asset_origins/), "configured: no warning"
      good = JSON.parse(manifest_a)
      bad_urls = {
        %("><script>alert(1)</script>) => /unsafe characters/,
        "https://evil.example/x.js" => /origin not in asset_origins/,
        "//evil.example/x.js" => /protocol-relative/,
        "data:text/javascript,alert(1)" => /scheme other than https/,
        "javascript:alert(1)" => /scheme other than https/,
        "https://cdn.example.com/packs/x.js\r\nSet-Cookie: a=b" => /unsafe characters/,
        "https://cdn.example.com@evil.example/x.js" => /user info/,
        "http://cdn.example.com/packs/x.js" => /origin not in asset_origins/
      }
      bad_urls.each_with_index do |(url, reason), i|
        # One bad URL among good ones: the whole manifest is refused.
        forged = good.merge("application.js" => good["application.js"].merge("src" => url))
        id = format("%016x", 0xf0 + i)
        assert_refused(r, w, events, id, JSON.generate(forged), nil, reason, :a)
        assert_equal 1, log_lines.grep(/refused release #{id}/).size, "logged once"
      end
      assert_equal bad_urls.size, events.size
      refute(r.snapshot.urls.any? { |u| !u.start_with?("#{World::CDN}/") })

      # A good release after them is taken.
      b = live[:b][0]
      w.activate(b)
      wait_until("the reader serves B") { r.release_id == b }
      assert serves?(r, :b)
    end
  end

  def test_contract_unsigned_rejected
    w = World.new("unsigned")
    live = deployed(w)
    (a, ma), (b, mb) = live.values_at(:a, :b)
    publish(w, a, ma, sign("k1", a, ma))
    rejections(w.app) do |events|
      r = reader(w, verify_keys: [PUBLIC["k1"]])
      assert_equal a, r.release_id, "signed by the configured key"
      wait_for_subscription(r)
      assert_refused(r, w, events, b, mb, nil, /unsigned/, :a)
      assert_equal 1, log_lines.grep(/refused release #{b} .*unsigned/).size
      # Once signed, the same release is taken.
      publish(w, b, mb, sign("k1", b, mb))
      wait_until("the reader serves B once signed") { r.release_id == b }
      assert serves?(r, :b)
      # At boot, an unsigned live release is refused too: fallback, or Unavailable.
      publish(w, a, ma, nil)
      assert_raises(Cutover::Unavailable) { reader(w, verify_keys: [PUBLIC["k1"]]) }
      fallback = reader(w, verify_keys: [PUBLIC["k1"]], fallback_manifest: FIXTURE_A_MANIFEST)
      assert_nil fallback.release_id
      # Without verify_keys, signatures are ignored.
      assert_equal a, reader(w).release_id
    end
  end

  def test_contract_wrongly_signed_rejected
    w = World.new("wrongsig")
    live = deployed(w)
    (a, ma), (b, mb) = live.values_at(:a, :b)
    publish(w, a, ma, sign("k1", a, ma))
    rejections(w.app) do |events|
      r = reader(w, verify_keys: [PUBLIC["k1"]])
      assert_equal a, r.release_id
      wait_for_subscription(r)
      altered = JSON.parse(sign("k1", b, mb)).tap { |s| s["sig"] = Base64.strict_encode64(Base64.strict_decode64(s["sig"]).tap { |x| x.setbyte(0, x.getbyte(0) ^ 1) }) }
      {
        sign("other", b, mb) => /not configured/,
        sign("k1", a, ma) => /signature is for release/, # A's signature replayed for B
        sign("k1", b, "#{mb} ") => /SHA-256/, # the manifest changed after signing
        JSON.generate(altered) => /does not verify/,
        "garbage" => /not JSON/,
        sign("k1", b, mb).sub('"ed25519"', '"rsa"') => /unsupported/
      }.each do |signature, reason|
        assert_refused(r, w, events, b, mb, signature, reason, :a)
      end
      assert_equal 6, log_lines.grep(/refused release #{b}/).size, "each distinct refusal logged once"
      publish(w, b, mb, sign("k1", b, mb))
      wait_until("the reader serves B once rightly signed") { r.release_id == b }
    end
  end

  def test_contract_key_rotation
    w = World.new("rotation")
    live = deployed(w)
    (a, ma), (b, mb) = live.values_at(:a, :b)
    publish(w, a, ma, sign("k1", a, ma)) # signed before the rotation
    r = reader(w, verify_keys: [PUBLIC["k1"], PUBLIC["k2"]])
    assert_equal a, r.release_id
    assert_equal K["fingerprints"].values_at("k1", "k2"), r.status[:verify_keys]
    wait_for_subscription(r)
    publish(w, b, mb, sign("k2", b, mb)) # signed with the new key
    wait_until("the reader serves B, signed by the second key") { r.release_id == b }
    publish(w, a, ma, sign("k1", a, ma)) # a rollback to a release signed by the old key
    wait_until("the reader serves A again") { r.release_id == a }
    assert serves?(r, :a)
    # Once the old key is dropped, its releases are refused.
    assert_raises(Cutover::Unavailable) { reader(w, verify_keys: [PUBLIC["k2"]]) }
  end

  # tests/contract/signatures.json, every case, through Redis: the reader
  # boots on the case's live release only when it is valid.
  def test_signature_vectors
    w = World.new("vectors")
    K["cases"].each do |c|
      publish(w, c["current"], c["manifest"], c["signature"])
      if c["valid"]
        r = reader(w, verify_keys: c["verify_keys"])
        assert_equal c["current"], r.release_id, c["name"]
      else
        error = assert_raises(Cutover::Unavailable, c["name"]) { reader(w, verify_keys: c["verify_keys"]) }
        assert_includes error.message, "refused", c["name"]
      end
      assert_equal c["valid"], Cutover::Verifier.new(c["verify_keys"]).reject_reason(c["current"], c["manifest"], c["signature"]).nil?, c["name"]
    end
    assert_operator K["cases"].size, :>=, 10
  end

  def test_contract_subscriber_dropped
    w = World.new("dropped")
    admin = TestServers.redis.admin
    user = "reader-#{w.app}"
    admin.call("ACL", "SETUSER", user, "on", ">pw", "resetkeys", "~cutover:{#{w.app}}:*",
               "resetchannels", "&cutover:{#{w.app}}:events", "-@all", "+get", "+mget", "+zrange", "+subscribe")
    url = "redis://#{user}:pw@127.0.0.1:#{TestServers.redis.port}"
    a = w.deploy(:a)
    r = reader(w, redis_url: url)
    wait_for_subscription(r)

    # The subscriber connection is killed: the next activation still arrives.
    assert_equal 1, admin.call("CLIENT", "KILL", "TYPE", "pubsub", "USER", user)
    b = w.deploy(:b)
    wait_until("the reader serves B after its subscription was killed") { r.release_id == b }

    # Now pub/sub stays lost (the channel is refused from here on): only the
    # poll of current can bring the rollback.
    admin.call("ACL", "SETUSER", user, "resetchannels")
    admin.call("CLIENT", "KILL", "TYPE", "pubsub", "USER", user)
    wait_until("the reader noticed it cannot subscribe", timeout: 5) { log_lines.grep(/cannot subscribe/).any? }
    w.rollback
    wait_until("the reader serves A without pub/sub") { r.release_id == a }
    assert_equal "poll", r.status[:last_switch][:source]
    assert serves?(r, :a)
    assert_equal 1, log_lines.grep(/cannot subscribe/).size, "logged once however often it retries"
  ensure
    admin&.call("ACL", "DELUSER", user)
  end

  def test_contract_redis_down
    server = RedisServer.new.start
    w = World.new("down", redis_url: server.url)
    a = w.deploy(:a)
    r = reader(w)
    wait_for_subscription(r)
    slowest = 0.0
    answer = lambda do
      started = monotonic
      answers = [r.release_id, r.lookup("application.js.map"), r.entrypoint("application")]
      slowest = [slowest, monotonic - started].max
      assert_equal a, answers[0]
      assert answers[1] && answers[2]
    end

    # A preview resolves a prefix once, then answers it from memory.
    assert_equal a, r.preview(a[0, 6]).release_id
    admin = server.admin
    before = admin.info("stats")["total_commands_processed"].to_i
    5.times { assert_equal a, r.preview(a[0, 6]).release_id }
    assert_operator admin.info("stats")["total_commands_processed"].to_i - before - 1, :<=, 2, "only polls, no ZRANGE/GET"

    # Stopped (SIGSTOP): Redis accepts nothing and answers nothing; the poll
    # hangs until its timeout while lookups answer at once.
    server.pause
    assert_equal a, r.preview(a[0, 6]).release_id, "a cached preview needs no Redis"
    started = monotonic
    assert_raises(Cutover::Unavailable) { r.preview("ffff") }
    assert_operator monotonic - started, :<, 0.6, "a preview has its own short timeout"
    wait_until("a poll failed against the stopped Redis", timeout: 6) do
      answer.call
      r.status[:redis] == :unreachable
    end
    # Killed: connections are refused; still serving A.
    server.kill
    polls = r.status[:polls]
    wait_until("two more polls failed", timeout: 5) do
      answer.call
      r.status[:polls] >= polls + 2
    end
    assert serves?(r, :a)
    assert_operator slowest, :<, 0.05, "a lookup waited on Redis"
    assert_equal 1, log_lines.grep(/Redis unreachable/).size, log_lines.join

    # Back (empty, as a Redis without persistence restarts): the next
    # activation is picked up.
    server.start
    wait_until("the reader said current is empty", timeout: 5) { log_lines.grep(/:current is empty/).any? }
    b = w.deploy(:b)
    wait_until("the reader serves B after Redis came back") { r.release_id == b }
    assert serves?(r, :b)
    assert_equal 1, log_lines.grep(/Redis reachable again/).size, log_lines.join
    assert_equal 1, log_lines.grep(/Redis unreachable/).size, log_lines.join
    assert_equal 1, log_lines.grep(/:current is empty .*Redis restarted without its data/).size, log_lines.join
  ensure
    server&.kill
  end

  def test_contract_boot_without_redis
    port = TestServers.free_port
    url = "redis://:s3cret@127.0.0.1:#{port}/0"
    w = World.new("no-redis", redis_url: url)
    app = w.app

    started = monotonic
    error = assert_raises(Cutover::Unavailable) { reader(w) }
    assert_operator monotonic - started, :<, 2
    assert_includes error.message, "cutover:{#{app}}:manifest"
    assert_includes error.message, "redis://:***@127.0.0.1:#{port}/0"
    refute_includes error.message, "s3cret"

    r = reader(w, fallback_manifest: FIXTURE_A_MANIFEST)
    assert_nil r.release_id
    assert_equal "/packs/js/application-b62e1c7fb0214cc621a8.js", r.lookup("application.js")
    assert_equal 3, r.entrypoint("application")["js"].size
    warning = log_lines.grep(/fallback manifest/)
    assert_equal 1, warning.size
    assert_includes warning.first, FIXTURE_A_MANIFEST
    refute_includes @log.string, "s3cret"

    # Redis comes up (with that password): the reader converges on its own.
    server = RedisServer.new(port: port, args: ["--requirepass", "s3cret"]).start
    a = w.deploy(:a)
    wait_until("the reader left the fallback for the live release") { r.release_id == a }
    assert_equal "https://cdn.example.com/packs/js/application-b62e1c7fb0214cc621a8.js", r.lookup("application.js")
  ensure
    server&.kill
  end
end
