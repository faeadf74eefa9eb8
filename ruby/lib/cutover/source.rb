# frozen_string_literal: true

require "redis"
require "cutover/url"

module Cutover
  # Makes the reader's Redis connections. Connections never cross a fork:
  # each process asks for its own Source.
  class Connector
    # Short, so a refresh never holds a background thread for long. Lookups
    # never wait on Redis at all.
    TIMEOUTS = { connect_timeout: 1.0, read_timeout: 1.0, write_timeout: 1.0 }.freeze
    # A preview is read from a request thread: a paused Redis must cost it
    # a fraction of a second, not the refresh timeouts (plus a reconnect).
    PREVIEW_TIMEOUT = 0.25
    PREVIEW_TIMEOUTS = { connect_timeout: PREVIEW_TIMEOUT, read_timeout: PREVIEW_TIMEOUT,
                         write_timeout: PREVIEW_TIMEOUT, reconnect_attempts: 0 }.freeze

    attr_reader :masked_url

    # redis: is a template: cutover opens its own connections from its
    # options (Redis#dup), because a subscribed connection cannot run other
    # commands and a connection must not be shared with a forked child.
    def initialize(redis_url: nil, redis: nil)
      raise ArgumentError, "give redis_url: or redis:, not both" if redis_url && redis

      @template = redis
      @url = redis ? nil : (redis_url || ENV["REDIS_URL"])
      @url = nil if @url&.empty?
      @masked_url = redis ? URL.mask(redis.id) : URL.mask(@url)
      freeze
    end

    def connect
      return @template.dup if @template

      @url ? Redis.new(url: @url, **TIMEOUTS) : Redis.new(**TIMEOUTS)
    end

    # The connection previews use, with short timeouts of its own (a
    # redis: template's other options are kept).
    def connect_for_previews
      if @template
        options = @template.instance_variable_get(:@options)
        return options.is_a?(Hash) ? Redis.new(options.merge(PREVIEW_TIMEOUTS)) : @template.dup
      end

      @url ? Redis.new(url: @url, **PREVIEW_TIMEOUTS) : Redis.new(**PREVIEW_TIMEOUTS)
    end

    def source(keys)
      Source.new(keys, connect, connect, previews: -> { connect_for_previews })
    end
  end

  # Every command the reader sends (the minimal ACL in ruby/README.md lists
  # exactly these): MGET of the live and canary keys, GET of a release record
  # and ZRANGE of the release ids for previews, ZSCORE of the retired set and
  # GET of a record for skew protection, SUBSCRIBE to the events channel, and
  # the fleet report's ZADD, SET and ZREMRANGEBYSCORE.
  # Each process has its own Source: connections never cross a fork.
  class Source
    attr_reader :keys

    def initialize(keys, commands, subscriber, previews: nil)
      @keys = keys
      @commands = commands
      @subscriber = subscriber
      @previews_factory = previews
      @previews = nil
      @previews_lock = Mutex.new
    end

    # [release id, manifest JSON, signature JSON, canary JSON, canary
    # manifest, canary signature] in one round trip: activation and the
    # rollout scripts write them atomically, so they always match.
    def live
      @commands.mget(@keys.current, @keys.manifest, @keys.signature,
                     @keys.canary, @keys.canary_manifest, @keys.canary_signature)
    end

    # [release id, canary JSON]: what the poll compares with what it serves.
    def heads
      @commands.mget(@keys.current, @keys.canary)
    end

    # This process's fleet report (docs/redis.md, "The fleet"), in one
    # pipelined round trip on the refresh connection: its member scored
    # `at` (ms), its report expiring after keep_ms, and the members older
    # than that dropped. Every key shares {APP}: one Cluster slot, one node.
    def report(id, json, at, keep_ms)
      @commands.pipelined do |pipeline|
        pipeline.zadd(@keys.fleet, at, id)
        pipeline.set(@keys.process(id), json, px: keep_ms)
        pipeline.zremrangebyscore(@keys.fleet, "-inf", "(#{at - keep_ms}")
      end
    end

    def release_record(id)
      previews.get(@keys.release(id))
    end

    def release_ids
      previews.zrange(@keys.releases, 0, -1)
    end

    # [when the release was retired (ms, a Float) or nil, its record JSON or
    # nil], in one pipelined round trip on the previews' connection (short
    # timeouts: a request thread waits on it).
    def retired_release(id)
      previews.pipelined do |pipeline|
        pipeline.zscore(@keys.retired, id)
        pipeline.get(@keys.release(id))
      end
    end

    # Blocks until the connection fails or stays silent for idle_timeout
    # seconds (Redis::TimeoutError).
    def subscribe(idle_timeout, &block)
      @subscriber.subscribe_with_timeout(idle_timeout, @keys.channel, &block)
    end

    def close
      connections.each do |redis|
        redis.close
      rescue StandardError
        nil
      end
    end

    # In a forked child, on the copies of the parent's connections: close
    # this process's file descriptors without a word to the server (no QUIT,
    # which would end the parent's connection too; a plain close(2) of a
    # forked descriptor leaves the parent's socket open), and without the
    # client's lock, which a parent thread may have held at the fork.
    def abandon
      connections.each do |redis|
        redis.close # Redis#close: Client#disconnect, a bare close of the socket
      rescue StandardError
        nil
      end
    end

    # The local TCP ports of this Source's open connections (diagnostics:
    # which Redis clients this process holds; CLIENT LIST shows them as addr).
    def local_ports
      connections.filter_map do |redis|
        client = redis.instance_variable_get(:@original_client) || redis._client
        sock = client.connection&.instance_variable_get(:@sock)
        sock.local_address.ip_port if sock.respond_to?(:local_address) && !sock.closed?
      rescue StandardError
        nil
      end
    end

    private

    def connections
      [@commands, @subscriber, @previews].compact
    end

    def previews
      @previews || @previews_lock.synchronize { @previews ||= @previews_factory ? @previews_factory.call : @commands }
    end
  end
end
