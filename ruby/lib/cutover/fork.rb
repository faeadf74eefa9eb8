# frozen_string_literal: true

module Cutover
  # Restarts every open reader in a forked child, right after fork: a worker
  # then refreshes (and closes the connections it inherited) before its
  # first request instead of on it. Hooked once, on the first reader:
  # ActiveSupport::ForkTracker.after_fork when ActiveSupport is loaded (Rails
  # 6.1 hooks Kernel#fork and Process.fork), otherwise Ruby 3.1's
  # Process._fork, which every fork goes through. Without either (older Ruby
  # without ActiveSupport) a reader restarts on its first lookup in the child.
  module ForkHook
    @readers = ObjectSpace::WeakMap.new
    @lock = Mutex.new
    @installed = nil

    class << self
      # :fork_tracker, :process_fork or nil: how children are noticed.
      attr_reader :installed

      def register(reader)
        @lock.synchronize do
          install unless @installed
          @readers[reader] = true
        end
      end

      def unregister(reader)
        @lock.synchronize { @readers.delete(reader) if @readers.respond_to?(:delete) }
      end

      # In the child. Never raises: a failing reader must not break the fork.
      def after_fork
        @lock = Mutex.new # a parent thread may have held it at the fork
        @readers.keys.each do |reader|
          reader.__send__(:after_fork)
        rescue StandardError => e
          warn "cutover: restarting a reader after fork failed (#{e.class}: #{e.message})"
        end
      end

      private

      def install
        if defined?(::ActiveSupport::ForkTracker) && ::ActiveSupport::ForkTracker.respond_to?(:after_fork)
          ::ActiveSupport::ForkTracker.after_fork { ForkHook.after_fork }
          @installed = :fork_tracker
        elsif ::Process.respond_to?(:_fork)
          ::Process.singleton_class.prepend(ProcessFork)
          @installed = :process_fork
        else
          @installed = :none
        end
      end
    end

    # Ruby >= 3.1: Kernel#fork, Process.fork and IO.popen("-") call
    # Process._fork; it returns 0 in the child.
    module ProcessFork
      def _fork
        pid = super
        ForkHook.after_fork if pid.zero?
        pid
      end
    end
  end
end
