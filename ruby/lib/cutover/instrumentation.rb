# frozen_string_literal: true

module Cutover
  # `refresh.cutover` (a switch) and `rejected.cutover` (a manifest refused:
  # off-origin URLs or a bad signature) through ActiveSupport::Notifications
  # when it is loaded (always under Rails); nothing otherwise.
  module Instrumentation
    EVENT = "refresh.cutover"
    REJECTED = "rejected.cutover"

    module_function

    def refresh(payload, logger)
      instrument(EVENT, payload, logger)
    end

    def rejected(payload, logger)
      instrument(REJECTED, payload, logger)
    end

    def instrument(event, payload, logger)
      return unless defined?(::ActiveSupport::Notifications)

      ::ActiveSupport::Notifications.instrument(event, payload)
    rescue StandardError => e
      # A failing subscriber must not stop the refresh that already happened.
      logger.error("cutover: a #{event} subscriber raised #{e.class}: #{e.message}")
    end
  end
end
