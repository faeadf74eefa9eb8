# frozen_string_literal: true

module Cutover
  module Formats
    # Sprockets' manifest: "assets": {"application.js": url}, and "files":
    # {url: {"logical_path", "integrity", ...}} (cutover makes both the
    # assets' values and the files' keys CDN URLs, so they still join).
    # entrypoint("application") is the application.js / application.css
    # entries, with their integrity.
    class Sprockets
      include Assets

      def self.label
        "Sprockets"
      end

      def self.detect?(data)
        data["files"].is_a?(Hash) && data["assets"].is_a?(Hash)
      end

      def self.module_scripts?
        false
      end

      def initialize(data)
        files = data["files"]
        @assets = data["assets"].each_with_object({}) do |(name, url), out|
          next unless url.is_a?(String)

          record = files[url]
          integrity = record.is_a?(Hash) ? record["integrity"] : nil
          out[name.freeze] = { "src" => url.freeze, "integrity" => integrity&.to_s&.freeze }.freeze
        end.freeze
        @entrypoints = Formats.entrypoints_from_entries(@assets)
        freeze
      end
    end
  end
end
