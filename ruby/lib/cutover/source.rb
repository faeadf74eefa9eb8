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

    def source(keys)
      Source.new(keys, connect, connect)
    end
  end

  # Every command the reader sends (the minimal ACL in ruby/README.md lists
  # exactly these): GET and MGET on the live keys, GET of a release record and
  # ZRANGE of the release ids for previews, SUBSCRIBE to the events channel.
  class Source
    attr_reader :keys

    def initialize(keys, commands, subscriber)
      @keys = keys
      @commands = commands
      @subscriber = subscriber
    end

    # [release id, manifest JSON] in one round trip: activation writes both
    # in one atomic script, so the pair always matches.
    def live
      @commands.mget(@keys.current, @keys.manifest)
    end

    def current
      @commands.get(@keys.current)
    end

    def release_record(id)
      @commands.get(@keys.release(id))
    end

    def release_ids
      @commands.zrange(@keys.releases, 0, -1)
    end

    # Blocks until the connection fails or stays silent for idle_timeout
    # seconds (Redis::TimeoutError).
    def subscribe(idle_timeout, &block)
      @subscriber.subscribe_with_timeout(idle_timeout, @keys.channel, &block)
    end

    def close
      [@commands, @subscriber].each do |redis|
        redis.close
      rescue StandardError
        nil
      end
    end
  end
end
