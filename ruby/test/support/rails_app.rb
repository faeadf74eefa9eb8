# frozen_string_literal: true

require "tmpdir"
require "logger"
require "stringio"
require "rails"
require "action_controller/railtie"
require "action_view/railtie"
require "cutover"
require "cutover/railtie" # test_helper required cutover before Rails

# A minimal Rails 6.1 application that renders the helpers. Configured from
# CutoverRailsApp.boot! (in process) or from the environment (a subprocess
# booting it, see rails_test.rb).
class CutoverRailsApp < Rails::Application
  PREVIEW_HEADER = "X-Cutover-Preview"
  # The rollout key the app gives cutover: this header's value (a user id),
  # or nil for the cutover_key cookie.
  USER_HEADER = "HTTP_X_TEST_USER"
  PREVIEW_TOKEN = "let-me-see"
  LOG = StringIO.new

  config.root = Dir.mktmpdir("cutover-rails-app-")
  config.eager_load = false
  config.secret_key_base = "0" * 64
  config.logger = Logger.new(LOG)
  config.log_level = :info
  config.hosts.clear
  config.action_dispatch.show_exceptions = false
  config.action_controller.allow_forgery_protection = false
  config.active_support.deprecation = :silence
  config.cutover.app = ENV["CUTOVER_TEST_APP"]
  config.cutover.redis_url = ENV["CUTOVER_TEST_REDIS_URL"]
  config.cutover.fallback_manifest = ENV["CUTOVER_TEST_FALLBACK"]
  config.cutover.poll_interval = Float(ENV.fetch("CUTOVER_TEST_POLL_INTERVAL", "1.0"))
  config.cutover.asset_origins = ENV["CUTOVER_TEST_ASSET_ORIGINS"]&.split(",")
  config.cutover.report_interval = Float(ENV["CUTOVER_TEST_REPORT_INTERVAL"]) if ENV["CUTOVER_TEST_REPORT_INTERVAL"]
  # Rails 6.1's Link preload header from javascript_include_tag and
  # stylesheet_link_tag (on in apps made with load_defaults 6.1).
  config.action_view.preload_links_header = true
  config.cutover.preview = ->(request) { request.get_header("HTTP_X_CUTOVER_PREVIEW") == PREVIEW_TOKEN }
  config.cutover.rollout_key = ->(request) { request.get_header(USER_HEADER) }

  PAGE = <<~ERB
    <!DOCTYPE html>
    <html><head>
    <%= cutover_stylesheet_tags "application" %>
    <%= cutover_javascript_tags "application" %>
    <%= cutover_release_meta_tag %>
    </head><body><img src="<%= cutover_asset_url "static/logo.svg" %>" alt=""></body></html>
  ERB

  # The page, with CutoverRailsApp.midway called between its stylesheets and
  # the rest (a test changes the rollout there).
  MIDWAY = <<~ERB
    <%= cutover_stylesheet_tags "application" %>
    <% CutoverRailsApp.midway&.call %>
    <%= cutover_javascript_tags "application" %>
    <img src="<%= cutover_asset_url "static/logo.svg" %>" alt="">
    <%= cutover_release_meta_tag %>
  ERB

  class << self
    attr_accessor :midway
  end

  # Any format's tags: the application entrypoint and one asset by name.
  TAGS = <<~ERB
    <%= cutover_stylesheet_tags "application" %>
    <%= cutover_javascript_tags "application" %>
    <img src="<%= cutover_asset_url params[:asset] %>" alt="">
  ERB

  def self.boot!(app:, redis_url:)
    config.cutover.app = app
    config.cutover.redis_url = redis_url
    initialize!
    routes.draw do
      root "pages#show"
      get "missing" => "pages#missing"
      get "tags" => "pages#tags"
      get "midway" => "pages#midway"
      get "plain" => "pages#plain"
    end
  end
end

class PagesController < ActionController::Base
  class << self
    attr_accessor :served
  end
  self.served = 0

  def show
    render inline: CutoverRailsApp::PAGE
  end

  # The page, with which process rendered it and how many pages that
  # process has rendered (1: its first); ?hold= keeps the worker busy after
  # rendering, so that concurrent requests reach other workers.
  def probe
    PagesController.served += 1
    response.headers["X-Pid"] = Process.pid.to_s
    response.headers["X-Served"] = PagesController.served.to_s
    render inline: CutoverRailsApp::PAGE
    sleep params[:hold].to_f if params[:hold]
  end

  def tags
    render inline: CutoverRailsApp::TAGS
  end

  def midway
    render inline: CutoverRailsApp::MIDWAY
  end

  # A response that renders no asset.
  def plain
    render plain: "ok"
  end

  def missing
    render inline: %(<%= cutover_javascript_tags "no-such-entrypoint" %>)
  end
end
