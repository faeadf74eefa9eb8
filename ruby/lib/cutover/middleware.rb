# frozen_string_literal: true

require "rack/utils"
require "cutover/configuration"

module Cutover
  # Rack middleware (the Railtie inserts it): resolves ?cutover_release=<id
  # or unique prefix> into a preview snapshot when the preview policy allows
  # the request, and leaves it in env for the helpers. A refused request is
  # served the live release as if the parameter were absent; an unknown or
  # ambiguous release is a 404, Redis unreachable a 503 — never an exception.
  class Middleware
    ENV_KEY = "cutover.snapshot"
    PARAM = "cutover_release"

    # reader: and preview: default to Cutover.reader and Cutover.config.preview,
    # read on each request (so the Railtie's configuration applies).
    def initialize(app, reader: nil, preview: nil)
      @app = app
      @reader = reader
      @preview = preview
    end

    def call(env)
      ref = requested_release(env)
      if ref && allowed?(env)
        begin
          env[ENV_KEY] = (@reader || Cutover.reader).preview(ref)
        rescue UnknownRelease => e
          return respond(404, "cutover preview: #{e.message}\n")
        rescue Unavailable => e
          return respond(503, "cutover preview: #{e.message}\n")
        end
      end
      @app.call(env)
    end

    private

    def requested_release(env)
      query = env["QUERY_STRING"]
      return nil if query.nil? || !query.include?(PARAM)

      value = begin
        Rack::Utils.parse_query(query)[PARAM]
      rescue ArgumentError # malformed %-escapes: the raw value, which no release id matches
        query[/(?:\A|&)#{PARAM}=([^&]*)/, 1]
      end
      value = value.last if value.is_a?(Array)
      value.nil? || value.empty? ? nil : value
    end

    def allowed?(env)
      policy = @preview || Cutover.config.preview
      return false unless policy

      request = defined?(::ActionDispatch::Request) ? ::ActionDispatch::Request.new(env) : ::Rack::Request.new(env)
      policy.call(request) ? true : false
    end

    def respond(status, body)
      [status, { "Content-Type" => "text/plain; charset=utf-8", "Cache-Control" => "no-store" }, [body]]
    end
  end
end
