# frozen_string_literal: true

require "socket"
require "tmpdir"
require "fileutils"
require "net/http"
require "redis"

# Real servers for the tests, on free loopback ports, started once per run
# and stopped at exit: moto (S3) from .venv-s3 and a private redis-server
# (never the one on 6379). Servers die with the test process (setpriv
# --pdeathsig) even if it is killed.
module TestServers
  ROOT = File.expand_path("../../..", __dir__)
  OWNER = Process.pid

  module_function

  def free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  def wait_for_port(port, what, timeout: 60)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      TCPSocket.new("127.0.0.1", port).close
      return
    rescue SystemCallError
      raise "#{what} did not listen on port #{port} within #{timeout}s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
  end

  def spawn_server(*command, log:)
    prefix = system("setpriv --help >/dev/null 2>&1") ? %w[setpriv --pdeathsig KILL --] : []
    pid = Process.spawn(*prefix, *command, in: File::NULL, out: log, err: log)
    at_exit do
      if Process.pid == OWNER
        begin
          Process.kill(:KILL, pid)
          Process.wait(pid)
        rescue SystemCallError
          nil
        end
      end
    end
    pid
  end

  def tmpdir
    @tmpdir ||= Dir.mktmpdir("cutover-ruby-tests-").tap do |dir|
      at_exit { FileUtils.rm_rf(dir) if Process.pid == OWNER }
    end
  end

  def redis
    @redis ||= RedisServer.new.start
  end

  def s3_endpoint
    @s3_endpoint ||= begin
      moto = File.join(ROOT, ".venv-s3/bin/moto_server")
      raise "#{moto} is missing: run scripts/test-ruby.sh (it runs scripts/setup.sh)" unless File.executable?(moto)

      port = free_port
      spawn_server(moto, "-H", "127.0.0.1", "-p", port.to_s, log: File.join(tmpdir, "moto.log"))
      wait_for_port(port, "moto_server")
      "http://127.0.0.1:#{port}"
    end
  end

  def cutover_bin
    @cutover_bin ||= begin
      bin = File.expand_path(ENV.fetch("CUTOVER_BIN", "target/debug/cutover"), ROOT)
      raise "no cutover binary at #{bin}: build it (cargo build --locked) or set CUTOVER_BIN" unless File.executable?(bin)

      bin
    end
  end
end

# One redis-server process we own, which a test may stop, kill and restart
# on the same port.
class RedisServer
  attr_reader :port, :pid

  def initialize(port: TestServers.free_port, args: [])
    @port = port
    @args = args
    @dir = File.join(TestServers.tmpdir, "redis-#{port}")
    FileUtils.mkdir_p(@dir)
  end

  def url(password: nil)
    password ? "redis://:#{password}@127.0.0.1:#{port}" : "redis://127.0.0.1:#{port}"
  end

  def start
    @pid = TestServers.spawn_server(
      "redis-server", "--port", port.to_s, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--dir", @dir, *@args, log: File.join(@dir, "redis.log")
    )
    TestServers.wait_for_port(port, "redis-server")
    self
  end

  # SIGSTOP: the server keeps its sockets but answers nothing.
  def pause
    Process.kill(:STOP, pid)
  end

  def kill
    Process.kill(:KILL, pid)
    Process.wait(pid)
  end

  # An admin connection (default user).
  def admin(password: nil)
    Redis.new(url: url(password: password), timeout: 5)
  end
end

# The TCP sockets a process holds to a port (its open descriptors, matched
# with the kernel's socket table): inode numbers, the same in a parent and a
# child that inherited the descriptor.
module RedisSockets
  module_function

  def of(pid, port)
    inodes = Dir.glob("/proc/#{pid}/fd/*").filter_map do |fd|
      File.readlink(fd)[/\Asocket:\[(\d+)\]\z/, 1]
    rescue SystemCallError
      nil
    end
    connected = File.readlines("/proc/net/tcp").drop(1).filter_map do |line|
      fields = line.split
      remote_port = fields[2].split(":").last.to_i(16)
      fields[9] if remote_port == port && fields[3] == "01" # ESTABLISHED
    end
    (inodes & connected).sort
  end

  # The inodes of the loopback TCP sockets bound to these local ports.
  def by_local_port(ports)
    File.readlines("/proc/net/tcp").drop(1).filter_map do |line|
      fields = line.split
      fields[9] if ports.include?(fields[1].split(":").last.to_i(16)) && fields[3] == "01"
    end.sort
  end
end
