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

module Cutover
  # Serves one app's live manifest from memory and keeps it current.
  #
  #   reader = Cutover::Reader.new(app: "shop", redis_url: ENV["REDIS_URL"])
  #   reader.lookup("application.js")   # => "https://cdn.../application-7eeb.js"
  #   reader.entrypoint("application")  # => {"js" => [...], "css" => [...], "preload" => []}
  #
  # Lookups read an immutable Snapshot that background threads replace as a
  # whole; they never talk to Redis. See ruby/README.md for the guarantees.
  class Reader
    DEFAULT_POLL_INTERVAL = 1.0
    PREVIEW_CACHE_SIZE = 16
    RELEASE_REF = /\A[0-9a-f]{1,64}\z/.freeze

    # What one process runs: its own connections and threads.
    Local = Struct.new(:pid, :source, :refresher)

    attr_reader :app, :poll_interval

    def initialize(app:, redis_url: nil, redis: nil, poll_interval: DEFAULT_POLL_INTERVAL,
                   fallback_manifest: nil, logger: nil)
      @app = app.to_s.dup.freeze
      raise ArgumentError, "app: is required" if @app.empty?

      @poll_interval = Float(poll_interval)
      raise ArgumentError, "poll_interval: must be positive" unless @poll_interval.positive?

      @keys = Keys.new(@app)
      @connector = Connector.new(redis_url: redis_url, redis: redis)
      @fallback_manifest = fallback_manifest&.to_s
      @logger = logger || Cutover.default_logger
      @health = Health.new(@logger)
      @refresh_lock = Mutex.new
      @local_lock = Mutex.new
      @previews = {}
      @preview_lock = Mutex.new
      @rejected_id = nil
      @last_switch = nil
      @closed = false

      source = @connector.source(@keys)
      begin
        @snapshot = boot(source)
      rescue StandardError
        source.close
        raise
      end
      @local = start(source)
    end

    # The snapshot this process serves now. Take it once to read several
    # answers that belong to the same release.
    def snapshot
      local
      @snapshot
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

    # Checks Redis now (GET current, and the manifest if it changed), from
    # the calling thread. Returns true when the release switched. Never needed
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

      cached = @preview_lock.synchronize { @previews[ref] }
      return cached if cached

      source = local.source
      id = resolve(ref, source)
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
    def status
      snap = snapshot
      mine = @local
      {
        app: @app,
        release_id: snap.release_id,
        fallback: snap.fallback?,
        format: snap.format,
        last_switch: @last_switch,
        redis: @health.failing?(:redis) ? :unreachable : :ok,
        subscribed: mine.refresher.subscribed?,
        polls: mine.refresher.polls,
        pid: mine.pid
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
      "#<#{self.class.name} app=#{@app} release=#{@snapshot&.release_id.inspect} redis=#{@connector.masked_url}>"
    end

    private

    # The process's connections and threads. A forked child inherits the
    # parent's snapshot but not its threads: the first call in the child
    # starts them (no hook needed), and the child serves the inherited
    # snapshot until its first refresh.
    def local
      mine = @local
      return mine if mine.pid == Process.pid || @closed

      @local_lock.synchronize do
        @local = start(@connector.source(@keys)) unless @local.pid == Process.pid
        @local
      end
    end

    def start(source)
      refresher = Refresher.new(
        refresh: method(:refresh), describe: -> { @snapshot.description }, source: source,
        interval: @poll_interval, health: @health, logger: @logger, masked_url: @connector.masked_url
      )
      Local.new(Process.pid, source, refresher.start).freeze
    end

    # One refresh, serialised so that a slower read can never install an
    # older release after a newer one. Without full:, GET current first and
    # read the manifest only when the id differs.
    def refresh(source_label, source, full: false)
      @refresh_lock.synchronize do
        serving = @snapshot.release_id
        unless full
          id = source.current
          return false if id.nil? || id == serving || id == @rejected_id
        end
        id, json = source.live
        return false if id.nil? || json.nil? || id == serving

        install(parse_live(id, json), source_label)
        true
      end
    end

    def parse_live(id, json)
      Snapshot.parse(json, release_id: id, origin: :redis, app: @app)
    rescue JSON::ParserError, UnknownFormat => e
      @rejected_id = id # do not re-read it every poll; a new activation clears this
      raise Error, "the live manifest of release #{id} cannot be read: #{e.message}"
    end

    def install(snap, source_label)
      previous = @snapshot&.release_id
      @snapshot = snap
      @rejected_id = nil
      @last_switch = { release: snap.release_id, previous: previous, source: source_label.to_s, at: Time.now }.freeze
      @logger.info("cutover: serving release #{snap.release_id} of #{@app} " \
                   "(previous #{previous || 'none'}, via #{source_label})")
      Instrumentation.refresh(
        { app: @app, release: snap.release_id, previous: previous, source: source_label.to_s }, @logger
      )
    end

    def boot(source)
      id, json = source.live
      return boot_fallback("#{@keys.current} is not set: nothing is deployed yet (run `cutover deploy`)") if id.nil? || json.nil?

      snap = Snapshot.parse(json, release_id: id, origin: :redis, app: @app)
      install(snap, :boot)
      snap
    rescue Redis::BaseConnectionError, SystemCallError, IOError => e
      @health.failed(:redis, e) # so that the recovery is logged, and the outage only once
      boot_fallback("#{e.class}: #{e.message}")
    rescue Redis::BaseError, JSON::ParserError, UnknownFormat => e
      boot_fallback("#{e.class}: #{e.message}")
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
      @snapshot = snap
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

      manifest = JSON.parse(json)["manifest"]
      manifest = JSON.parse(manifest) if manifest.is_a?(String)
      Snapshot.new(Formats.parse(manifest), release_id: id, origin: :preview, app: @app)
    rescue JSON::ParserError, UnknownFormat => e
      raise UnknownRelease, "the record of release #{id} of app #{@app} has no readable manifest (#{e.message})"
    end
  end
end
