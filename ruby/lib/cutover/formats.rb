# frozen_string_literal: true

require "set"
require "cutover/errors"

module Cutover
  # Manifest formats, one class each, named as the CLI's `manifest_format`
  # values and the Node reader's formats: Shakapacker, Webpack, Vite,
  # Propshaft, Sprockets. Each format is one class that answers `.detect?(data)`
  # for a parsed manifest (a Hash) and, built from it, `#lookup(name)` and
  # `#entrypoint(name)` as plain hash reads: everything is computed once, in
  # the constructor, and frozen. Adding a format is one class plus one line in
  # FORMATS (most specific shapes first).
  module Formats
    EMPTY = [].freeze

    module_function

    def parse(data)
      raise UnknownFormat, "a manifest is a JSON object, got #{data.class}" unless data.is_a?(Hash)

      format = FORMATS.find { |f| f.detect?(data) }
      raise UnknownFormat, "no known manifest format matches (#{FORMATS.map(&:label).join(', ')})" unless format

      format.new(data)
    end

    # {"src" => url, "integrity" => sri or nil}, from a string or an object.
    def asset(value)
      case value
      when String then { "src" => value.freeze, "integrity" => nil }.freeze
      when Hash
        src = value["src"]
        src.is_a?(String) ? { "src" => src.freeze, "integrity" => value["integrity"]&.to_s&.freeze }.freeze : nil
      end
    end

    # Every URL a format object can answer (lookups and entrypoint chunks):
    # what the origin allowlist checks.
    def urls(assets, entrypoints)
      (assets + entrypoints.values.flat_map { |e| (e["js"] + e["css"] + e["preload"]).compact.map { |c| c["src"] } }).uniq
    end

    def entrypoint(js, css, preload = EMPTY)
      { "js" => js.freeze, "css" => css.freeze, "preload" => preload.freeze }.freeze
    end

    # Without an entrypoints section, entrypoint("application") is the
    # application.js / application.css entries, as Shakapacker does.
    def entrypoints_from_entries(lookup)
      names = lookup.keys.filter_map { |k| k.delete_suffix(".js") if k.end_with?(".js") } +
              lookup.keys.filter_map { |k| k.delete_suffix(".css") if k.end_with?(".css") }
      names.uniq.to_h do |name|
        js = [lookup["#{name}.js"]].compact
        css = [lookup["#{name}.css"]].compact
        [name.freeze, entrypoint(js, css)]
      end.freeze
    end

    # The answers of a format whose constructor fills @assets (name =>
    # {"src", "integrity"}) and @entrypoints (name => entrypoint).
    module Assets
      def urls
        Formats.urls(@assets.values.compact.map { |a| a["src"] }, @entrypoints)
      end

      def lookup(name)
        @assets[name]&.fetch("src")
      end

      def entrypoint(name)
        @entrypoints[name]
      end
    end
  end
end

require "cutover/formats/shakapacker"
require "cutover/formats/webpack"
require "cutover/formats/vite"
require "cutover/formats/propshaft"
require "cutover/formats/sprockets"

module Cutover
  module Formats
    # Most specific first: Vite's entries have a "src" too, and a Propshaft
    # manifest of strings only reads the same as a flat one.
    FORMATS = [Sprockets, Vite, Propshaft, Shakapacker, Webpack].freeze

    # The names these two classes had before they took the CLI's format
    # names (`manifest_format`: shakapacker, webpack); the README named them.
    WebpackAssetsManifest = Shakapacker
    WebpackManifestPlugin = Webpack
  end
end
