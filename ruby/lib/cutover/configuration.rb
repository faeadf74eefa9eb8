# frozen_string_literal: true

require "logger"
require "cutover/errors"
require "cutover/reader"

module Cutover
  # What Cutover.reader is built from. Under Rails the Railtie fills it from
  # config.cutover.*; elsewhere set it with Cutover.configure.
  # report_interval: seconds between fleet reports; false or nil: none.
  # rollout_key: a proc given the request, returning its rollout key (a user
  # id) or nil (the cutover_key cookie). skew_max_age: seconds a retired
  # release stays servable to requests that name it.
  Configuration = Struct.new(:app, :redis_url, :redis, :poll_interval, :fallback_manifest, :preview, :logger,
                             :asset_origins, :verify_keys, :report_interval, :rollout_key, :skew_max_age,
                             keyword_init: true)

  @lock = Mutex.new
  @reader = nil
  @config = nil

  class << self
    def config
      @config ||= Configuration.new(poll_interval: Reader::DEFAULT_POLL_INTERVAL,
                                    report_interval: Reader::DEFAULT_REPORT_INTERVAL,
                                    skew_max_age: Reader::DEFAULT_SKEW_MAX_AGE)
    end

    def configure
      yield config
      config
    end

    # The process-wide reader, created on first use from Cutover.config (the
    # Railtie creates it at boot). Thread-safe; fork-safe like every reader.
    def reader
      @reader || @lock.synchronize { @reader ||= build_reader }
    end

    # Replaces the process-wide reader (the previous one is not closed).
    def reader=(reader)
      @lock.synchronize { @reader = reader }
    end

    def configured?
      !config.app.to_s.empty?
    end

    def default_logger
      Logger.new($stderr)
    end

    private

    def build_reader
      c = config
      raise Error, "Cutover is not configured: set config.cutover.app (or Cutover.configure { |c| c.app = ... })" unless configured?

      Reader.new(app: c.app, redis_url: c.redis ? nil : c.redis_url, redis: c.redis,
                 poll_interval: c.poll_interval || Reader::DEFAULT_POLL_INTERVAL,
                 fallback_manifest: c.fallback_manifest, logger: c.logger,
                 asset_origins: c.asset_origins, verify_keys: c.verify_keys,
                 report_interval: c.report_interval, skew_max_age: c.skew_max_age || Reader::DEFAULT_SKEW_MAX_AGE)
    end
  end
end
