# frozen_string_literal: true

require "net/http"
require "openssl"
require "time"

# Plain S3 requests to the test server, signed with AWS Signature V4 and the
# test credentials (the AWS SDK is not available as a Debian Ruby package).
module S3
  ACCESS_KEY = "test"
  SECRET_KEY = "test"
  REGION = "us-east-1"
  EMPTY_SHA256 = OpenSSL::Digest::SHA256.hexdigest("")

  module_function

  # Path-style: "/bucket" or "/bucket/key". Returns the Net::HTTPResponse.
  def request(method, endpoint, path)
    uri = URI("#{endpoint}#{path}")
    request = Net::HTTP.const_get(method.capitalize).new(uri)
    if request.request_body_permitted?
      request.body = ""
      request["content-type"] = "application/octet-stream"
    end
    sign(request, uri)
    Net::HTTP.start(uri.host, uri.port) { |http| http.request(request) }
  end

  def sign(request, uri, now = Time.now.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = now.strftime("%Y%m%d")
    host = "#{uri.host}:#{uri.port}"
    request["host"] = host
    request["x-amz-date"] = amz_date
    request["x-amz-content-sha256"] = EMPTY_SHA256
    signed_headers = "host;x-amz-content-sha256;x-amz-date"
    canonical = [
      request.method, uri.path, uri.query.to_s,
      "host:#{host}\nx-amz-content-sha256:#{EMPTY_SHA256}\nx-amz-date:#{amz_date}\n",
      signed_headers, EMPTY_SHA256
    ].join("\n")
    scope = "#{date}/#{REGION}/s3/aws4_request"
    to_sign = ["AWS4-HMAC-SHA256", amz_date, scope, OpenSSL::Digest::SHA256.hexdigest(canonical)].join("\n")
    key = [date, REGION, "s3", "aws4_request"].reduce("AWS4#{SECRET_KEY}") { |k, part| hmac(k, part) }
    signature = OpenSSL::HMAC.hexdigest("SHA256", key, to_sign)
    request["authorization"] = "AWS4-HMAC-SHA256 Credential=#{ACCESS_KEY}/#{scope}, " \
                               "SignedHeaders=#{signed_headers}, Signature=#{signature}"
  end

  def hmac(key, data)
    OpenSSL::HMAC.digest("SHA256", key, data)
  end
end
