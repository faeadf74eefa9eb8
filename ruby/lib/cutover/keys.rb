# frozen_string_literal: true

module Cutover
  # The Redis keys of one app (docs/redis.md, "Redis contract"). They share the hash
  # tag {APP}, so they live in one Redis Cluster slot.
  class Keys
    SIGNATURE_SUFFIX = "signature"

    attr_reader :app, :current, :manifest, :signature, :releases, :channel

    def initialize(app)
      @app = app
      base = "cutover:{#{app}}:"
      @current = "#{base}current"
      @manifest = "#{base}manifest"
      @signature = "#{base}#{SIGNATURE_SUFFIX}"
      @releases = "#{base}releases"
      @channel = "#{base}events"
      @release_prefix = "#{base}release:"
      freeze
    end

    def release(id)
      "#{@release_prefix}#{id}"
    end
  end
end
