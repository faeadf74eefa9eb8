# frozen_string_literal: true

module Cutover
  # `refresh.cutover` through ActiveSupport::Notifications when it is loaded
  # (always under Rails); nothing otherwise.
  module Instrumentation
    EVENT = "refresh.cutover"

    module_function

    def refresh(payload, logger)
      return unless defined?(::ActiveSupport::Notifications)

      ::ActiveSupport::Notifications.instrument(EVENT, payload)
    rescue StandardError => e
      # A failing subscriber must not stop the refresh that already happened.
      logger.error("cutover: a #{EVENT} subscriber raised #{e.class}: #{e.message}")
    end
  end
end
