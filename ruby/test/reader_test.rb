# frozen_string_literal: true

require "test_helper"
require "rbconfig"
require "socket"

# The reader beyond the contract scenarios: the README's ACL, a redis:
# template, and a process without Rails.
class ReaderTest < Minitest::Test
  include CutoverTestHelpers

  README = File.expand_path("../README.md", __dir__)

  def test_the_minimal_acl_in_the_readme_is_enough
    w = World.new("acl")
    a = w.deploy(:a)
    b = w.deploy(:b)
    line = File.read(README)[/^ACL SETUSER shop-web .*$/]
    refute_nil line, "ruby/README.md shows the ACL"
    user = "web-#{w.app}"
    command = line.sub("shop-web", user).sub(">PASSWORD", ">pw").gsub("{shop}", "{#{w.app}}").split[1..]
    admin = TestServers.redis.admin
    admin.call("ACL", *command)

    r = reader(w, redis_url: "redis://#{user}:pw@127.0.0.1:#{TestServers.redis.port}")
    assert_equal b, r.release_id
    wait_for_subscription(r)
    assert_equal a, r.preview(a[0, 6]).release_id
    assert r.preview(a).lookup("application.js.map"), "A's own manifest, from its record"
    w.rollback
    wait_until("the reader serves A") { r.release_id == a }
    assert_equal "pubsub", r.status[:last_switch][:source]
    refute r.refresh!
    # Skew protection: ZSCORE of the retired set and GET of B's record.
    admin.zadd(w.key("retired"), Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond), b)
    assert_equal [b, :retired], r.release_snapshot(b).then { |s| [s&.release_id, s&.origin] }
    # The fleet report, written as that user (its first lookup started it).
    report = w.key("fleet:#{Socket.gethostname}:#{Process.pid}")
    wait_until("the reader reports A") { (json = admin.get(report)) && JSON.parse(json)["release"] == a }
    assert_empty log_lines.grep(/NOPERM|cannot|failed/), log_lines.join
  ensure
    admin&.call("ACL", "DELUSER", user)
  end

  # The ACL line as it was before rollouts (no +zscore): the reader serves,
  # switches and follows the canary; only retired releases are not served,
  # and that is logged once.
  def test_an_acl_without_zscore_serves_all_but_retired_releases
    w = World.new("acl-nozscore")
    a = w.deploy(:a)
    b = w.deploy(:b)
    line = File.read(README)[/^ACL SETUSER shop-web .*$/].sub(" +zscore", "")
    user = "old-#{w.app}"
    command = line.sub("shop-web", user).sub(">PASSWORD", ">pw").gsub("{shop}", "{#{w.app}}").split[1..]
    admin = TestServers.redis.admin
    admin.call("ACL", *command)
    r = reader(w, redis_url: "redis://#{user}:pw@127.0.0.1:#{TestServers.redis.port}")
    assert_equal b, r.release_id
    now = Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)
    admin.zadd(w.key("retired"), now, a)
    admin.zadd(w.key("retired"), now, "0123456789abcdef")
    assert_nil r.release_snapshot(a)
    assert_nil r.release_snapshot("0123456789abcdef")
    assert_equal b, r.release_snapshot(b).release_id, "the live release needs no Redis"
    assert_equal 1, log_lines.grep(/cannot read retired release .*NOPERM/).size, log_lines.join
    wait_for_subscription(r)
    w.rollback
    wait_until("the reader serves A") { r.release_id == a }
  ensure
    admin&.call("ACL", "DELUSER", user)
  end

  def test_a_redis_template_is_copied_not_taken_over
    w = World.new("template")
    a = w.deploy(:a)
    template = Redis.new(url: w.redis_url)
    r = reader(w, redis_url: nil, redis: template)
    assert_equal a, r.release_id
    wait_for_subscription(r)
    assert_equal a, template.get(w.key("current")), "the template still runs commands: cutover subscribed on its own connection"
    b = w.deploy(:b)
    wait_until("the reader serves B") { r.release_id == b }
    assert_includes r.inspect, "redis://127.0.0.1:#{TestServers.redis.port}"
  end

  def test_works_without_rails_or_active_support
    w = World.new("plain")
    a = w.deploy(:a)
    script = <<~RUBY
      require "cutover"
      abort "loaded #{'$'}{[defined?(Rails), defined?(ActiveSupport), defined?(Rack)].compact}" if defined?(Rails) || defined?(ActiveSupport) || defined?(Rack)
      reader = Cutover::Reader.new(app: ARGV[0], redis_url: ARGV[1], logger: Logger.new(nil))
      puts reader.release_id, reader.lookup("application.js")
    RUBY
    out, err, status = Open3.capture3(RbConfig.ruby, "-I#{File.expand_path('../lib', __dir__)}", "-e", script, w.app, w.redis_url)
    assert status.success?, err
    assert_equal [a, "https://cdn.example.com/packs/js/application-b62e1c7fb0214cc621a8.js"], out.lines.map(&:chomp)
  end

  def test_cutover_reader_is_built_from_cutover_configure
    w = World.new("configured")
    a = w.deploy(:a)
    saved_config = Cutover.config.dup
    saved_reader = Cutover.reader if Cutover.configured?
    Cutover.reader = nil
    Cutover.configure do |c|
      c.app = w.app
      c.redis_url = w.redis_url
      c.logger = Logger.new(nil)
    end
    r = Cutover.reader
    @readers << r
    assert_same r, Cutover.reader
    assert_equal a, r.release_id
  ensure
    Cutover.configure { |c| saved_config.each_pair { |k, v| c[k] = v } } if saved_config
    Cutover.reader = saved_reader
  end
end
