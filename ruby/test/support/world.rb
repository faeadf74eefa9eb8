# frozen_string_literal: true

require "json"
require "open3"
require "support/s3"
require "tmpdir"

# One test's world: its own app name and bucket, and the real cutover binary
# pointed at it (moto for S3, a private Redis). Keys of different worlds
# never collide.
class World
  FIXTURES = File.join(TestServers::ROOT, "tests/fixtures/builds")
  BUILDS = { a: "shakapacker", b: "flat", vite: "vite", propshaft: "propshaft", sprockets: "sprockets" }.freeze
  # The prefix each build is made to be served under (CUTOVER_PREFIX).
  PREFIXES = { vite: "vite", propshaft: "assets", sprockets: "assets" }.freeze
  CDN = "https://cdn.example.com"
  @counter = 0

  class << self
    attr_accessor :counter
  end

  attr_reader :app, :bucket, :redis_url

  def initialize(name, redis_url: TestServers.redis.url)
    World.counter += 1
    @app = "#{name}-#{Process.pid}-#{World.counter}"
    @bucket = "t-#{@app}"[0, 63].downcase.tr("_", "-").sub(/-+\z/, "")
    @redis_url = redis_url
    @work = Dir.mktmpdir("world-", TestServers.tmpdir)
    create_bucket
  end

  def key(name)
    "cutover:{#{app}}:#{name}"
  end

  # Runs the binary; returns [status, stdout, stderr]. The environment is
  # cleaned of the caller's CUTOVER_*, AWS_*, REDIS_URL and CI variables.
  def cutover(*args, env: {})
    clean = ENV.keys.grep(/\A(CUTOVER_|AWS_|REDIS_URL\z|CIRCLE|GITHUB)/).to_h { |k| [k, nil] }
    ours = {
      "CUTOVER_APP" => app, "CUTOVER_BUCKET" => bucket, "CUTOVER_CDN_URL" => CDN,
      "CUTOVER_S3_ENDPOINT" => TestServers.s3_endpoint, "REDIS_URL" => redis_url,
      "AWS_ACCESS_KEY_ID" => "test", "AWS_SECRET_ACCESS_KEY" => "test", "AWS_REGION" => "us-east-1",
      "AWS_EC2_METADATA_DISABLED" => "true", "CI" => "true", "CUTOVER_LOCK_WAIT" => "30"
    }
    out, err, status = Open3.capture3(clean.merge(ours).merge(env), TestServers.cutover_bin, *args,
                                      chdir: @work, stdin_data: "")
    [status, out, err]
  end

  def cutover!(*args, env: {})
    status, out, err = cutover(*args, "--json", env: env)
    raise "cutover #{args.join(' ')} exited #{status.exitstatus}:\n#{err}\n#{out}" unless status.success?

    JSON.parse(out)
  end

  # Deploys fixture build :a (Shakapacker), :b (flat), :vite, :propshaft or
  # :sprockets under its prefix; returns the release id.
  def deploy(build)
    env = { "CUTOVER_PREFIX" => PREFIXES.fetch(build, "packs") }
    cutover!("deploy", File.join(FIXTURES, BUILDS.fetch(build)), env: env)["release"].fetch("id")
  end

  def rollback
    cutover!("rollback")
  end

  def activate(id)
    cutover!("activate", id)
  end

  # The object's bytes in S3 (a signed path-style GET), or nil.
  def s3_object(key)
    response = S3.request("GET", TestServers.s3_endpoint, "/#{bucket}/#{key}")
    response.is_a?(Net::HTTPSuccess) ? response.body.b : nil
  end

  def self.fixture_file(build, path_in_build)
    File.binread(File.join(FIXTURES, BUILDS.fetch(build), path_in_build))
  end

  private

  def create_bucket
    response = S3.request("PUT", TestServers.s3_endpoint, "/#{bucket}")
    raise "cannot create bucket #{bucket}: #{response.code} #{response.body}" unless response.is_a?(Net::HTTPSuccess)
  end
end
