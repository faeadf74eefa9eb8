# frozen_string_literal: true

require "securerandom"
require "rack/request"
require "rack/utils"
require "cutover/configuration"

module Cutover
  # Rack middleware (the Railtie inserts it): decides which release a
  # request renders, once, and says it on the response.
  #
  # - ?cutover_release=<id or unique prefix>, when the preview policy allows
  #   the request: that release (resolved here: an unknown or ambiguous
  #   release is a 404, Redis unreachable a 503, never an exception; a
  #   refused request is served as if the parameter were absent).
  # - Otherwise, chosen at the first helper call (Middleware.snapshot), so a
  #   request that renders nothing costs nothing: skew protection first (the
  #   release named by the X-Cutover-Release header, or by the
  #   cutover_release cookie on a request that is not a top-level
  #   navigation), when the reader still serves it (Reader#release_snapshot);
  #   else the release the request's rollout key is assigned (the
  #   rollout_key policy, or the random cutover_key cookie, set here when
  #   the request had none).
  # - A response that rendered a release carries X-Cutover-Release: ID and
  #   the session cookie cutover_release=ID.
  class Middleware
    ENV_KEY = "cutover.snapshot"
    CHOOSER = "cutover.chooser"
    NEW_KEY = "cutover.new_key"
    PARAM = "cutover_release"
    HEADER = "X-Cutover-Release"
    RELEASE_COOKIE = "cutover_release"
    KEY_COOKIE = "cutover_key"
    KEY = /\A\h{32}\z/.freeze
    KEY_MAX_AGE = 365 * 24 * 3600
    # What may go into a header or a cookie: a release id's characters only.
    SAFE_ID = /\A[0-9a-f]{1,64}\z/.freeze

    # The snapshot this request renders: chosen at the first call and kept
    # in env, so every tag of a page comes from one release. Without the
    # middleware in the stack, the live release.
    def self.snapshot(env)
      env[ENV_KEY] ||= (chooser = env[CHOOSER]) ? chooser.call : Cutover.reader.snapshot
    end

    # reader:, preview: and rollout_key: default to Cutover.reader and
    # Cutover.config's, read on each request (so the Railtie's configuration
    # applies). rollout_key: a proc given the request, returning its key (a
    # user id) or nil for the cutover_key cookie.
    def initialize(app, reader: nil, preview: nil, rollout_key: nil)
      @app = app
      @reader = reader
      @preview = preview
      @rollout_key = rollout_key
    end

    def call(env)
      ref = requested_release(env)
      if ref && allowed?(env)
        begin
          env[ENV_KEY] = reader.preview(ref)
        rescue UnknownRelease => e
          return respond(404, "cutover preview: #{e.message}\n")
        rescue Unavailable => e
          return respond(503, "cutover preview: #{e.message}\n")
        end
      else
        env[CHOOSER] = -> { choose(env) }
      end
      status, headers, body = @app.call(env)
      mark(env, headers)
      [status, headers, body]
    end

    private

    def reader
      @reader || Cutover.reader
    end

    def choose(env)
      reader = self.reader
      id = requested_skew(env)
      snap = id && reader.release_snapshot(id)
      return snap if snap

      reader.snapshot(key: reader.canary_release_id && rollout_key(env))
    end

    # The release the request says its page was rendered with: the header
    # always; the cookie only on requests that are not top-level
    # navigations (Sec-Fetch-Mode present and not "navigate"), so a new page
    # load gets its assignment.
    def requested_skew(env)
      header = env["HTTP_X_CUTOVER_RELEASE"]
      return header.strip unless header.nil? || header.strip.empty?

      mode = env["HTTP_SEC_FETCH_MODE"]
      return nil if mode.nil? || mode.empty? || mode == "navigate"

      Rack::Request.new(env).cookies[RELEASE_COOKIE]
    end

    # The rollout key: the policy's answer, else the cutover_key cookie,
    # else a new random key (set on the response).
    def rollout_key(env)
      policy = @rollout_key || Cutover.config.rollout_key
      key = policy&.call(request(env))
      return key.to_s unless key.nil? || key.to_s.empty?

      cookie = Rack::Request.new(env).cookies[KEY_COOKIE]
      return cookie if cookie.is_a?(String) && KEY.match?(cookie)

      env[NEW_KEY] ||= SecureRandom.hex(16)
    end

    def mark(env, headers)
      id = env[ENV_KEY]&.release_id
      if id && SAFE_ID.match?(id)
        headers[HEADER] = id
        if Rack::Request.new(env).cookies[RELEASE_COOKIE] != id
          Rack::Utils.set_cookie_header!(headers, RELEASE_COOKIE,
                                         { value: id, path: "/", same_site: :lax, httponly: true })
        end
      end
      key = env[NEW_KEY]
      return unless key

      Rack::Utils.set_cookie_header!(headers, KEY_COOKIE,
                                     { value: key, path: "/", max_age: KEY_MAX_AGE.to_s, same_site: :lax,
                                       httponly: true, secure: Rack::Request.new(env).ssl? })
    end

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

      policy.call(request(env)) ? true : false
    end

    def request(env)
      defined?(::ActionDispatch::Request) ? ::ActionDispatch::Request.new(env) : ::Rack::Request.new(env)
    end

    def respond(status, body)
      [status, { "Content-Type" => "text/plain; charset=utf-8", "Cache-Control" => "no-store" }, [body]]
    end
  end
end
