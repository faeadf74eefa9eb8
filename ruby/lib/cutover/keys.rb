# frozen_string_literal: true

module Cutover
  # The Redis keys of one app (docs/redis.md, "Redis contract"). They share the hash
  # tag {APP}, so they live in one Redis Cluster slot.
  class Keys
    SIGNATURE_SUFFIX = "signature"

    attr_reader :app, :current, :manifest, :signature, :releases, :channel, :fleet,
                :canary, :canary_manifest, :canary_signature, :retired

    def initialize(app)
      @app = app
      base = "cutover:{#{app}}:"
      @current = "#{base}current"
      @manifest = "#{base}manifest"
      @signature = "#{base}#{SIGNATURE_SUFFIX}"
      @releases = "#{base}releases"
      @channel = "#{base}events"
      @release_prefix = "#{base}release:"
      @fleet = "#{base}fleet"
      # A rollout (docs/redis.md, "Rollouts and skew protection"): the canary
      # (JSON), its manifest and signature, and the releases no longer served.
      @canary = "#{base}canary"
      @canary_manifest = "#{base}canary_manifest"
      @canary_signature = "#{base}canary_signature"
      @retired = "#{base}retired"
      freeze
    end

    def release(id)
      "#{@release_prefix}#{id}"
    end

    # The key of one process's last report (id: HOST:PID).
    def process(id)
      "#{@fleet}:#{id}"
    end
  end
end
