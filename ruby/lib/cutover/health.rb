# frozen_string_literal: true

module Cutover
  # Logs a failure once when it starts and once when it ends, however many
  # refresh attempts fail in between (never per request: lookups do not talk
  # to Redis). Kinds: :redis (the server is unreachable) and :pubsub (the
  # subscription is refused, e.g. by an ACL).
  class Health
    def initialize(logger)
      @logger = logger
      @lock = Mutex.new
      @failing = {}
    end

    def failing?(kind)
      @lock.synchronize { @failing.key?(kind) }
    end

    # Yields the first time `kind` fails (the caller logs), not again until
    # it has recovered.
    def failed(kind, error)
      first = @lock.synchronize do
        next false if @failing.key?(kind)

        @failing[kind] = error
        true
      end
      yield if first && block_given?
      first
    end

    # Yields once when `kind` recovers.
    def recovered(kind)
      was = @lock.synchronize { @failing.delete(kind) }
      yield was if was && block_given?
    end
  end
end
