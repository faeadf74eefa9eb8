# frozen_string_literal: true

require_relative "lib/cutover/version"

Gem::Specification.new do |spec|
  spec.name = "cutover"
  spec.version = Cutover::VERSION
  spec.summary = "Serve the front-end release that `cutover deploy` made live, from Redis, in every Rails worker"
  spec.description = <<~TEXT
    The Rails side of cutover: reads the live manifest that `cutover deploy` switches
    atomically in Redis, serves lookups from memory, follows activations through pub/sub
    and polling, survives fork and Redis outages, and renders script and stylesheet tags.
  TEXT
  spec.authors = ["cutover maintainers"]
  spec.license = "MIT"
  spec.required_ruby_version = ">= 2.7"

  spec.files = Dir[File.join(__dir__, "lib/**/*.rb")].map { |f| f.delete_prefix("#{__dir__}/") } + ["README.md"]
  spec.require_paths = ["lib"]

  # Tested with redis 4.8 (Debian bookworm's ruby-redis). Rails is optional.
  spec.add_runtime_dependency "redis", ">= 4.5", "< 6"
  spec.metadata["rubygems_mfa_required"] = "true"
end
