# frozen_string_literal: true

require "etc"
require "json"
require "socket"
require "cutover/version"

module Cutover
  # What this process serves, reported to cutover:{APP}:fleet (docs/redis.md,
  # "The fleet: what each process serves") so that `cutover status` can say
  # whether the fleet switched. One Fleet per process and reader: it keeps
  # the report's facts (release, since, source, canary, refused) and when the next
  # report is due; the refresher's poll thread sends it (Refresher#report),
  # never a request thread.
  #
  # Which processes report: a process that serves no requests must not (the
  # Puma master with preload_app, the Unicorn master), yet it is the one that
  # created the reader and read Redis at boot, and nothing tells it apart
  # from a single-process server at that moment. What does tell them apart
  # is what happens next, and the reader already sees both: a forked child
  # is noticed by ForkHook (fork.rb), which restarts the reader there, and a
  # process that serves answers lookups. So a Fleet starts reporting
  # - in a forked child, at once: its refresher reports right after its
  #   first read of Redis (Reader#restart_in_child makes it #forked);
  # - in the process that created the reader, at its first lookup
  #   (Reader#snapshot calls #start). A preloading master forks and never
  #   looks up, so it never reports; a single-process server, or a worker
  #   that loaded the app itself, reports from its first page.
  # No timer and no guess about which server runs the app.
  class Fleet
    DEFAULT_INTERVAL = 5
    # How long a report lives: its key's PX, and the age past which each
    # report drops members from the sorted set.
    EXPIRY_MS = 600_000
    # How the reader's refresh labels map to the report's `source`: the
    # first read, an activation message, or a read of `current` (the poll,
    # the re-read after a resubscribe, refresh!).
    SOURCES = { boot: "start", fork: "start", pubsub: "pubsub", poll: "poll", reconnect: "poll",
                manual: "poll", fallback: "fallback" }.freeze

    attr_reader :id, :interval

    # interval: seconds between reports (the report's `heartbeat`).
    def initialize(keys:, interval:, health:, logger:, masked_url:)
      @keys = keys
      @interval = interval
      @health = health
      @logger = logger
      @masked_url = masked_url
      @host = Socket.gethostname
      @pid = Process.pid
      @id = "#{@host}:#{@pid}"
      @started = Fleet.process_started_at || now_ms
      @lock = Mutex.new
      @release = nil
      @since = nil
      @source = nil
      @canary = nil
      @refused = nil
      @next_at = nil # monotonic; nil: not reporting (yet)
      @pending = false
      @on_due = nil
    end

    # The Fleet of a forked child: the release it inherited, served since
    # the fork, reported at once. The parent's locks may have been held by a
    # thread that does not exist here: this copy has its own.
    def forked
      child = Fleet.new(keys: @keys, interval: @interval, health: @health, logger: @logger,
                        masked_url: @masked_url)
      child.inherit(@release, @source == "fallback" ? "fallback" : "start", @refused, @canary)
      child.start
      child
    end

    # The refresher's wakeup, called when a report becomes due early (a
    # switch, a refusal, the first lookup).
    def on_due(&block)
      @on_due = block
    end

    # Reports from now on: at once, then every interval.
    def start
      @lock.synchronize do
        return if @next_at

        @next_at = monotonic
        @pending = true
      end
      @on_due&.call
    end

    def started?
      !@next_at.nil?
    end

    # The process now serves `release` (nil: the fallback manifest), got
    # through `label` (a refresh label, see SOURCES), and `canary` to the
    # keys assigned to it (nil: no canary).
    def served(release, label, canary: nil)
      @lock.synchronize do
        @release = release
        @since = now_ms
        @source = SOURCES.fetch(label)
        @canary = canary
        @refused = nil if @refused && [release, canary].compact.include?(@refused["release"])
        @pending = true
      end
      due
    end

    # The process now serves the canary `release` (nil: none), the live
    # release unchanged.
    def canary(release)
      @lock.synchronize do
        @canary = release
        @refused = nil if release && @refused && @refused["release"] == release
        @pending = true
      end
      due
    end

    # The process refused `release` (a bad signature, an origin outside
    # asset_origins, an unreadable manifest) and serves what it served.
    def refused(release, reason)
      @lock.synchronize do
        @refused = { "release" => release, "reason" => reason }
        @pending = true
      end
      due
    end

    # Seconds until the next report (0: now), nil while not reporting.
    def due_in(now = monotonic)
      @lock.synchronize do
        next nil unless @next_at
        next 0 if @pending

        [@next_at - now, 0].max
      end
    end

    # Sends one report over `source` (Source#report: one pipelined round
    # trip). Raises what Redis raised; the next report is due an interval
    # later either way, or at once if the process switched meanwhile.
    def report(source)
      at = now_ms
      json = @lock.synchronize do
        @pending = false
        @next_at = monotonic + @interval
        JSON.generate(document(at))
      end
      source.report(@id, json, at, EXPIRY_MS)
      @health.recovered(:fleet) { @logger.info("cutover: reporting to #{@keys.fleet} works again") }
    end

    # Logs the first failed report, not the next ones until one works again.
    def failed(error)
      @health.failed(:fleet, error) do
        fix = if error.message.start_with?("NOPERM")
                "grant the reader's Redis user the fleet writes (~#{@keys.fleet}* +zadd +zremrangebyscore " \
                  "+set, as in the Minimal Redis ACL of the cutover gem's README) or set report_interval to false"
              else
                "retrying every #{heartbeat}s (report_interval false turns reporting off)"
              end
        @logger.warn("cutover: cannot report what this process serves to #{@keys.fleet} at #{@masked_url} " \
                     "(#{error.class}: #{error.message}); it serves on but `cutover status` does not count it: #{fix}")
      end
    end

    def failing?
      @health.failing?(:fleet)
    end

    # When this process started (ms since the epoch), from /proc on Linux;
    # nil elsewhere. starttime is in clock ticks after boot; btime is the
    # boot's time in seconds.
    def self.process_started_at
      ticks = File.read("/proc/self/stat")[/\) (.*)\z/m, 1].split[19].to_i
      btime = File.foreach("/proc/stat").find { |line| line.start_with?("btime ") }.split[1].to_i
      ((btime + ticks.fdiv(Etc.sysconf(Etc::SC_CLK_TCK))) * 1000).floor
    rescue StandardError
      nil
    end

    protected

    def inherit(release, source, refused, canary)
      @release = release
      @since = now_ms
      @source = source
      @refused = refused
      @canary = canary
    end

    private

    def document(at)
      doc = { "v" => 1, "id" => @id, "host" => @host, "pid" => @pid,
              "kind" => defined?(::Cutover::Railtie) ? "rails" : "ruby", "reader" => "ruby/#{VERSION}",
              "release" => @release, "since" => @since, "source" => @source, "canary" => @canary }
      doc["refused"] = @refused if @refused
      doc.merge("heartbeat" => heartbeat, "at" => at, "started" => @started)
    end

    # Seconds, as configured: 5, not 5.0.
    def heartbeat
      @interval == @interval.to_i ? @interval.to_i : @interval
    end

    def due
      @on_due&.call if @next_at
    end

    def now_ms
      Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
