# frozen_string_literal: true

require "base64"
require "digest"
require "json"
require "openssl"

module Cutover
  # Checks that a release was signed by a configured key (the signature
  # contract in docs/redis.md, "Signed releases"): Ed25519 over
  #
  #   "cutover-release-v1\n" + RELEASE_ID + "\n" + sha256_hex(manifest bytes) + "\n"
  #
  # with the signature stored as compact JSON in cutover:{APP}:signature.
  # Ruby's standard openssl only.
  class Verifier
    PREFIX = "cutover-release-v1\n"

    Key = Struct.new(:pkey, :fingerprint)

    # The first 16 hex characters of the SHA-256 of the key's DER
    # SubjectPublicKeyInfo (what `cutover keygen` and the CLI print).
    def self.fingerprint(pkey)
      Digest::SHA256.hexdigest(pkey.public_to_der)[0, 16]
    end

    def self.message(release, manifest_sha256)
      "#{PREFIX}#{release}\n#{manifest_sha256}\n".b
    end

    attr_reader :fingerprints

    # pems: public keys (PEM strings, or paths of PEM files). Raises
    # ArgumentError for a key that is not an Ed25519 public key.
    def initialize(pems)
      @keys = Array(pems).map { |pem| read_key(pem) }.freeze
      raise ArgumentError, "verify_keys: is empty" if @keys.empty?

      @fingerprints = @keys.map(&:fingerprint).freeze
      freeze
    end

    # nil when the signature is valid for this release and these manifest
    # bytes, else the reason it is not (one short phrase).
    def reject_reason(release, manifest, signature)
      return "unsigned (no #{Keys::SIGNATURE_SUFFIX} key)" if signature.nil? || signature.empty?

      data = begin
        JSON.parse(signature)
      rescue JSON::ParserError
        nil
      end
      return "the signature is not JSON" unless data.is_a?(Hash)
      return "unsupported signature (v #{data['v'].inspect}, alg #{data['alg'].inspect})" unless data["v"] == 1 && data["alg"] == "ed25519"
      return "the signature is for release #{data['release'].inspect}" unless data["release"] == release

      sha = Digest::SHA256.hexdigest(manifest.b)
      return "the manifest's SHA-256 is not the one signed" unless data["manifest_sha256"] == sha

      sig = decode(data["sig"])
      return "the signature value is not base64 of 64 bytes" unless sig

      message = self.class.message(release, sha)
      fingerprint = data["key"]
      named = @keys.select { |k| k.fingerprint == fingerprint }
      candidates = named.empty? ? @keys : named
      return nil if candidates.any? { |k| verify(k.pkey, sig, message) }

      named.empty? ? "signed by key #{fingerprint.to_s[0, 16].inspect}, which is not configured" : "the signature does not verify with key #{fingerprint}"
    end

    private

    def read_key(pem)
      text = pem.to_s
      text = File.read(text) if !text.include?("-----BEGIN") && File.file?(text)
      pkey = OpenSSL::PKey.read(text)
      raise ArgumentError, "verify_keys: a #{pkey.oid} key is not Ed25519" unless pkey.oid == "ED25519"
      if text.include?("PRIVATE KEY")
        raise ArgumentError, "verify_keys: give the public key (-----BEGIN PUBLIC KEY-----), not the private one"
      end

      Key.new(OpenSSL::PKey.read(pkey.public_to_pem), self.class.fingerprint(pkey)).freeze
    rescue OpenSSL::PKey::PKeyError => e
      raise ArgumentError, "verify_keys: not a PEM public key (#{e.message})"
    end

    def decode(value)
      return nil unless value.is_a?(String)

      raw = Base64.strict_decode64(value)
      raw.bytesize == 64 ? raw : nil
    rescue ArgumentError
      nil
    end

    def verify(pkey, sig, message)
      pkey.verify(nil, sig, message)
    rescue OpenSSL::PKey::PKeyError
      false
    end
  end
end
