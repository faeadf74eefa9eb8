# frozen_string_literal: true

require "test_helper"
require "rbconfig"
require "socket"

# The fleet reports (docs/redis.md, "The fleet: what each process serves"):
# what each reader process writes to cutover:{APP}:fleet and
# cutover:{APP}:fleet:HOST:PID, when, and what happens when it cannot.
# Real redis-server, real CLI activations; report_interval is short (0.2 s)
# so that heartbeats come quickly.
class FleetTest < Minitest::Test
  include CutoverTestHelpers

  HEARTBEAT = 0.2
  FIELDS = %w[v id host pid kind reader release since source canary heartbeat at started].freeze
  README = File.expand_path("../README.md", __dir__)

  def admin
    @admin ||= TestServers.redis.admin
  end

  def own_id(pid = Process.pid)
    "#{Socket.gethostname}:#{pid}"
  end

  # The fleet's members and scores.
  def members(w)
    admin.zrange(w.key("fleet"), 0, -1, with_scores: true).to_h
  end

  # The last report of process `id`, parsed, or nil.
  def report(w, id = own_id)
    json = admin.get(w.key("fleet:#{id}"))
    json && JSON.parse(json)
  end

  def fleet_keys(w)
    admin.keys("cutover:{#{w.app}}:fleet*")
  end

  # Lets polls_to_wait polls go by (the poll thread also sends the reports).
  def let_polls_pass(r, polls_to_wait)
    polls = r.status[:polls]
    wait_until("#{polls_to_wait} more polls") { r.status[:polls] >= polls + polls_to_wait }
  end

  def test_the_first_lookup_writes_a_report_with_every_field
    w = World.new("fleet-fields")
    a = w.deploy(:a)
    before = now_ms
    r = reader(w, report_interval: HEARTBEAT, poll_interval: 0.05)
    booted = now_ms

    # No lookup yet (as in a preloading master): no report, however many
    # polls and heartbeats go by.
    let_polls_pass(r, 10)
    assert_equal :waiting, r.status[:fleet]
    assert_empty fleet_keys(w)

    looked_up = now_ms
    assert_equal a, r.release_id
    doc = wait_until("the first report") { report(w) }
    assert_equal FIELDS, doc.keys, "every field, in the contract's order, and no refused"
    assert_equal 1, doc["v"]
    assert_equal own_id, doc["id"]
    assert_equal Socket.gethostname, doc["host"]
    assert_equal Process.pid, doc["pid"]
    assert_equal defined?(Cutover::Railtie) ? "rails" : "ruby", doc["kind"] # "ruby" alone: see below
    assert_equal "ruby/#{Cutover::VERSION}", doc["reader"]
    assert_equal a, doc["release"]
    assert_operator doc["since"], :>=, before, "since: when boot read A"
    assert_operator doc["since"], :<=, booted
    assert_equal "start", doc["source"]
    assert_nil doc["canary"], "no rollout: no canary"
    assert_equal HEARTBEAT, doc["heartbeat"]
    assert_operator doc["at"], :>=, looked_up
    assert_operator doc["started"], :<=, before, "started: the process's start, before the reader"
    assert_equal({ own_id => doc["at"].to_f }, members(w), "one member, scored at")
    pttl = admin.pttl(w.key("fleet:#{own_id}"))
    assert_operator pttl, :>, 0, "the report expires"
    assert_operator pttl, :<=, 600_000
    assert_equal :reporting, r.status[:fleet]
  end

  def test_a_switch_is_reported_within_the_poll_bound
    w = World.new("fleet-switch")
    a = w.deploy(:a)
    b = w.deploy(:b)
    w.activate(a)
    # Heartbeats too slow to write anything during the test: the switch
    # itself must. Polling is off too: the switch comes by pub/sub.
    r = reader(w, report_interval: 60, poll_interval: 60)
    wait_for_subscription(r)
    assert_equal a, r.release_id
    first = wait_until("the first report") { report(w) }
    assert_equal [a, "start"], first.values_at("release", "source")

    activated = now_ms
    w.activate(b)
    doc = wait_until("the report says B") { (d = report(w)) && d["release"] == b && d }
    assert_equal "pubsub", doc["source"]
    assert_operator doc["since"], :>=, activated
    assert_operator doc["since"], :<=, doc["at"]
    assert_equal 60, doc["heartbeat"]
    assert_equal doc["at"].to_f, members(w)[own_id]
  end

  def test_a_refused_release_is_reported_and_the_served_one_kept
    w = World.new("fleet-refused")
    a = w.deploy(:a)
    manifest = admin.get(w.key("manifest"))
    r = reader(w, report_interval: 60, asset_origins: [World::CDN])
    wait_for_subscription(r)
    assert_equal a, r.release_id
    wait_until("the first report") { report(w) }

    # What someone with write access to Redis could publish: refused.
    forged = JSON.parse(manifest)
    forged["application.js"]["src"] = "https://evil.example/x.js"
    evil = "f0f0f0f0f0f0f0f0"
    admin.multi do |t|
      t.set(w.key("current"), evil)
      t.set(w.key("manifest"), JSON.generate(forged))
    end
    admin.publish(w.key("events"), JSON.generate("release" => evil))
    doc = wait_until("the report names the refusal") { (d = report(w)) && d["refused"] && d }
    assert_equal evil, doc["refused"]["release"]
    assert_match(/origin not in asset_origins/, doc["refused"]["reason"])
    assert_equal [a, "start"], doc.values_at("release", "source"), "still serving A"
    assert_equal FIELDS.dup.insert(10, "refused"), doc.keys

    # A good release after it: served and reported; the refusal stays the
    # last one the process made.
    b = w.deploy(:b)
    doc = wait_until("the report says B") { (d = report(w)) && d["release"] == b && d }
    assert_equal evil, doc.dig("refused", "release")
  end

  def test_each_heartbeat_refreshes_at
    w = World.new("fleet-heartbeat")
    w.deploy(:a)
    r = reader(w, report_interval: HEARTBEAT)
    r.release_id
    seen = [wait_until("the first report") { report(w) }["at"]]
    2.times do
      seen << wait_until("a heartbeat") { (at = report(w)&.fetch("at")) && at > seen.last && at }
      assert_equal seen.last.to_f, members(w)[own_id], "the score follows at"
    end
    assert_equal seen.sort.uniq, seen
  end

  def test_report_interval_false_nil_or_zero_writes_nothing
    w = World.new("fleet-off")
    w.deploy(:a)
    [false, nil, 0].each do |off|
      r = reader(w, report_interval: off, poll_interval: 0.05)
      r.release_id
      assert_nil r.report_interval
      assert_equal :off, r.status[:fleet]
      # Past what a report would take (at the first lookup) and a 0.2 s heartbeat.
      let_polls_pass(r, 10)
      r.release_id
      assert_empty fleet_keys(w), "report_interval: #{off.inspect}"
    end
    assert_raises(ArgumentError) { reader(w, report_interval: -1) }
    assert_raises(ArgumentError) { reader(w, report_interval: "often") }
  end

  def test_old_members_are_dropped_and_recent_ones_kept
    w = World.new("fleet-expiry")
    w.deploy(:a)
    r = reader(w, report_interval: 60)
    now = now_ms
    admin.zadd(w.key("fleet"), [[now - (11 * 60_000), "gone:1"], [now - (9 * 60_000), "quiet:2"]])
    r.release_id
    wait_until("the report") { members(w).key?(own_id) }
    assert_equal ["quiet:2", own_id].sort, members(w).keys.sort,
                 "the member 11 minutes old is dropped, the one 9 minutes old kept"
  end

  # The Minimal Redis ACL line of the README before the fleet: read-only
  # (~ for the keys, no fleet pattern, none of the fleet's commands).
  def old_acl(user, app)
    line = File.read(README)[/^ACL SETUSER shop-web .*$/]
    refute_nil line, "ruby/README.md shows the ACL"
    %w[~cutover:{shop}:fleet* +zadd +zremrangebyscore +set].each do |grant|
      assert_includes line.split, grant
      line = line.split.reject { |part| part == grant }.join(" ")
    end
    line.sub("%R~", "~").sub("shop-web", user).sub(">PASSWORD", ">pw").gsub("{shop}", "{#{app}}").split[1..]
  end

  # How many times Redis refused `command` to `user` (ACL LOG counts them).
  def refusals(user, command)
    entries = admin.call("ACL", "LOG", 128).map { |e| e.each_slice(2).to_h }
    entries.select { |e| e["username"] == user && e["object"] == command }.sum { |e| e["count"].to_i }
  end

  def test_a_reader_with_the_old_read_only_acl_serves_on_and_says_so_once
    w = World.new("fleet-acl")
    a = w.deploy(:a)
    user = "old-#{w.app}"
    admin.call("ACL", *old_acl(user, w.app))
    r = reader(w, redis_url: "redis://#{user}:pw@127.0.0.1:#{TestServers.redis.port}", report_interval: HEARTBEAT)
    wait_for_subscription(r)
    assert_equal a, r.release_id

    # Several heartbeats, every one refused by Redis.
    wait_until("five refused reports", timeout: 5) { refusals(user, "zadd") >= 5 }
    assert_empty fleet_keys(w)
    assert_equal :failing, r.status[:fleet]
    line = log_lines.grep(/cannot report/)
    assert_equal 1, line.size, "logged once: #{log_lines.join}"
    assert_includes line.first, "NOPERM"
    assert_includes line.first, "~cutover:{#{w.app}}:fleet* +zadd +zremrangebyscore +set"
    assert_includes line.first, "report_interval to false"

    # It serves on, and follows switches.
    b = w.deploy(:b)
    wait_until("the reader serves B") { r.release_id == b }
    assert_equal :ok, r.status[:redis]

    # Granted the fleet writes, the next heartbeat lands; said once too.
    admin.call("ACL", "SETUSER", user, "+zadd", "+zremrangebyscore", "+set")
    doc = wait_until("a report once granted") { report(w) }
    assert_equal b, doc["release"]
    wait_until("the next heartbeat") { report(w)["at"] > doc["at"] }
    assert_equal 1, log_lines.grep(/reporting to .* works again/).size, log_lines.join
    assert_equal 1, log_lines.grep(/cannot report/).size
    assert_equal :reporting, r.status[:fleet]
  ensure
    admin.call("ACL", "DELUSER", user) if user
  end

  # The process that created the reader and forks without a lookup (a
  # preloading master) never reports; each forked child reports right after
  # its first read, before any lookup of its own.
  def test_forked_children_report_and_the_parent_that_never_looks_up_does_not
    w = World.new("fleet-fork")
    a = w.deploy(:a)
    parent = reader(w, report_interval: HEARTBEAT)
    wait_for_subscription(parent)
    children = Array.new(2) do
      stop_r, stop_w = IO.pipe
      pid = fork do
        stop_w.close
        stop_r.read(1) # idle: no lookup
        exit!(0)
      end
      stop_r.close
      [pid, stop_w]
    end
    pids = children.map(&:first)
    ids = pids.map { |pid| own_id(pid) }
    docs = wait_until("both children report") { ids.map { |id| report(w, id) }.compact.then { |d| d.size == 2 && d } }
    docs.each do |doc|
      assert_equal [a, "start"], doc.values_at("release", "source")
      assert_operator doc["started"], :<=, doc["since"], "started: the child's own start"
    end
    # A few heartbeats of each child later, still only the children.
    last = docs.map { |d| d["at"] }
    wait_until("more heartbeats of each child") do
      ids.zip(last).all? { |id, at| (d = report(w, id)) && d["at"] > at + (HEARTBEAT * 1000) }
    end
    assert_equal ids.sort, members(w).keys.sort
    assert_nil report(w, own_id), "the parent never looked up: no report"
    assert_equal :waiting, parent.status[:fleet]
  ensure
    children&.each { |_, stop| stop.close }
    children&.each { |pid, _| Process.wait(pid) }
  end

  def test_a_reader_without_rails_reports_kind_ruby
    w = World.new("fleet-plain")
    a = w.deploy(:a)
    script = <<~RUBY
      require "cutover"
      abort "Rails is loaded" if defined?(Rails)
      reader = Cutover::Reader.new(app: ARGV[0], redis_url: ARGV[1], logger: Logger.new(nil), report_interval: 0.2)
      reader.lookup("application.js")
      key = "cutover:{\#{ARGV[0]}}:fleet:\#{Socket.gethostname}:\#{Process.pid}"
      redis = Redis.new(url: ARGV[1])
      deadline = Time.now + 5
      sleep 0.01 until (report = redis.get(key)) || Time.now > deadline
      puts report
    RUBY
    out, err, status = Open3.capture3(RbConfig.ruby, "-I#{File.expand_path('../lib', __dir__)}", "-e", script,
                                      w.app, w.redis_url)
    assert status.success?, err
    doc = JSON.parse(out)
    assert_equal ["ruby", a, "start"], doc.values_at("kind", "release", "source")
  end
end
