# frozen_string_literal: true

require "redis"

module Cutover
  # The background half of a reader, in one process: a subscriber thread
  # (refresh on every activation message, full re-read after every
  # (re)subscribe) and a poll thread (GET current every interval; the
  # manifest only when it changed). Either one alone converges; together a
  # switch lands in milliseconds, or within one interval when pub/sub is lost.
  # The poll thread also sends the process's fleet reports (Fleet), between
  # polls: off the request path, on the connection it polls with.
  class Refresher
    # A subscription silent this long is renewed, so a half-open connection
    # (peer gone without a FIN) cannot keep the subscriber deaf for ever.
    IDLE_RESUBSCRIBE = 60
    MAX_RETRY_DELAY = 1.0
    CONNECTION_ERRORS = [Redis::BaseConnectionError, SystemCallError, IOError].freeze

    # refresh: called as refresh.call(source_label, source, full: bool).
    # describe: what the process serves, for log lines.
    # immediate: check at once (a forked child), then every interval.
    # fleet: this process's Fleet, or nil when reporting is off.
    def initialize(refresh:, describe:, source:, interval:, health:, logger:, masked_url:, immediate: false,
                   fleet: nil)
      @refresh = refresh
      @describe = describe
      @source = source
      @interval = interval
      @health = health
      @logger = logger
      @masked_url = masked_url
      @lock = Mutex.new
      @wakeup = ConditionVariable.new
      # The poll thread's own wakeup, and whether it was woken while it was
      # not waiting (a report due now is then not missed).
      @poll_wakeup = ConditionVariable.new
      @woken = false
      @stopped = false
      @subscribed = false
      @polls = 0
      @immediate = immediate
      @fleet = fleet
      @fleet&.on_due { wake }
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
        @poll_wakeup.broadcast
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

    # Wakes the poll thread now: a fleet report is due.
    def wake
      @lock.synchronize do
        @woken = true
        @poll_wakeup.signal
      end
    end

    # Polls every interval and, in between, sends the fleet report whenever
    # it is due (every heartbeat, and at once after a switch or refusal).
    def poll_loop
      if @immediate
        attempt(:refresh) { @refresh.call(:fork, @source, full: true) }
        @polls += 1
      end
      next_poll = monotonic + @interval
      until stopped?
        report if @fleet&.due_in&.zero?
        wait = [next_poll - monotonic, @fleet&.due_in].compact.min
        @lock.synchronize do
          @poll_wakeup.wait(@lock, wait) unless @stopped || @woken || wait <= 0
          @woken = false
        end
        break if stopped?
        next if monotonic < next_poll

        attempt(:refresh) { @refresh.call(:poll, @source) }
        @polls += 1
        next_poll = monotonic + @interval
      end
    end

    # One fleet report. A failure never reaches the app: an unreachable
    # Redis is the outage the refreshes log (once); anything else (NOPERM
    # from a read-only user) is logged once by the Fleet, and the next
    # heartbeat tries again.
    def report
      @fleet.report(@source)
      @health.recovered(:redis) { @logger.info("cutover: Redis reachable again at #{@masked_url}") }
    rescue *CONNECTION_ERRORS => e
      connection_failed(e)
    rescue StandardError => e
      @fleet.failed(e)
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
