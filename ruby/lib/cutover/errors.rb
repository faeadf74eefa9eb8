# frozen_string_literal: true

module Cutover
  # Base class of every error this library raises.
  class Error < StandardError; end

  # The live manifest cannot be read: Redis is unreachable or has no live
  # release, and no fallback manifest is configured.
  class Unavailable < Error; end

  # A manifest has no such entry (or entrypoint).
  class MissingEntry < Error
    attr_reader :entry, :release_id

    def initialize(entry, release_id, where)
      @entry = entry
      @release_id = release_id
      super("no entry #{entry.inspect} in the manifest of #{where}")
    end
  end

  # A preview asked for a release that does not exist (or a prefix that
  # matches several).
  class UnknownRelease < Error; end

  # A manifest whose shape no format class recognises.
  class UnknownFormat < Error; end
end
