# frozen_string_literal: true

module Cutover
  module Formats
    # webpack-manifest-plugin's flat map: "application.js": url. It has no
    # entrypoints and no integrity: entrypoint("application") is the
    # application.js / application.css entries.
    class Webpack
      include Assets

      def self.label
        "webpack-manifest-plugin"
      end

      def self.module_scripts?
        false
      end

      def self.detect?(data)
        data.all? { |_, v| v.is_a?(String) }
      end

      def initialize(data)
        @assets = data.to_h { |name, url| [name.freeze, Formats.asset(url)] }.freeze
        @entrypoints = Formats.entrypoints_from_entries(@assets)
        freeze
      end
    end
  end
end
