# frozen_string_literal: true

require "base64"
require "digest"
require "json"
require "openssl"
require "time"

# Rollouts and retired releases written to Redis by hand, as the CLI's
# scripts write them (docs/redis.md, "Rollouts and skew protection"): the
# reader's unit tests take the contract as the interface. The contract
# scenarios drive the real `cutover rollout` instead.
module RolloutHelpers
  VECTORS = JSON.parse(File.read(File.join(TestServers::ROOT, "tests/contract/rollout.json")))
  SALT = VECTORS.dig("population", "salt")
  SIGNATURES = JSON.parse(File.read(File.join(TestServers::ROOT, "tests/contract/signatures.json")))
  PRIVATE = SIGNATURES["private_keys"].transform_values { |pem| OpenSSL::PKey.read(pem) }
  PUBLIC = PRIVATE.transform_values(&:public_to_pem)

  def admin
    @admin ||= TestServers.redis.admin
  end

  # The signature value the CLI writes (tests/contract/signatures.json).
  def sign(key, release, manifest)
    pkey = PRIVATE.fetch(key)
    sha = Digest::SHA256.hexdigest(manifest.b)
    sig = pkey.sign(nil, Cutover::Verifier.message(release, sha))
    JSON.generate("v" => 1, "alg" => "ed25519", "key" => Cutover::Verifier.fingerprint(pkey),
                  "release" => release, "manifest_sha256" => sha, "sig" => Base64.strict_encode64(sig))
  end

  # Deploys fixture builds A then B (B is live); returns {a: [id, manifest
  # bytes], b: [...]}, the exact bytes `cutover deploy` wrote.
  def deployed(w)
    %i[a b].to_h do |build|
      w.deploy(build)
      [build, admin.mget(w.key("current"), w.key("manifest"))]
    end
  end

  def canary_json(release, percent, salt: SALT)
    JSON.generate("v" => 1, "release" => release, "percent" => percent, "salt" => salt,
                  "since" => "2026-12-07T10:00:00Z", "at" => Time.now.utc.iso8601(3), "by" => "test",
                  "message" => nil)
  end

  # The canary keys, written in one transaction (as the rollout script
  # does), then the event unless publish: false (the poll must find it).
  def write_canary(w, json, manifest, signature = nil, publish: true)
    admin.multi do |t|
      t.set(w.key("canary"), json)
      manifest ? t.set(w.key("canary_manifest"), manifest) : t.del(w.key("canary_manifest"))
      signature ? t.set(w.key("canary_signature"), signature) : t.del(w.key("canary_signature"))
    end
    admin.publish(w.key("events"), JSON.generate("action" => "rollout")) if publish
  end

  # `cutover rollout abort`: the canary keys gone, the canary retired.
  def abort_canary(w, release, publish: true)
    admin.multi do |t|
      t.del(w.key("canary"), w.key("canary_manifest"), w.key("canary_signature"))
      t.zadd(w.key("retired"), now_ms, release)
    end
    admin.publish(w.key("events"), JSON.generate("action" => "rollout_abort")) if publish
  end

  # `cutover rollout complete`: the canary made live, the live one retired.
  def complete_canary(w, release, manifest, signature = nil, publish: true)
    previous = admin.get(w.key("current"))
    admin.multi do |t|
      t.set(w.key("current"), release)
      t.set(w.key("manifest"), manifest)
      signature ? t.set(w.key("signature"), signature) : t.del(w.key("signature"))
      t.del(w.key("canary"), w.key("canary_manifest"), w.key("canary_signature"))
      t.zadd(w.key("retired"), now_ms, previous)
    end
    admin.publish(w.key("events"), JSON.generate("action" => "rollout_complete")) if publish
  end

  # Keys that fall on either side of a threshold under the vectors' salt:
  # [a key below it (canary), a key at or above it (live)].
  def keys_around(threshold, salt: SALT)
    keys = (0..).lazy.map { |i| "user-#{i}" }
    [keys.find { |k| Cutover::Rollout.bucket(salt, k) < threshold },
     keys.find { |k| Cutover::Rollout.bucket(salt, k) >= threshold }]
  end

  # How many times Redis ran `command` since it started (INFO commandstats).
  def command_calls(command)
    admin.info("commandstats").dig("#{command}", "calls").to_i
  end

  Worker = Struct.new(:pid, :reports, :stop, :buffer) do
    def read
      loop { buffer << reports.read_nonblock(65_536) }
    rescue IO::WaitReadable, EOFError
      buffer.lines.select { |l| l.end_with?("\n") }.map { |l| JSON.parse(l) }
    end
  end

  # A worker forked from a preloaded parent (as ContractTest#fork_worker):
  # it reports, over a pipe, what it serves whenever that changes: the live
  # release, the canary, and the release each of `keys` is assigned.
  def fork_rollout_worker(reader, keys)
    reports_r, reports_w = IO.pipe
    stop_r, stop_w = IO.pipe
    pid = fork do
      reports_r.close
      stop_w.close
      begin
        last = nil
        until IO.select([stop_r], nil, nil, 0.01)
          now = [reader.release_id, reader.canary_release_id, keys.map { |k| reader.snapshot(key: k).release_id }]
          next if now == last

          reports_w.puts(JSON.generate("pid" => Process.pid, "live" => now[0], "canary" => now[1], "keys" => now[2]))
          reports_w.flush
          last = now
        end
        exit!(0)
      rescue Exception => e # rubocop:disable Lint/RescueException
        reports_w.puts(JSON.generate("error" => "#{e.class}: #{e.message}"))
        exit!(1)
      end
    end
    reports_w.close
    stop_r.close
    Worker.new(pid, reports_r, stop_w, +"")
  end

  # Every process (the reader itself, or a forked worker's last report)
  # serves `live` as the live release, `canary` as the canary, and to each
  # of `keys` the release in `assigned`.
  def all_serve?(processes, keys, live, canary, assigned)
    want = { "live" => live, "canary" => canary, "keys" => assigned }
    processes.all? do |k|
      if k.is_a?(Worker)
        k.read.last&.slice("live", "canary", "keys") == want
      else
        [k.release_id, k.canary_release_id, keys.map { |x| k.snapshot(key: x).release_id }] == want.values
      end
    end
  end

  # Stops the workers and checks each exited cleanly.
  def stop_workers(workers)
    # Each worker also holds the stop pipes of the workers forked before it:
    # close them all before waiting for any.
    workers.each { |k| k.stop.close }
    workers.each do |k|
      _, status = Process.wait2(k.pid)
      assert status.success?, "worker #{k.pid} failed: #{k.read.last}"
    end
  end
end
