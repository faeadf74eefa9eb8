# frozen_string_literal: true

require "json"
require "cutover/errors"
require "cutover/formats"

module Cutover
  # One release's manifest, parsed once and frozen. A reader swaps whole
  # snapshots, so the release id and the manifest read from one snapshot
  # always belong together. Every method is a hash read.
  class Snapshot
    # release_id is nil for a fallback manifest (no release is known).
    attr_reader :release_id, :origin

    def self.parse(json, release_id:, origin:, app:)
      new(Formats.parse(JSON.parse(json)), release_id: release_id, origin: origin, app: app)
    end

    # origin: :redis (the live release), :canary (the canary release of a
    # rollout), :retired (a retired release's record, for skew protection),
    # :preview (a release record), or the path of a fallback manifest file.
    def initialize(manifest, release_id:, origin:, app:)
      @manifest = manifest
      @release_id = release_id&.dup&.freeze
      @origin = origin.is_a?(String) ? origin.dup.freeze : origin
      @app = app
      freeze
    end

    def fallback?
      @origin.is_a?(String)
    end

    def preview?
      @origin == :preview
    end

    def canary?
      @origin == :canary
    end

    # The URL of a manifest entry ("application.js"), or nil.
    def lookup(name)
      @manifest.lookup(name)
    end

    def lookup!(name)
      lookup(name) || raise(MissingEntry.new(name, release_id, description))
    end

    # {"js" => [{"src", "integrity"}...], "css" => [...], "preload" => [...]}
    # (frozen), or nil when the manifest has no such entrypoint.
    def entrypoint(name)
      @manifest.entrypoint(name)
    end

    def entrypoint!(name)
      entrypoint(name) || raise(MissingEntry.new(name, release_id, description))
    end

    # Every URL the manifest can answer (what the origin allowlist checks).
    def urls
      @manifest.urls
    end

    def format
      @manifest.class.label
    end

    # Are the manifest's scripts ES modules (Vite)? The helpers then render
    # type="module" scripts and modulepreload links, as vite_ruby does.
    def module_scripts?
      @manifest.class.module_scripts?
    end

    def inspect
      "#<#{self.class.name} #{description} origin=#{@origin.inspect} format=#{format}>"
    end

    def description
      if fallback?
        "the fallback manifest #{@origin} (app #{@app})"
      else
        "release #{@release_id} (app #{@app})"
      end
    end
  end
end
