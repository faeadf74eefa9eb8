# frozen_string_literal: true

module Cutover
  # Which URLs a manifest from Redis may contain: a manifest is rendered into
  # <script src>, <link href> and the Link response header, so anyone able to
  # write the Redis key could otherwise run script on every page.
  #
  # Always refused: characters that are not printable ASCII (controls, CR/LF,
  # spaces, non-ASCII), quotes, angle brackets, backslashes and backticks, and
  # any scheme other than http(s) (javascript:, data:, ...). With an
  # allowlist (asset_origins), every URL must also be absolute, https:// (or
  # http:// where an http origin is listed) on a listed origin, without user
  # info: relative and protocol-relative (//host/x) URLs are refused.
  class Origins
    UNSAFE = /[^\x21-\x7e]|["'<>\\`]/.freeze
    SCHEME = /\A[a-zA-Z][a-zA-Z0-9+.-]*:/.freeze
    ABSOLUTE = %r{\A(https?)://([^/?#]*)([/?#].*)?\z}mi.freeze
    DEFAULT_PORTS = { "https" => 443, "http" => 80 }.freeze

    attr_reader :origins

    # list: origins such as "https://cdn.example.com" or
    # "http://localhost:3000"; a bare host means https. nil or empty: no
    # allowlist (only the checks that always apply).
    def initialize(list)
      @origins = Array(list).map { |o| normalize_config(o) }.uniq.freeze
      freeze
    end

    def configured?
      !@origins.empty?
    end

    # nil when every URL is acceptable, else why the first one is not.
    def reject_reason(urls)
      urls.each do |url|
        reason = url_reason(url)
        return "#{reason}: #{url.to_s.inspect[0, 120]}" if reason
      end
      nil
    end

    def url_reason(url)
      return "not a string" unless url.is_a?(String)
      return "unsafe characters in a URL" if UNSAFE.match?(url)

      absolute = ABSOLUTE.match(url)
      if absolute.nil?
        return "a URL with a scheme other than https" if SCHEME.match?(url)
        return "a protocol-relative URL" if url.start_with?("//")
        return configured? ? "a relative URL (asset_origins allows absolute URLs only)" : nil
      end
      return nil unless configured?

      origin = normalize(absolute[1], absolute[2])
      return "a URL with user info or an invalid host" unless origin
      return "an origin not in asset_origins" unless @origins.include?(origin)

      nil
    end

    private

    def normalize_config(value)
      text = value.to_s.strip.chomp("/")
      text = "https://#{text}" unless text.include?("://")
      m = %r{\A(https?)://([^/?#]+)\z}i.match(text)
      origin = m && normalize(m[1], m[2])
      raise ArgumentError, "asset_origins: #{value.inspect} is not an origin such as \"https://cdn.example.com\"" unless origin

      origin
    end

    # "https://cdn.example.com" (default port dropped, lowercase), or nil.
    def normalize(scheme, authority)
      return nil if authority.include?("@")

      m = /\A([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?\z/i.match(authority)
      return nil unless m

      scheme = scheme.downcase
      port = m[2]&.to_i
      port = nil if port == DEFAULT_PORTS[scheme]
      "#{scheme}://#{m[1].downcase}#{":#{port}" if port}"
    end
  end
end
