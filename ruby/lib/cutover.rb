# frozen_string_literal: true

require "cutover/version"
require "cutover/errors"
require "cutover/reader"
require "cutover/configuration"

# Reads the release that `cutover deploy` made live (docs/redis.md, "Redis
# contract") and serves its manifest from memory. See ruby/README.md.
module Cutover
  autoload :Middleware, "cutover/middleware"
  autoload :Helpers, "cutover/helpers"
end

# Under Rails (required after it, as Bundler.require does). Required before
# Rails, require "cutover/railtie" once Rails is loaded.
require "cutover/railtie" if defined?(Rails::Railtie)
