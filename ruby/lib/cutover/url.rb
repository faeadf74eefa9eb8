# frozen_string_literal: true

require "uri"

module Cutover
  # Redis URLs for messages: the password (or a lone user part, which Redis
  # treats as a password) is replaced by ***, as the cutover CLI does.
  module URL
    module_function

    def mask(url)
      return "(redis gem default: redis://127.0.0.1:6379)" if url.nil? || url.to_s.empty?

      uri = URI.parse(url.to_s)
      if uri.password
        uri.password = "***"
      elsif uri.user && !uri.user.empty? && uri.scheme.to_s.start_with?("redis")
        uri.user = "***"
      end
      uri.to_s
    rescue URI::Error
      "<unparseable URL>"
    end
  end
end
