# frozen_string_literal: true

require "redis"

module Cutover
  # The background half of a reader, in one process: a subscriber thread
  # (refresh on every activation message, full re-read after every
  # (re)subscribe) and a poll thread (GET current every interval; the
  # manifest only when it changed). Either one alone converges; together a
  # switch lands in milliseconds, or within one interval when pub/sub is lost.
  class Refresher
    # A subscription silent this long is renewed, so a half-open connection
    # (peer gone without a FIN) cannot keep the subscriber deaf for ever.
    IDLE_RESUBSCRIBE = 60
    MAX_RETRY_DELAY = 1.0
    CONNECTION_ERRORS = [Redis::BaseConnectionError, SystemCallError, IOError].freeze

    # refresh: called as refresh.call(source_label, source, full: bool).
    # describe: what the process serves, for log lines.
    # immediate: check at once (a forked child), then every interval.
    def initialize(refresh:, describe:, source:, interval:, health:, logger:, masked_url:, immediate: false)
      @refresh = refresh
      @describe = describe
      @source = source
      @interval = interval
      @health = health
      @logger = logger
      @masked_url = masked_url
      @lock = Mutex.new
      @wakeup = ConditionVariable.new
      @stopped = false
      @subscribed = false
      @polls = 0
      @immediate = immediate
    end

    attr_reader :polls

    def subscribed?
      @subscribed
    end

    def start
      @poller = spawn("cutover-poll") { poll_loop }
      @subscriber = spawn("cutover-subscribe") { subscribe_loop }
      self
    end

    def stop
      @lock.synchronize do
        @stopped = true
        @wakeup.broadcast
      end
      # The subscriber blocks in a socket read: only kill interrupts it.
      @subscriber&.kill
      @poller&.join(2) || @poller&.kill
      @subscriber&.join(2)
      @source.close
    end

    private

    def spawn(name)
      Thread.new do
        Thread.current.name = name
        Thread.current.report_on_exception = false
        yield
      end
    end

    def stopped?
      @stopped
    end

    def pause(seconds)
      @lock.synchronize { @wakeup.wait(@lock, seconds) unless @stopped }
    end

    def poll_loop
      if @immediate
        attempt(:refresh) { @refresh.call(:fork, @source, full: true) }
        @polls += 1
      end
      until stopped?
        pause(@interval)
        break if stopped?

        attempt(:refresh) { @refresh.call(:poll, @source) }
        @polls += 1
      end
    end

    def subscribe_loop
      delay = 0.0
      renewal = false
      subscribed_at = nil
      until stopped?
        subscribed_once = false
        begin
          @source.subscribe(IDLE_RESUBSCRIBE) do |on|
            on.subscribe do
              subscribed_once = true
              subscribed_at = monotonic
              @subscribed = true
              @health.recovered(:pubsub) { @logger.info("cutover: subscribed to #{@source.keys.channel} again") }
              # A message published while we were not subscribed is lost:
              # re-read. After a mere idle renewal, checking the id suffices.
              attempt(:refresh) { @refresh.call(:reconnect, @source, full: !renewal) }
            end
            on.message { attempt(:refresh) { @refresh.call(:pubsub, @source, full: true) } }
          end
        rescue *CONNECTION_ERRORS => e
          renewal = subscribed_once && e.is_a?(Redis::TimeoutError)
          if renewal
            next # silent for IDLE_RESUBSCRIBE seconds: renew at once
          elsif subscribed_once
            # Dropped (e.g. CLIENT KILL): renew almost at once, but back off
            # if subscriptions keep dropping as soon as they are made.
            delay = 0.0 if monotonic - subscribed_at > MAX_RETRY_DELAY
          else
            connection_failed(e) # failing to (re)subscribe is an outage, logged once
          end
          pause(delay = next_delay(delay))
        rescue StandardError => e
          renewal = false
          @health.failed(:pubsub, e) do
            @logger.warn("cutover: cannot subscribe to #{@source.keys.channel} (#{e.class}: #{e.message}); " \
                         "relying on polling every #{@interval}s")
          end
          pause(delay = next_delay(delay))
        ensure
          @subscribed = false
        end
      end
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def next_delay(delay)
      [[delay * 2, 0.05].max, MAX_RETRY_DELAY].min
    end

    # Runs one refresh; logs the first failure of an outage and its end.
    def attempt(kind)
      yield
      @health.recovered(:redis) { @logger.info("cutover: Redis reachable again at #{@masked_url}") }
      @health.recovered(kind) { @logger.info("cutover: refreshing works again") }
    rescue *CONNECTION_ERRORS => e
      connection_failed(e)
    rescue StandardError => e
      @health.failed(kind, e) do
        @logger.error("cutover: refreshing the manifest failed (#{e.class}: #{e.message}); " \
                      "serving #{@describe.call}")
      end
    end

    def connection_failed(error)
      @health.failed(:redis, error) do
        @logger.warn("cutover: Redis unreachable at #{@masked_url} (#{error.class}: #{error.message}); " \
                     "serving #{@describe.call} until it is back")
      end
    end
  end
end
