# frozen_string_literal: true

module Cutover
  module Formats
    # Vite's manifest (.vite/manifest.json), as vite_ruby builds and reads it
    # (merged with vite-plugin-ruby's manifest-assets.json by cutover):
    #   "entrypoints/application.js": {"file": url, "isEntry": true,
    #     "imports": ["_shared-x.js"], "dynamicImports": [...], "css": [url...]}
    # `imports` name other keys. entrypoint("application") follows
    # vite_ruby 3.10's resolve_entries: js is the entry chunk's file, preload
    # the files of its static imports (recursively, dependencies first, each
    # once), css the entry's css then its imports' css (each once). Vite
    # records no integrity. Names resolve as vite_ruby's do: a key as given,
    # else "entrypoints/NAME" (".js" added when NAME has no extension).
    class Vite
      ENTRYPOINTS_DIR = "entrypoints"
      EXTENSIONS = %w[.js .ts .jsx .tsx .mjs .mts .css].freeze

      def self.label
        "Vite"
      end

      def self.detect?(data)
        !data.empty? && data.all? { |_, v| v.is_a?(Hash) && v["file"].is_a?(String) }
      end

      # Vite's chunks are ES modules: <script type="module">, modulepreload.
      def self.module_scripts?
        true
      end

      def initialize(data)
        @data = data
        @entrypoints = data.keys.to_h { |key| [key.freeze, resolve(key)] }.freeze
        @files = data.to_h { |key, entry| [key.freeze, entry["file"].freeze] }.freeze
        @data = nil
        freeze
      end

      def urls
        Formats.urls(@files.values.compact, @entrypoints.compact)
      end

      def lookup(name)
        key = candidates(name, extensions: [""]).find { |k| @files.key?(k) }
        key && @files[key]
      end

      def entrypoint(name)
        key = candidates(name, extensions: ["", *EXTENSIONS]).find { |k| @entrypoints.key?(k) }
        key && @entrypoints[key]
      end

      private

      # The key as given; then, like vite_ruby, under entrypoints/ when it
      # has no directory, with each extension tried when it has none.
      def candidates(name, extensions:)
        with_ext = File.extname(name).empty? ? extensions.map { |e| "#{name}#{e}" } : [name]
        nested = name.include?("/") ? [] : with_ext.map { |n| "#{ENTRYPOINTS_DIR}/#{n}" }
        [name] + nested + with_ext
      end

      def resolve(key)
        entry = @data[key]
        imports = import_chunks(entry, Set.new)
        file = entry["file"]
        js = file.end_with?(".css") ? [] : [Formats.asset(file)]
        own_css = file.end_with?(".css") ? [file] : []
        css = (own_css + ([entry] + imports).flat_map { |e| Array(e["css"]) }).uniq
        preload = imports.map { |chunk| chunk["file"] }.uniq
        Formats.entrypoint(js, css.map { |u| Formats.asset(u) }, preload.map { |u| Formats.asset(u) })
      end

      # vite_ruby's import_chunks_for: each static import's own imports
      # first, then the import; every file once.
      def import_chunks(entry, seen)
        Array(entry["imports"]).each_with_object([]) do |key, chunks|
          chunk = @data[key]
          next unless chunk.is_a?(Hash) && chunk["file"].is_a?(String)
          next if seen.include?(chunk["file"])

          seen << chunk["file"]
          chunks.concat(import_chunks(chunk, seen))
          chunks << chunk
        end
      end
    end
  end
end
