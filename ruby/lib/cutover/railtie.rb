# frozen_string_literal: true

require "rails/railtie"
require "cutover/configuration"

module Cutover
  # config.cutover.* (see ruby/README.md), the middleware, the view
  # helpers, and the process-wide reader, created at boot so that a
  # preloading server forks workers that already hold the manifest.
  class Railtie < ::Rails::Railtie
    config.cutover = ActiveSupport::OrderedOptions.new
    config.cutover.app = nil               # nil: ENV["CUTOVER_APP"]
    config.cutover.redis_url = nil         # nil: ENV["REDIS_URL"]
    config.cutover.poll_interval = Reader::DEFAULT_POLL_INTERVAL
    config.cutover.fallback_manifest = nil
    config.cutover.preview = nil           # a proc given the request; nil: no previews
    config.cutover.eager = true            # false: create the reader on first use
    config.cutover.logger = nil            # nil: Rails.logger
    config.cutover.asset_origins = nil     # ["https://cdn.example.com"]: the only origins rendered
    config.cutover.verify_keys = nil       # [public key PEM, ...]: only signed releases are used
    config.cutover.report_interval = Reader::DEFAULT_REPORT_INTERVAL # seconds between fleet reports; false: none
    config.cutover.rollout_key = nil       # a proc given the request: its rollout key (user id); nil: cookie
    config.cutover.skew_max_age = Reader::DEFAULT_SKEW_MAX_AGE # seconds a retired release stays servable

    class << self
      attr_accessor :rake
    end

    rake_tasks do
      # `rails db:migrate` and friends should not need Redis.
      Railtie.rake = true
    end

    initializer "cutover.middleware" do |app|
      require "cutover/middleware"
      app.middleware.use Cutover::Middleware
    end

    initializer "cutover.helpers" do
      ActiveSupport.on_load(:action_view) do
        require "cutover/helpers"
        include Cutover::Helpers
      end
    end

    config.after_initialize do |app|
      options = app.config.cutover
      %i[preview rollout_key].each do |name|
        value = options[name]
        next if value.nil? || value.respond_to?(:call)

        raise ArgumentError, "config.cutover.#{name} must be a proc given the request, got #{value.class}"
      end

      Cutover.configure do |c|
        c.app = options.app || ENV["CUTOVER_APP"]
        c.redis_url = options.redis_url || ENV["REDIS_URL"]
        c.poll_interval = options.poll_interval
        c.fallback_manifest = options.fallback_manifest&.to_s
        c.preview = options.preview
        c.logger = options.logger || Rails.logger
        c.asset_origins = options.asset_origins
        c.verify_keys = options.verify_keys
        c.report_interval = options.report_interval
        c.rollout_key = options.rollout_key
        c.skew_max_age = options.skew_max_age
      end
      Cutover.reader if options.eager && Cutover.configured? && !Railtie.rake
    end
  end
end
