# frozen_string_literal: true

module Cutover
  module Formats
    # Propshaft's .manifest.json: "application.js": {"digested_path": url,
    # "integrity": "sha384-..." or null}. Propshaft has no entrypoints:
    # entrypoint("application") is the application.js / application.css
    # entries, as javascript_include_tag "application" reads them.
    class Propshaft
      include Assets

      def self.label
        "Propshaft"
      end

      def self.detect?(data)
        entry = ->(v) { v.is_a?(Hash) && v["digested_path"].is_a?(String) }
        data.all? { |_, v| entry.(v) || v.is_a?(String) } && data.any? { |_, v| entry.(v) }
      end

      def self.module_scripts?
        false
      end

      def initialize(data)
        @assets = data.to_h do |name, value|
          url, integrity = value.is_a?(Hash) ? [value["digested_path"], value["integrity"]] : [value, nil]
          [name.freeze, { "src" => url.freeze, "integrity" => integrity&.to_s&.freeze }.freeze]
        end.freeze
        @entrypoints = Formats.entrypoints_from_entries(@assets)
        freeze
      end
    end
  end
end
