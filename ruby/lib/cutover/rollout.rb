# frozen_string_literal: true

require "digest"
require "json"

module Cutover
  # Rollouts (docs/redis.md, "Rollouts and skew protection"): which requests
  # get the canary release. A key (a user id, or the random cutover_key
  # cookie) gets it when
  #
  #   bucket    = uint32_be(first 4 bytes of SHA-256(salt + ":" + key)) mod 10000
  #   threshold = round(percent * 100)
  #   canary   <=> bucket < threshold
  #
  # so a key gets the same answer in every process and both readers, and
  # stays on the canary when the percent rises (the salt is kept). Vectors:
  # tests/contract/rollout.json.
  module Rollout
    BUCKETS = 10_000
    SALT = /\A\h{32}\z/.freeze

    module_function

    # The key's bucket, 0...10000. key: a non-empty String (UTF-8).
    def bucket(salt, key)
      key = utf8(key)
      raise ArgumentError, "a rollout key is a non-empty string" if key.empty?

      Digest::SHA256.digest("#{salt}:".b + key)[0, 4].unpack1("N") % BUCKETS
    end

    # The buckets below which a key gets the canary: percent 5 -> 500.
    def threshold(percent)
      (percent * 100).round
    end

    def utf8(key)
      key = key.to_s
      key = key.encode(Encoding::UTF_8) unless [Encoding::UTF_8, Encoding::BINARY, Encoding::US_ASCII].include?(key.encoding)
      key.b
    end

    # The canary key's JSON, read: a Plan, or Invalid naming why not (and
    # the release it names, when it names one).
    def plan(json)
      data = begin
        JSON.parse(json)
      rescue JSON::ParserError
        nil
      end
      raise Invalid.new(nil, "the canary is not a JSON object") unless data.is_a?(Hash)

      release = data["release"]
      release = nil unless release.is_a?(String) && !release.empty?
      fail_with = ->(reason) { raise Invalid.new(release, reason) }
      fail_with.("unsupported canary (v #{data['v'].inspect})") unless data["v"] == 1
      fail_with.("the canary names no release") unless release
      percent = data["percent"]
      unless percent.is_a?(Numeric) && percent.positive? && percent < 100
        fail_with.("the canary's percent #{percent.inspect} is not a number between 0 and 100")
      end
      fail_with.("the canary's salt is not 32 hex characters") unless data["salt"].is_a?(String) && SALT.match?(data["salt"])

      Plan.new(release.freeze, percent, data["salt"].freeze, threshold(percent)).freeze
    end

    # What the canary key asks for: its release, percent and salt.
    Plan = Struct.new(:release, :percent, :salt, :threshold)

    # A canary key that cannot be served, and why.
    class Invalid < StandardError
      attr_reader :release

      def initialize(release, reason)
        @release = release
        super(reason)
      end
    end

    # The canary a process serves: the plan and the checked snapshot of its
    # manifest. Immutable; the reader swaps it together with the live one.
    class Canary
      attr_reader :snapshot, :percent, :salt, :threshold

      def initialize(plan, snapshot)
        @snapshot = snapshot
        @percent = plan.percent
        @salt = plan.salt
        @threshold = plan.threshold
        freeze
      end

      def release_id
        @snapshot.release_id
      end

      # Does this key get the canary? nil or empty: no.
      def assigned?(key)
        return false if key.nil? || key.to_s.empty?

        Rollout.bucket(@salt, key) < @threshold
      end

      # "5%" or "12.34%".
      def share
        "#{@percent == @percent.to_i ? @percent.to_i : @percent}%"
      end
    end
  end
end
