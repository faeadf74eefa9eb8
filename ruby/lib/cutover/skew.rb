# frozen_string_literal: true

require "redis"
require "cutover/instrumentation"

module Cutover
  # Skew protection's retired releases (docs/redis.md, "Rollouts and skew
  # protection"): a request that carries the release its page was rendered
  # with gets that release while it was retired less than max_age ago. This
  # is the one reader path where a request thread reads Redis, so it is
  # bounded every way:
  # - only full release ids are looked up (16 lowercase hex);
  # - a loaded release is cached (CACHE_SIZE, oldest dropped) with its
  #   retired time, and its age is checked again on every use;
  # - a negative answer (not retired, too old, no record, refused) is cached
  #   MISS_TTL seconds, in at most MISS_CACHE_SIZE entries: one id costs at
  #   most one round trip per MISS_TTL; after a Redis error (a timeout, a
  #   NOPERM) no lookup is made for ERROR_TTL seconds;
  # - at most LOOKUPS_PER_SECOND round trips a second in all, so random ids
  #   cannot make every request read Redis;
  # - one pipelined round trip (ZSCORE retired, GET record) on the previews'
  #   connection, with its short timeouts; none while Redis is known down.
  # Anything that fails means nil: the request gets what its key is assigned.
  class Skew
    RELEASE_ID = /\A[0-9a-f]{16}\z/.freeze
    CACHE_SIZE = 16
    MISS_CACHE_SIZE = 1024
    MISS_TTL = 30.0
    ERROR_TTL = 5.0
    LOOKUPS_PER_SECOND = 20
    LOGGED_SIZE = 256

    Entry = Struct.new(:snapshot, :retired_ms)

    attr_reader :max_age

    # max_age: seconds; checks: Checks; health: the reader's Health (no
    # lookup while it says Redis is unreachable).
    def initialize(app:, max_age:, checks:, health:, logger:)
      @app = app
      @max_age = Float(max_age)
      raise ArgumentError, "skew_max_age: must be seconds, 0 or more" if @max_age.negative?

      @checks = checks
      @health = health
      @logger = logger
      @lock = Mutex.new
      @entries = {}
      @misses = {}
      @logged = {}
      @window = [0, 0] # [second (monotonic, floored), lookups in it]
      @failed_until = nil # monotonic: no lookups before, after an error
    end

    # In a forked child: the parent's lock may have been held at the fork.
    def after_fork
      @lock = Mutex.new
    end

    # The snapshot of retired release `id`, or nil (see the class comment).
    def fetch(id, source)
      return nil unless id.is_a?(String) && id.ascii_only? && RELEASE_ID.match?(id)

      entry = @lock.synchronize { @entries[id] }
      if entry
        return entry.snapshot if young?(entry.retired_ms)

        @lock.synchronize { @entries.delete(id) } # too old now; its score may have moved: read again
      end
      return nil if missed?(id) || @health.failing?(:redis) || resting? || !lookup_allowed?

      load(id, source)
    end

    private

    def load(id, source)
      score, json = source.retired_release(id)
      @health.recovered(:skew) { @logger.info("cutover: reading retired releases of #{@app} works again") }
      return miss(id) unless score && young?(score.to_f)
      return miss(id) unless json

      snap, reason = begin
        @checks.record(id, json, origin: :retired)
      rescue JSON::ParserError, UnknownFormat => e
        [nil, "its record has no readable manifest (#{e.message})"]
      end
      return refused(id, reason) unless snap

      @lock.synchronize do
        @entries.shift while @entries.size >= CACHE_SIZE
        @entries[id] = Entry.new(snap, score.to_f).freeze
      end
      snap
    rescue Redis::BaseError, SystemCallError, IOError => e
      # Logged once until a lookup works again (a NOPERM from an ACL
      # without +zscore, or a paused Redis, fails every lookup alike).
      @health.failed(:skew, e) do
        @logger.warn("cutover: cannot read retired release #{id} of #{@app} for skew protection " \
                     "(#{e.class}: #{e.message}); requests naming a retired release get their assignment")
      end
      @failed_until = monotonic + ERROR_TTL
      nil
    end

    def young?(retired_ms)
      now_ms - retired_ms < @max_age * 1000
    end

    def resting?
      @failed_until && monotonic < @failed_until
    end

    def missed?(id)
      @lock.synchronize do
        until_at = @misses[id]
        next false unless until_at
        next true if until_at > monotonic

        @misses.delete(id)
        false
      end
    end

    def miss(id)
      @lock.synchronize do
        @misses.delete(id)
        @misses.shift while @misses.size >= MISS_CACHE_SIZE
        @misses[id] = monotonic + MISS_TTL
      end
      nil
    end

    def refused(id, reason)
      if log_once(id, "cutover: refused retired release #{id} of #{@app} for skew protection: #{reason}; " \
                      "serving the request's assigned release")
        Instrumentation.rejected({ app: @app, release: id, reason: reason }, @logger)
      end
      miss(id)
    end

    # Logs a line about refused release `id` once (a bounded memory of the ids logged).
    def log_once(id, line)
      first = @lock.synchronize do
        next false if @logged.key?(id)

        @logged.shift while @logged.size >= LOGGED_SIZE
        @logged[id] = true
      end
      @logger.warn(line) if first
      first
    end

    def lookup_allowed?
      second = monotonic.floor
      @lock.synchronize do
        @window = [second, 0] unless @window[0] == second
        next false if @window[1] >= LOOKUPS_PER_SECOND

        @window[1] += 1
        true
      end
    end

    def now_ms
      Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
