# frozen_string_literal: true

require "minitest/autorun"
require "json"
require "logger"
require "stringio"
require "cutover"
require "support/servers"
require "support/world"

module CutoverTestHelpers
  FIXTURE_A_MANIFEST = File.join(World::FIXTURES, "shakapacker/manifest.json")

  def setup
    super
    @readers = []
  end

  def teardown
    @readers.each(&:close)
    super
  end

  # A reader that is closed after the test, logging to a buffer (#log).
  def reader(world = nil, **options)
    @log ||= StringIO.new
    defaults = { logger: Logger.new(@log) }
    defaults.update(app: world.app, redis_url: world.redis_url) if world
    options = defaults.merge(options)
    Cutover::Reader.new(**options).tap { |r| @readers << r }
  end

  def log_lines
    @log ? @log.string.lines : []
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # The wall clock in ms since the epoch, as the fleet reports use it.
  def now_ms
    Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)
  end

  # Waits for a condition (checked every few ms) and fails at the deadline.
  # The short sleep paces the check; it never stands in for the condition.
  def wait_until(what, timeout: 2.0)
    started = monotonic
    loop do
      value = yield
      return value if value
      flunk "#{what}: not within #{timeout}s" if monotonic - started > timeout

      sleep 0.005
    end
  end

  def wait_for_subscription(reader)
    wait_until("the reader subscribed", timeout: 5) { reader.status[:subscribed] }
  end
end
