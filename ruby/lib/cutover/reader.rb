# frozen_string_literal: true

require "json"
require "logger"
require "redis"
require "cutover/errors"
require "cutover/keys"
require "cutover/snapshot"
require "cutover/source"
require "cutover/health"
require "cutover/instrumentation"
require "cutover/refresher"
require "cutover/origins"
require "cutover/signature"
require "cutover/fork"
require "cutover/fleet"
require "cutover/checks"
require "cutover/rollout"
require "cutover/canaries"
require "cutover/skew"

module Cutover
  # Serves one app's live manifest from memory and keeps it current.
  #
  #   reader = Cutover::Reader.new(app: "shop", redis_url: ENV["REDIS_URL"])
  #   reader.lookup("application.js")   # => "https://cdn.../application-7eeb.js"
  #   reader.entrypoint("application")  # => {"js" => [...], "css" => [...], "preload" => []}
  #
  # Lookups read an immutable Snapshot that background threads replace as a
  # whole; they never talk to Redis. See ruby/README.md for the guarantees.
  # During a rollout the reader also serves the canary release to the keys
  # assigned to it (snapshot(key:)), and skew protection serves a release a
  # request names (release_snapshot).
  class Reader
    DEFAULT_POLL_INTERVAL = 1.0
    DEFAULT_REPORT_INTERVAL = Fleet::DEFAULT_INTERVAL
    DEFAULT_SKEW_MAX_AGE = 86_400
    PREVIEW_CACHE_SIZE = 16
    PREFIX_CACHE_SIZE = 256
    # How long the first lookup in a forked worker waits for the worker's
    # own first read of Redis, when the copy it inherited is older than the
    # poll interval. Past it, the lookup answers from the copy (logged once).
    FIRST_LOOKUP_TIMEOUT = 0.2
    RELEASE_REF = /\A[0-9a-f]{1,64}\z/.freeze

    # What one process runs: its own connections and threads.
    Local = Struct.new(:pid, :source, :refresher)
    # What the process serves: the live snapshot and the canary
    # (Rollout::Canary, or nil), replaced together as one frozen value.
    Serving = Struct.new(:live, :canary)

    attr_reader :app, :poll_interval, :report_interval

    # asset_origins: the origins every URL of a manifest read from Redis must
    # be on ("https://cdn.example.com"); nil: any (warned once at boot).
    # verify_keys: Ed25519 public keys (PEM strings or files); with them, a
    # manifest is used only when one of them verifies its signature.
    # report_interval: seconds between this process's fleet reports
    # (docs/redis.md, "The fleet"); false, nil or 0: no reports.
    # skew_max_age: seconds a retired release stays servable to a request
    # that names it (release_snapshot).
    def initialize(app:, redis_url: nil, redis: nil, poll_interval: DEFAULT_POLL_INTERVAL,
                   fallback_manifest: nil, logger: nil, asset_origins: nil, verify_keys: nil,
                   report_interval: DEFAULT_REPORT_INTERVAL, skew_max_age: DEFAULT_SKEW_MAX_AGE)
      @app = app.to_s.dup.freeze
      raise ArgumentError, "app: is required" if @app.empty?

      @poll_interval = Float(poll_interval)
      raise ArgumentError, "poll_interval: must be positive" unless @poll_interval.positive?

      @report_interval = report_interval ? Float(report_interval) : 0.0
      raise ArgumentError, "report_interval: must be seconds, or false for no reports" if @report_interval.negative?

      @report_interval = nil if @report_interval.zero?

      @keys = Keys.new(@app)
      @origins = Origins.new(asset_origins)
      @verifier = verify_keys.nil? || Array(verify_keys).empty? ? nil : Verifier.new(verify_keys)
      @manifest_checks = Checks.new(app: @app, origins: @origins, verifier: @verifier)
      @connector = Connector.new(redis_url: redis_url, redis: redis)
      @fallback_manifest = fallback_manifest&.to_s
      @logger = logger || Cutover.default_logger
      @health = Health.new(@logger)
      @skew = Skew.new(app: @app, max_age: skew_max_age, checks: @manifest_checks, health: @health, logger: @logger)
      @fleet = @report_interval && Fleet.new(keys: @keys, interval: @report_interval, health: @health,
                                             logger: @logger, masked_url: @connector.masked_url)
      # Reports start at the first lookup, or right after a fork (Fleet).
      @reporting = @fleet.nil?
      @refresh_lock = Mutex.new
      @local_lock = Mutex.new
      @previews = {}
      @preview_lock = Mutex.new
      @rejected_id = nil
      @rejected_logged = nil
      @canaries = Canaries.new(app: @app, keys: @keys, checks: @manifest_checks, logger: @logger,
                               on_refused: ->(release, reason) { @fleet&.refused(release, reason) })
      @serving = nil
      @resolved = {}
      @empty_logged = false
      @last_switch = nil
      @closed = false
      # When this process last read Redis successfully, and how many reads
      # it made (monotonic; a forked child inherits both).
      @checked_at = nil
      @checks = 0
      @check_lock = Mutex.new
      @checked = ConditionVariable.new
      @first_lookup = nil
      @stale_logged = false
      warn_without_origins

      source = @connector.source(@keys)
      begin
        boot(source)
      rescue StandardError
        source.close
        raise
      end
      @local = start(source)
      ForkHook.register(self)
    end

    # The snapshot this process serves now. Take it once to read several
    # answers that belong to the same release. key: the request's rollout
    # key (a user id, the cutover_key cookie); the canary's snapshot when a
    # canary is served and the key is assigned to it, else the live one.
    def snapshot(key: nil)
      serving = serving_now
      canary = serving.canary
      canary&.assigned?(key) ? canary.snapshot : serving.live
    end

    # Skew protection: the snapshot of release `id` when it is the live
    # release, the canary, or retired less than skew_max_age seconds ago
    # (read from its record once, checked like any manifest, cached); nil
    # otherwise, and when Redis cannot say (the request then gets its
    # assignment). The one lookup that may read Redis on a request's path:
    # see Skew for its bounds.
    def release_snapshot(id)
      return nil unless id.is_a?(String) && !id.empty?

      serving = serving_now
      return serving.live if id == serving.live.release_id
      return serving.canary.snapshot if serving.canary && id == serving.canary.release_id

      @skew.fetch(id, local.source)
    end

    # The canary release this process serves (nil: none).
    def canary_release_id
      local
      @serving.canary&.release_id
    end

    def skew_max_age
      @skew.max_age
    end

    # The CDN URL of a manifest entry ("application.js"), or nil.
    def lookup(name)
      snapshot.lookup(name)
    end

    # Like lookup, but raises Cutover::MissingEntry naming the entry and the release.
    def lookup!(name)
      snapshot.lookup!(name)
    end

    # {"js" => [{"src", "integrity"}...], "css" => [...], "preload" => [...]}, or nil.
    def entrypoint(name)
      snapshot.entrypoint(name)
    end

    def entrypoint!(name)
      snapshot.entrypoint!(name)
    end

    # The live release id this process serves (nil while it serves the
    # fallback manifest).
    def release_id
      snapshot.release_id
    end

    # Checks Redis now (MGET current canary, and the manifests if either
    # changed), from the calling thread. Returns true when the live release
    # or the canary changed. Never needed
    # for correctness; useful after a known activation, or in a console.
    # Raises Cutover::Unavailable when Redis cannot answer.
    def refresh!
      refresh(:manual, local.source)
    rescue Redis::BaseError, SystemCallError, IOError => e
      raise Unavailable, "cannot read #{@keys.current} from Redis at #{@connector.masked_url} (#{e.class}: #{e.message})"
    end

    # A snapshot of an uploaded release, by id or unique id prefix, read from
    # its release record (and cached). Raises Cutover::UnknownRelease when no
    # release (or several) match, Cutover::Unavailable when Redis cannot
    # answer. Unlike lookups, this reads Redis for an id it has not seen.
    def preview(ref)
      ref = ref.to_s
      unless ref.ascii_only? && RELEASE_REF.match?(ref)
        raise UnknownRelease, "#{ref.inspect} is not a release id of app #{@app}"
      end

      cached = @preview_lock.synchronize { @previews[@resolved[ref] || ref] }
      return cached if cached

      source = local.source
      start_reports unless @reporting
      id = @preview_lock.synchronize { @resolved[ref] } || resolve(ref, source)
      @preview_lock.synchronize do
        @resolved.shift while @resolved.size >= PREFIX_CACHE_SIZE
        @resolved[ref] = id
      end
      snap = @preview_lock.synchronize { @previews[id] } || load_preview(id, source)
      @preview_lock.synchronize do
        @previews.shift while @previews.size >= PREVIEW_CACHE_SIZE
        @previews[id] = snap
      end
    rescue Redis::BaseError, SystemCallError, IOError => e
      raise Unavailable, "cannot read release #{ref.inspect} of app #{@app} from Redis at " \
                         "#{@connector.masked_url} (#{e.class}: #{e.message})"
    end

    # What this process serves and how its refreshing is doing.
    # (Not a lookup: asking does not start a process's fleet reports.)
    def status
      local
      await_first_check if @first_lookup
      serving = @serving
      snap = serving.live
      canary = serving.canary
      mine = @local
      {
        app: @app,
        release_id: snap.release_id,
        fallback: snap.fallback?,
        format: snap.format,
        canary: canary && { release_id: canary.release_id, percent: canary.percent }.freeze,
        last_switch: @last_switch,
        redis: @health.failing?(:redis) ? :unreachable : :ok,
        fleet: fleet_status,
        subscribed: mine.refresher.subscribed?,
        polls: mine.refresher.polls,
        pid: mine.pid,
        local_ports: mine.pid == Process.pid ? mine.source.local_ports : [],
        asset_origins: @origins.origins,
        verify_keys: @verifier&.fingerprints || [],
        rejected: @rejected_logged&.first,
        canary_rejected: @canaries.refused&.first,
        skew_max_age: @skew.max_age
      }.freeze
    end

    # Stops this process's background threads and connections. Lookups keep
    # answering from the last snapshot; nothing restarts after a fork.
    def close
      @closed = true
      mine = @local
      mine.refresher.stop if mine && mine.pid == Process.pid
      nil
    end

    def inspect
      "#<#{self.class.name} app=#{@app} release=#{@serving&.live&.release_id.inspect} " \
        "canary=#{@serving&.canary&.release_id.inspect} redis=#{@connector.masked_url}>"
    end

    private

    # What the process serves, for a lookup: the first lookup in a process
    # may wait for a forked child's first read, and starts the reports.
    def serving_now
      local
      await_first_check if @first_lookup
      start_reports unless @reporting
      @serving
    end

    # :off (report_interval false), :waiting (no lookup yet in the process
    # that created the reader), :reporting, or :failing (the last report
    # failed for another reason than an unreachable Redis, e.g. NOPERM).
    def fleet_status
      return :off unless @fleet
      return :waiting unless @fleet.started?

      @fleet.failing? ? :failing : :reporting
    end

    # The first lookup in the process that created the reader: it serves,
    # so it reports (see Fleet for why not before).
    def start_reports
      @reporting = true
      @fleet.start
    end

    # The process's connections and threads. A forked child inherits the
    # parent's snapshot but not its threads: the fork hook (ForkHook)
    # restarts them right after fork; without a hook, the first call in the
    # child does.
    def local
      mine = @local
      return mine if mine.pid == Process.pid || @closed

      @local_lock.synchronize do
        restart_in_child unless @local.pid == Process.pid
        @local
      end
    end

    # Called by ForkHook in a forked child.
    def after_fork
      return if @closed || @local.pid == Process.pid

      # Locks held by a parent thread at the fork are released in the child,
      # but what they protected may be half done: fresh ones.
      @local_lock = Mutex.new
      @local_lock.synchronize { restart_in_child }
    end

    def restart_in_child
      @refresh_lock = Mutex.new
      @preview_lock = Mutex.new
      @skew.after_fork
      @check_lock = Mutex.new
      @checked = ConditionVariable.new
      @local.source.abandon # the parent's sockets: closed here, still open there
      # The first lookup waits (briefly) for this process's own first read
      # when the inherited copy may be stale.
      @first_lookup = @checks
      # A forked child reports from its refresher's first read, lookup or not.
      @fleet = @fleet&.forked
      @reporting = true
      @local = start(@connector.source(@keys), immediate: true)
    end

    def start(source, immediate: false)
      refresher = Refresher.new(
        refresh: method(:refresh), describe: -> { @serving.live.description }, source: source,
        interval: @poll_interval, health: @health, logger: @logger, masked_url: @connector.masked_url,
        immediate: immediate, fleet: @fleet
      )
      Local.new(Process.pid, source, refresher.start).freeze
    end

    # The first lookup in a forked process: when the copy was last confirmed
    # longer ago than the poll interval, wait up to FIRST_LOOKUP_TIMEOUT for
    # this process's first read of Redis (the refresher started at fork makes
    # it at once). Later lookups never wait.
    def await_first_check
      checks_at_fork = @first_lookup
      return unless checks_at_fork

      if @checked_at && monotonic - @checked_at <= @poll_interval
        @first_lookup = nil
        return
      end
      deadline = monotonic + FIRST_LOOKUP_TIMEOUT
      @check_lock.synchronize do
        while @checks == checks_at_fork
          left = deadline - monotonic
          break if left <= 0

          @checked.wait(@check_lock, left)
        end
      end
      fresh = @checks != checks_at_fork
      @first_lookup = nil
      return if fresh || @stale_logged

      @stale_logged = true
      age = @checked_at ? format("%.1fs", monotonic - @checked_at) : "never"
      @logger.warn("cutover: process #{Process.pid} answered its first lookup from the copy it inherited " \
                   "(#{@serving.live.description}, last confirmed #{age} ago): Redis did not answer within " \
                   "#{FIRST_LOOKUP_TIMEOUT}s; it switches as soon as it does")
    end

    def checked!
      @check_lock.synchronize do
        @checked_at = monotonic
        @checks += 1
        @checked.broadcast
      end
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    # One refresh, serialised so that a slower read can never install an
    # older release after a newer one. Without full:, MGET current canary
    # first and read the six keys (MGET current manifest signature canary
    # canary_manifest canary_signature) only when either differs from what
    # the process serves (or last refused).
    def refresh(source_label, source, full: false)
      @refresh_lock.synchronize do
        serving = @serving.live.release_id
        unless full
          id, canary_json = source.heads
          note_current(id, serving)
          if (id.nil? || id == serving || id == @rejected_id) && canary_json == @canaries.json
            checked!
            return false
          end
        end
        id, json, signature, *canary = source.live
        note_current(id, serving)
        checked!
        live = @serving.live
        live = accept_live(id, json, signature, source_label) || live unless id.nil? || json.nil? || id == serving
        install(live, @canaries.read(id, *canary, @serving.canary, source_label), source_label)
      end
    end

    # Says once that current is empty (Redis restarted without its data,
    # or the key was deleted), and once more when it is set again.
    def note_current(id, serving)
      if id.nil?
        return if @empty_logged || serving.nil? # at boot, the fallback warning said it

        @empty_logged = true
        @logger.warn("cutover: #{@keys.current} is empty at #{@connector.masked_url} (Redis restarted " \
                     "without its data, or the key was deleted): no release is live; serving " \
                     "#{@serving.live.description} until one is activated")
      elsif @empty_logged
        @empty_logged = false
        @logger.info("cutover: #{@keys.current} is set again (#{id})") if id != serving
      end
    end

    # The snapshot of a live release read from Redis, or nil when it is
    # refused: unreadable, an URL off the allowlist, or (with verify_keys) not
    # signed by a configured key. A refused release is logged and
    # instrumented once, and not re-read every poll (a new activation, or an
    # activation message, reads again).
    def accept_live(id, json, signature, source_label)
      snap, reason = @manifest_checks.manifest(id, json, signature, origin: :redis)
      return snap if snap

      reject(id, reason, source_label)
      nil
    end

    def reject(id, reason, source_label)
      @rejected_id = id
      return if @rejected_logged == [id, reason]

      @rejected_logged = [id, reason]
      @fleet&.refused(id, reason)
      @logger.error("cutover: refused release #{id} of #{@app} (via #{source_label}): #{reason}; " \
                    "serving #{@serving ? @serving.live.description : 'nothing yet'}")
      Instrumentation.rejected({ app: @app, release: id, reason: reason }, @logger)
    end

    def warn_without_origins
      return if @origins.configured?

      @logger.warn("cutover: no asset_origins configured for #{@app}: any https URL written to " \
                   "#{@keys.manifest} will be rendered into pages (set asset_origins / " \
                   "config.cutover.asset_origins to your CDN's origin)")
    end

    # Serves `live` and `canary` from now on, swapped together. Returns
    # whether either changed; each change is logged (and the live one
    # instrumented) and reported to the fleet.
    def install(live, canary, source_label)
      old = @serving
      live_changed = !live.equal?(old&.live)
      canary_changed = !canary.equal?(old&.canary)
      return false unless live_changed || canary_changed

      @serving = Serving.new(live, canary).freeze
      if live_changed
        announce_live(live, old&.live, source_label)
        @fleet&.served(live.release_id, live.fallback? ? :fallback : source_label, canary: canary&.release_id)
      elsif canary&.release_id != old.canary&.release_id
        @fleet&.canary(canary&.release_id)
      end
      @canaries.announce(canary, old&.canary, live, source_label) if canary_changed
      true
    end

    def announce_live(snap, previous_snap, source_label)
      return if snap.fallback?

      previous = previous_snap&.release_id
      @rejected_id = nil
      @rejected_logged = nil
      @last_switch = { release: snap.release_id, previous: previous, source: source_label.to_s, at: Time.now }.freeze
      @logger.info("cutover: serving release #{snap.release_id} of #{@app} " \
                   "(previous #{previous || 'none'}, via #{source_label})")
      Instrumentation.refresh(
        { app: @app, release: snap.release_id, previous: previous, source: source_label.to_s }, @logger
      )
    end

    # The first read, in the process that creates the reader: the live
    # release (or the fallback manifest) and the canary.
    def boot(source)
      id, json, signature, *canary = source.live
      checked!
      live = if id.nil? || json.nil?
               boot_fallback("#{@keys.current} is not set: nothing is deployed yet (run `cutover deploy`)")
             else
               accept_live(id, json, signature, :boot) ||
                 boot_fallback("release #{id} was refused: #{@rejected_logged&.last}")
             end
      install(live, @canaries.read(id, *canary, nil, :boot), :boot)
    rescue Redis::BaseConnectionError, SystemCallError, IOError => e
      @health.failed(:redis, e) # so that the recovery is logged, and the outage only once
      install(boot_fallback("#{e.class}: #{e.message}"), nil, :boot)
    rescue Redis::BaseError => e
      install(boot_fallback("#{e.class}: #{e.message}"), nil, :boot)
    end

    def boot_fallback(reason)
      where = "#{@keys.manifest} from Redis at #{@connector.masked_url}"
      unless @fallback_manifest
        raise Unavailable, "cannot read #{where} (#{reason}), and no fallback_manifest is configured"
      end

      snap = begin
        Snapshot.parse(File.read(@fallback_manifest), release_id: nil, origin: @fallback_manifest, app: @app)
      rescue SystemCallError, IOError, JSON::ParserError, UnknownFormat => e
        raise Unavailable, "cannot read #{where} (#{reason}), nor the fallback manifest " \
                           "#{@fallback_manifest} (#{e.message})"
      end
      @logger.warn("cutover: cannot read #{where} (#{reason}); serving the fallback manifest " \
                   "#{@fallback_manifest} until it can")
      snap
    end

    def resolve(ref, source)
      ids = source.release_ids
      return ref if ids.include?(ref)

      matches = ids.select { |id| id.start_with?(ref) }
      return matches.first if matches.size == 1
      raise UnknownRelease, "no release of app #{@app} matches #{ref.inspect}" if matches.empty?

      raise UnknownRelease, "#{ref.inspect} matches #{matches.size} releases of app #{@app} " \
                            "(#{matches.first(5).join(', ')}): give more characters"
    end

    def load_preview(id, source)
      json = source.release_record(id)
      raise UnknownRelease, "release #{id} of app #{@app} has no record in Redis" unless json

      snap, reason = @manifest_checks.record(id, json, origin: :preview, verify: false)
      if reason
        Instrumentation.rejected({ app: @app, release: id, reason: reason }, @logger)
        raise UnknownRelease, "the manifest of release #{id} of app #{@app} was refused: #{reason}"
      end
      snap
    rescue JSON::ParserError, UnknownFormat => e
      raise UnknownRelease, "the record of release #{id} of app #{@app} has no readable manifest (#{e.message})"
    end
  end
end
