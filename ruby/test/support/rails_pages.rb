# frozen_string_literal: true

require "json"
require "support/rails_app"

# What the Rails tests share: the app, booted once per process after release
# A of its own world is live (the Railtie creates Cutover.reader at boot),
# and the page's tags as they must be for fixture builds A and B.
module RailsPages
  class << self
    attr_reader :release_a

    def world
      @world ||= World.new("rails").tap do |w|
        @release_a = w.deploy(:a)
        CutoverRailsApp.boot!(app: w.app, redis_url: w.redis_url)
      end
    end
  end

  def app
    Rails.application
  end

  def setup
    super
    RailsPages.world
  end

  # Tags of the page as attribute hashes, in order.
  def tags(html)
    html.scan(/<(script|link|img)\b([^>]*)>/).map do |name, attributes|
      { "tag" => name }.merge(attributes.scan(/([a-z-]+)="([^"]*)"/).to_h)
    end
  end

  def fixture_manifest(build)
    JSON.parse(File.read(File.join(World::FIXTURES, World::BUILDS.fetch(build), "manifest.json")))
  end

  def cdn(path)
    "#{World::CDN}#{path}"
  end

  # The page as it must be rendered for fixture build A or B, from the
  # fixture manifests (not from the reader under test).
  def expected_tags(build)
    m = fixture_manifest(build)
    if build == :a
      assets = m.dig("entrypoints", "application", "assets")
      sri = ->(c) { { "integrity" => c["integrity"], "crossorigin" => "anonymous" } }
      css = assets["css"].map { |c| { "tag" => "link", "rel" => "stylesheet", "media" => "screen", "href" => cdn(c["src"]) }.merge(sri.(c)) }
      js = assets["js"].map { |c| { "tag" => "script", "src" => cdn(c["src"]), "defer" => "defer" }.merge(sri.(c)) }
      img = m["static/logo.svg"]["src"]
    else
      css = [{ "tag" => "link", "rel" => "stylesheet", "media" => "screen", "href" => cdn(m["application.css"]) }]
      js = [{ "tag" => "script", "src" => cdn(m["application.js"]), "defer" => "defer" }]
      img = m["static/logo.svg"]
    end
    css + js + [{ "tag" => "img", "src" => cdn(img), "alt" => "" }]
  end

  def page(headers = {}, query = "")
    get "/#{query}", {}, headers
    last_response
  end

  def with_reader(reader)
    railtie_reader = Cutover.reader
    Cutover.reader = reader
    yield
  ensure
    Cutover.reader = railtie_reader
  end
end
