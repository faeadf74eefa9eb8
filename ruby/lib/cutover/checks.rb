# frozen_string_literal: true

require "json"
require "cutover/errors"
require "cutover/snapshot"

module Cutover
  # The checks every manifest read from Redis passes before it is served,
  # whether live, canary or a retired release's record: it parses into a
  # known format, every URL is allowed by asset_origins, and (with
  # verify_keys) a configured key signed it for that release.
  class Checks
    attr_reader :origins, :verifier

    def initialize(app:, origins:, verifier:)
      @app = app
      @origins = origins
      @verifier = verifier
      freeze
    end

    # [snapshot, nil] or [nil, reason] for manifest bytes and their
    # signature (live: manifest/signature; canary: canary_manifest/canary_signature).
    def manifest(id, json, signature, origin:)
      return [nil, "no manifest"] if json.nil?

      reason = @verifier&.reject_reason(id, json, signature)
      return [nil, reason] if reason

      snap = Snapshot.parse(json, release_id: id, origin: origin, app: @app)
      reason = origin_reason(snap)
      reason ? [nil, reason] : [snap, nil]
    rescue JSON::ParserError, UnknownFormat => e
      [nil, "the manifest cannot be read (#{e.message})"]
    end

    # [snapshot, nil] or [nil, reason] for a release record (JSON). With
    # verify:, its `signature` must verify over the manifest as the record
    # holds it, serialized as compact JSON in the record's key order (how the
    # CLI wrote the manifest it signed). Raises JSON::ParserError or
    # UnknownFormat for a record without a readable manifest.
    def record(id, json, origin:, verify: true)
      data = JSON.parse(json)
      raise UnknownFormat, "the record is not a JSON object" unless data.is_a?(Hash)

      manifest = data["manifest"]
      bytes = manifest.is_a?(String) ? manifest : JSON.generate(manifest)
      manifest = JSON.parse(manifest) if manifest.is_a?(String)
      if verify && @verifier
        reason = @verifier.reject_reason(id, bytes, data["signature"].is_a?(String) ? data["signature"] : nil)
        return [nil, reason] if reason
      end
      snap = Snapshot.new(Formats.parse(manifest), release_id: id, origin: origin, app: @app)
      reason = origin_reason(snap)
      reason ? [nil, reason] : [snap, nil]
    end

    def origin_reason(snap)
      why = @origins.reject_reason(snap.urls)
      return nil unless why

      why.include?("asset_origins") && @origins.configured? ? "#{why} (asset_origins: #{@origins.origins.join(', ')})" : why
    end
  end
end
