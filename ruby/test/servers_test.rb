# frozen_string_literal: true

require "test_helper"
require "net/http"
require "socket"

# The Rails app (support/rails_app.rb) under real servers, Debian's Puma 5.6
# (3 workers, preload_app!) and Unicorn 6 (2 workers, preload_app), booted
# on release A: after each switch, made while every worker is new and idle,
# the first page of every worker shows the live release; and the fleet
# holds one live report per worker, none for the master.
class ServersTest < Minitest::Test
  include CutoverTestHelpers

  POLL_INTERVAL = 0.5 # the app's config.cutover.poll_interval
  REPORT_INTERVAL = 0.2 # its config.cutover.report_interval, in the fleet tests
  SWITCHES = 20
  LIB = File.expand_path("../lib", __dir__)

  CONFIG_RU = <<~RUBY
    $LOAD_PATH.unshift(#{LIB.inspect}, #{__dir__.inspect})
    require "support/rails_app"
    CutoverRailsApp.initialize!
    CutoverRailsApp.routes.draw { get "probe" => "pages#probe" }
    run Rails.application
  RUBY

  Server = Struct.new(:name, :pid, :port, :workers, :log)

  def start_server(name, world, workers, env: {})
    dir = Dir.mktmpdir("#{name}-", TestServers.tmpdir)
    port = TestServers.free_port
    File.write(File.join(dir, "config.ru"), CONFIG_RU)
    command =
      if name == "puma"
        File.write(File.join(dir, "puma.rb"), <<~RUBY)
          workers #{workers}
          threads 1, 1
          preload_app!
          bind "tcp://127.0.0.1:#{port}"
          environment "production"
        RUBY
        ["puma", "-C", File.join(dir, "puma.rb"), File.join(dir, "config.ru")]
      else
        File.write(File.join(dir, "unicorn.rb"), <<~RUBY)
          worker_processes #{workers}
          preload_app true
          listen "127.0.0.1:#{port}"
          timeout 30
        RUBY
        ["unicorn", "-c", File.join(dir, "unicorn.rb"), "-E", "production", File.join(dir, "config.ru")]
      end
    env = { "CUTOVER_TEST_APP" => world.app, "CUTOVER_TEST_REDIS_URL" => world.redis_url,
            "CUTOVER_TEST_POLL_INTERVAL" => POLL_INTERVAL.to_s, "RAILS_ENV" => "production" }.merge(env)
    log = File.join(dir, "server.log")
    prefix = system("setpriv --help >/dev/null 2>&1") ? %w[setpriv --pdeathsig KILL --] : []
    pid = Process.spawn(env, *prefix, *command, chdir: dir, in: File::NULL, out: log, err: log)
    server = Server.new(name, pid, port, workers, log)
    TestServers.wait_for_port(port, name)
    wait_until("#{name} forked #{workers} workers", timeout: 30) { children(server).size == workers }
    server
  end

  def stop_server(server)
    Process.kill(:KILL, server.pid)
    Process.wait(server.pid)
  rescue SystemCallError
    nil
  end

  # The server's worker processes (children of the master).
  def children(server)
    Dir.glob("/proc/[0-9]*/stat").filter_map do |stat|
      fields = File.read(stat)[/\) (.*)\z/m, 1]&.split
      File.basename(File.dirname(stat)).to_i if fields && fields[1].to_i == server.pid
    rescue SystemCallError
      nil
    end.sort
  end

  def get(server, hold)
    Net::HTTP.start("127.0.0.1", server.port, open_timeout: 5, read_timeout: 10) do |http|
      http.get("/probe?hold=#{hold}")
    end
  end

  # Requests (a few at a time, each holding its worker briefly) until every
  # worker has answered; the first page of each worker by pid.
  def first_pages(server, pids)
    first = {}
    deadline = monotonic + 20
    until (pids - first.keys).empty?
      flunk "#{server.name}: workers #{(pids - first.keys).inspect} never answered" if monotonic > deadline
      Array.new(server.workers + 1) { Thread.new { get(server, 0.05) } }.map(&:value).each do |response|
        assert_equal "200", response.code, response.body
        pid = response["X-Pid"].to_i
        first[pid] = response.body if response["X-Served"] == "1"
      end
    end
    first
  end

  # Scripts of a page: 3 (A, Shakapacker) or 1 (B, flat), in the live
  # manifest's order.
  def release_of(html, scripts)
    srcs = html.scan(/<script src="([^"]+)"/).flatten
    scripts.key(srcs) || flunk("a page with scripts #{srcs.inspect}")
  end

  def expected_scripts(world)
    admin = TestServers.redis.admin
    manifest = JSON.parse(admin.get(world.key("manifest")))
    if manifest["entrypoints"]
      manifest.dig("entrypoints", "application", "assets", "js").map { |c| c["src"] }
    else
      [manifest["application.js"].is_a?(Hash) ? manifest["application.js"]["src"] : manifest["application.js"]]
    end
  end

  # Every Redis socket is held by one process only, and each worker holds
  # its reader's two connections.
  def assert_own_sockets(server, workers)
    held = ([server.pid] + workers).to_h { |pid| [pid, RedisSockets.of(pid, TestServers.redis.port)] }
    workers.each { |pid| assert_equal 2, held[pid].size, "#{server.name} worker #{pid}: #{held.inspect}" }
    held.to_a.combination(2).each do |(p1, s1), (p2, s2)|
      assert_empty s1 & s2, "#{server.name}: processes #{p1} and #{p2} share Redis sockets"
    end
  end

  def run_switches(name, workers)
    w = World.new("#{name}-idle")
    ids = {}
    scripts = {}
    %i[b a].each do |build|
      ids[build] = w.deploy(build)
      scripts[build] = expected_scripts(w)
    end
    server = start_server(name, w, workers)
    live = :a
    pids = children(server)
    stale = []
    SWITCHES.times do |round|
      # New, idle workers: the master respawns the ones we stop.
      pids.each { |pid| Process.kill(name == "puma" ? :TERM : :QUIT, pid) }
      old = pids
      wait_until("#{name} respawned #{workers} workers", timeout: 30) do
        now = children(server)
        now.size == workers && (now & old).empty? && (pids = now)
      end
      live = live == :a ? :b : :a
      w.activate(ids[live]) # returns once the switch is made
      # Idle for longer than the poll interval (the scenario itself).
      sleep POLL_INTERVAL * 1.5
      first_pages(server, pids).each do |pid, html|
        seen = release_of(html, scripts)
        stale << "switch #{round + 1}: worker #{pid} first served #{seen}, live #{live}" if seen != live
      end
      assert_own_sockets(server, pids) if round.zero? || round == SWITCHES - 1
    end
    assert_empty stale, "#{name}: stale first pages"
  ensure
    stop_server(server) if server
    puts "\n#{name} log:\n#{File.read(server.log)[-3000..]}" if server && !passed?
  end

  def test_puma_idle_workers_serve_the_live_release_from_their_first_page
    run_switches("puma", 3)
  end

  def test_unicorn_idle_workers_serve_the_live_release_from_their_first_page
    run_switches("unicorn", 2)
  end

  # ---------------------------------------------------------------- the fleet

  # Every report in the fleet: {member => report}, all members, live or not.
  def fleet(world)
    admin = TestServers.redis.admin
    admin.zrange(world.key("fleet"), 0, -1).to_h do |member|
      json = admin.get(world.key("fleet:#{member}"))
      [member, json && JSON.parse(json)]
    end
  end

  # The live entries, by pid: reports less than 3 heartbeats old, as
  # `cutover status` counts them.
  def live_fleet(world)
    admin = TestServers.redis.admin
    live = admin.zrangebyscore(world.key("fleet"), now_ms - (3 * REPORT_INTERVAL * 1000), "+inf")
    fleet(world).slice(*live).values.compact.to_h { |doc| [doc["pid"], doc] }
  end

  # The server booted on A, its workers idle (no request at all): each
  # reports after its fork, the master never; then every worker reports B
  # after `cutover activate`.
  def run_fleet(name, workers)
    w = World.new("#{name}-fleet")
    b = w.deploy(:b)
    a = w.deploy(:a)
    server = start_server(name, w, workers, env: { "CUTOVER_TEST_REPORT_INTERVAL" => REPORT_INTERVAL.to_s })
    pids = children(server)
    host = Socket.gethostname
    live = wait_until("#{name}: one live entry per worker", timeout: 10) do
      (f = live_fleet(w)).keys.sort == pids && f.values.all? { |doc| doc["release"] == a } && f
    end
    live.each do |pid, doc|
      assert_equal ["#{host}:#{pid}", host, "rails", "start", REPORT_INTERVAL],
                   doc.values_at("id", "host", "kind", "source", "heartbeat")
    end

    w.activate(b)
    live = wait_until("#{name}: every worker reports B", timeout: 10) do
      (f = live_fleet(w)).keys.sort == pids && f.values.all? { |doc| doc["release"] == b } && f
    end
    live.each_value { |doc| assert_includes %w[pubsub poll], doc["source"] }
    assert_equal pids, children(server), "the same workers throughout"
    # Five heartbeats more, the master has still never reported.
    later = now_ms + (5 * REPORT_INTERVAL * 1000)
    wait_until("#{name}: five more heartbeats", timeout: 10) do
      (f = live_fleet(w)).keys.sort == pids && f.values.all? { |doc| doc["at"] > later }
    end
    assert_equal pids.map { |pid| "#{host}:#{pid}" }.sort, fleet(w).keys.sort, "#{name}: none for the master #{server.pid}"
    assert_nil TestServers.redis.admin.get(w.key("fleet:#{host}:#{server.pid}"))
  ensure
    stop_server(server) if server
    puts "\n#{name} log:\n#{File.read(server.log)[-3000..]}" if server && !passed?
  end

  def test_puma_fleet_has_one_live_entry_per_worker_and_none_for_the_master
    run_fleet("puma", 3)
  end

  def test_unicorn_fleet_has_one_live_entry_per_worker_and_none_for_the_master
    run_fleet("unicorn", 2)
  end
end
