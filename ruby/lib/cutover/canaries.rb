# frozen_string_literal: true

require "cutover/instrumentation"
require "cutover/rollout"

module Cutover
  # Turns the canary keys a refresh read (docs/redis.md, "Rollouts and skew
  # protection") into the canary a process serves, or nil: the canary's
  # JSON as the contract says, its release not the live one, and its
  # manifest passing every check a live one passes (Checks, with
  # canary_signature). A refusal is logged, instrumented and handed to
  # on_refused (the fleet report) once per release and reason. Called under
  # the reader's refresh lock only.
  class Canaries
    # The canary key as last read (the poll compares it: an unchanged key is
    # not read again), and the last refusal, [release, reason].
    attr_reader :json, :refused

    def initialize(app:, keys:, checks:, logger:, on_refused:)
      @app = app
      @keys = keys
      @checks = checks
      @logger = logger
      @on_refused = on_refused
      @json = nil
      @refused = nil
      @ignored = nil
    end

    # The canary to serve (a Rollout::Canary) or nil. old: the canary served
    # now; the same release keeps its checked snapshot (a release id names
    # one manifest), and the same release, percent and salt keep the object.
    def read(current, json, manifest, signature, old, source_label)
      @json = json
      if json.nil?
        @refused = @ignored = nil
        return nil
      end

      plan = Rollout.plan(json)
      return ignore(plan.release) if plan.release == current

      if old&.release_id == plan.release
        return old if old.percent == plan.percent && old.salt == plan.salt

        return Rollout::Canary.new(plan, old.snapshot)
      end
      return refuse(plan.release, "no #{@keys.canary_manifest}", source_label) if manifest.nil?

      snap, reason = @checks.manifest(plan.release, manifest, signature, origin: :canary)
      return refuse(plan.release, reason, source_label) unless snap

      @refused = nil
      Rollout::Canary.new(plan, snap)
    rescue Rollout::Invalid => e
      refuse(e.release, e.message, source_label)
    end

    # Logs a change of the canary served (live: the live snapshot).
    def announce(canary, previous, live, source_label)
      if canary
        @logger.info("cutover: serving canary release #{canary.release_id} of #{@app} to #{canary.share} " \
                     "of keys (live #{live.release_id || 'none'}, via #{source_label})")
      else
        @logger.info("cutover: no canary release of #{@app} any more (was #{previous.release_id}, " \
                     "via #{source_label}); serving #{live.description} to every key")
      end
    end

    private

    # Nobody gets a refused canary.
    def refuse(release, reason, source_label)
      return nil if @refused == [release, reason]

      @refused = [release, reason]
      @on_refused.call(release, reason)
      @logger.error("cutover: refused canary release #{release || '(none named)'} of #{@app} (via " \
                    "#{source_label}): #{reason}; nobody gets the canary")
      Instrumentation.rejected({ app: @app, release: release, reason: reason, canary: true }, @logger)
      nil
    end

    # A canary naming the live release (the contract never writes one):
    # there is nothing else to serve; said once.
    def ignore(release)
      unless @ignored == release
        @ignored = release
        @logger.warn("cutover: #{@keys.canary} names the live release #{release} of #{@app}: ignored")
      end
      nil
    end
  end
end
