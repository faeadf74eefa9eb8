# frozen_string_literal: true

require "cutover/middleware"

module Cutover
  # View helpers, included in every view by the Railtie. One request renders
  # one release: the first helper call pins the snapshot the middleware
  # chooses (a preview, the release the request names, or its assignment:
  # live or canary) in the request env.
  module Helpers
    # <script> tags for every js chunk of the entrypoints, in order, each
    # chunk once; defer by default (as Shakapacker); integrity and
    # crossorigin="anonymous" when the manifest has integrity. Other options
    # go to javascript_include_tag (nonce: true, async: true, defer: false...).
    # For Vite, as vite_ruby's vite_javascript_tag: type="module" and
    # crossorigin="" scripts, then a <link rel="modulepreload"> for every
    # chunk they import statically.
    def cutover_javascript_tags(*names, **options)
      snapshot = cutover_snapshot
      return cutover_module_tags(snapshot, names, **options) if snapshot.module_scripts?

      options = { defer: true }.merge(options)
      tags = cutover_chunks(snapshot, names, "js").map do |chunk|
        javascript_include_tag(chunk["src"], **cutover_sri(chunk), **options)
      end
      safe_join(tags, "\n")
    end

    # <link rel="stylesheet"> tags for every css chunk of the entrypoints
    # (for Vite, with crossorigin="" and media="screen", as vite_ruby).
    def cutover_stylesheet_tags(*names, **options)
      snapshot = cutover_snapshot
      options = { media: "screen", crossorigin: "" }.merge(options) if snapshot.module_scripts?
      tags = cutover_chunks(snapshot, names, "css").map do |chunk|
        stylesheet_link_tag(chunk["src"], **cutover_sri(chunk), **options)
      end
      safe_join(tags, "\n")
    end

    # The CDN URL of a manifest entry; raises Cutover::MissingEntry.
    def cutover_asset_url(name)
      cutover_snapshot.lookup!(name.to_s)
    end

    # <meta name="cutover-release" content="ID">: the release this page
    # renders, for the page's scripts to send back (X-Cutover-Release) on
    # their requests. Empty while the fallback manifest is served.
    def cutover_release_meta_tag
      id = cutover_snapshot.release_id
      id ? tag.meta(name: "cutover-release", content: id) : "".html_safe
    end

    # The snapshot this request renders (see Cutover::Middleware).
    def cutover_snapshot
      env = respond_to?(:request) && request ? request.env : nil
      return Cutover.reader.snapshot unless env

      Middleware.snapshot(env)
    end

    private

    def cutover_module_tags(snapshot, names, **options)
      options = { type: "module", crossorigin: "" }.merge(options)
      scripts = cutover_chunks(snapshot, names, "js").map do |chunk|
        javascript_include_tag(chunk["src"], **cutover_sri(chunk), **options)
      end
      nonce = options[:nonce] == true ? content_security_policy_nonce : options[:nonce]
      preloads = cutover_chunks(snapshot, names, "preload").map do |chunk|
        tag.link(rel: "modulepreload", href: chunk["src"], as: "script", crossorigin: options[:crossorigin], nonce: nonce)
      end
      safe_join(scripts + preloads, "\n")
    end

    def cutover_chunks(snapshot, names, type)
      names.flat_map { |name| snapshot.entrypoint!(name.to_s)[type] }.uniq { |chunk| chunk["src"] }
    end

    def cutover_sri(chunk)
      chunk["integrity"] ? { integrity: chunk["integrity"], crossorigin: "anonymous" } : {}
    end
  end
end
