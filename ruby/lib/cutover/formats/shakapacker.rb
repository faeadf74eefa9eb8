# frozen_string_literal: true

module Cutover
  module Formats
    # Shakapacker / webpack-assets-manifest:
    #   "application.js": {"src": url, "integrity": "sha384-..."} (or a plain url)
    #   "entrypoints": {"application": {"assets": {"js": [...], "css": [...]}}}
    # Entrypoint assets are {src, integrity} objects or urls; Webpacker 5's
    # shape without the "assets" level is read too.
    class Shakapacker
      include Assets

      def self.label
        "Shakapacker/webpack-assets-manifest"
      end

      def self.module_scripts?
        false
      end

      def self.detect?(data)
        data["entrypoints"].is_a?(Hash) || data.any? { |_, v| v.is_a?(Hash) && v.key?("src") }
      end

      def initialize(data)
        @assets = data.each_with_object({}) do |(name, value), out|
          next if name == "entrypoints"

          asset = Formats.asset(value)
          out[name.freeze] = asset if asset
        end.freeze
        @entrypoints =
          if data["entrypoints"].is_a?(Hash)
            read_entrypoints(data["entrypoints"])
          else
            Formats.entrypoints_from_entries(@assets)
          end
        freeze
      end

      private

      def read_entrypoints(section)
        section.each_with_object({}) do |(name, entry), out|
          assets = entry.is_a?(Hash) ? (entry["assets"] || entry) : {}
          out[name.freeze] = Formats.entrypoint(list(assets["js"]), list(assets["css"]))
        end.freeze
      end

      def list(values)
        Array(values).filter_map { |v| Formats.asset(v) }
      end
    end
  end
end
