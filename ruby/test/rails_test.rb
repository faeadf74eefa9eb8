# frozen_string_literal: true

require "test_helper"
require "rack/test"
require "support/rails_app"
require "support/rails_pages"

# A real Rails 6.1 app (Debian's packages) rendering the helpers, with the
# Railtie's reader and middleware, against the real binary, moto and Redis.
class RailsTest < Minitest::Test
  include CutoverTestHelpers
  include Rack::Test::Methods

  PREVIEW = { "HTTP_X_CUTOVER_PREVIEW" => CutoverRailsApp::PREVIEW_TOKEN }.freeze

  include RailsPages

  def self.world
    RailsPages.world
  end

  def self.release_a
    RailsPages.release_a
  end

  # Every URL of the page is an object of the world's bucket with the bytes
  # of the fixture build's file.
  def assert_urls_served_from_s3(world, html, build)
    urls = html.scan(/(?:src|href)="([^"]+)"/).flatten
    assert_operator urls.size, :>=, 3
    urls.each do |url|
      assert url.start_with?("#{World::CDN}/packs/"), url
      key = url.delete_prefix("#{World::CDN}/")
      body = world.s3_object(key)
      refute_nil body, "#{key} is not in S3"
      assert_equal World.fixture_file(build, key.delete_prefix("packs/")), body, "#{key} has other bytes"
    end
  end

  def test_railtie_reader_renders_the_live_release_and_follows_deploy_and_rollback
    w = self.class.world
    r = Cutover.reader
    assert_equal [w.app, 1.0], [r.app, r.poll_interval], "configured from config.cutover"
    assert_includes CutoverRailsApp::LOG.string, "serving release #{self.class.release_a} of #{w.app} (previous none, via boot)",
                    "created at boot, before any request"
    wait_for_subscription(r)

    response = page
    assert_equal 200, response.status
    assert_equal expected_tags(:a), tags(response.body)
    assert_urls_served_from_s3(w, response.body, :a)

    b = w.deploy(:b)
    wait_until("the app serves B") { r.release_id == b }
    html = page.body
    assert_equal expected_tags(:b), tags(html)
    assert_urls_served_from_s3(w, html, :b)

    w.rollback
    wait_until("the app serves A again") { r.release_id == self.class.release_a }
    html = page.body
    assert_equal expected_tags(:a), tags(html)
    assert_urls_served_from_s3(w, html, :a)
  end

  def test_preview_allowed_renders_the_requested_release
    w = World.new("preview")
    a = w.deploy(:a)
    w.deploy(:b)
    with_reader(reader(w)) do
      assert_equal expected_tags(:b), tags(page(PREVIEW).body), "no parameter: the live release"
      [a, a[0, 6]].each do |ref|
        response = page(PREVIEW, "?cutover_release=#{ref}")
        assert_equal 200, response.status
        assert_equal expected_tags(:a), tags(response.body), "preview of #{ref}"
        assert_urls_served_from_s3(w, response.body, :a)
      end
      assert_equal expected_tags(:b), tags(page(PREVIEW).body), "the preview did not switch the app"
    end
  end

  def test_preview_refused_serves_the_live_release
    w = World.new("refused")
    a = w.deploy(:a)
    w.deploy(:b)
    with_reader(reader(w)) do
      [{}, { "HTTP_X_CUTOVER_PREVIEW" => "wrong" }].each do |headers|
        response = page(headers, "?cutover_release=#{a}")
        assert_equal 200, response.status
        assert_equal expected_tags(:b), tags(response.body)
      end
    end
  end

  def test_preview_of_an_unknown_release_is_a_404
    w = World.new("unknown")
    a = w.deploy(:a)
    b = w.deploy(:b)
    # A third id sharing A's first four characters makes that prefix ambiguous.
    twin = a[0, 4] + (a[4] == "0" ? "1" : "0") + a[5..]
    TestServers.redis.admin.zadd(w.key("releases"), 1, twin)
    unknown = ((("0".."9").to_a + ("a".."f").to_a - [a[0], b[0]]).first * 16)

    with_reader(reader(w)) do
      {
        unknown => /no release of app #{w.app} matches "#{unknown}"/,
        a[0, 4] => /"#{a[0, 4]}" matches 2 releases/,
        twin => /release #{twin} of app #{w.app} has no record/,
        "<script>" => /is not a release id/
      }.each do |ref, message|
        response = page(PREVIEW, "?cutover_release=#{Rack::Utils.escape(ref)}")
        assert_equal 404, response.status, ref
        assert_match message, response.body
      end
      # Malformed escapes and invalid UTF-8 are unknown ids too, not errors.
      # (rack-test refuses to build such URLs: a raw Rack env instead)
      %w[%zz %E9].each do |raw|
        env = Rack::MockRequest.env_for("/").merge(PREVIEW, "QUERY_STRING" => "x=1&cutover_release=#{raw}")
        status, _, body = app.call(env)
        assert_equal 404, status, raw
        assert_match(/is not a release id/, body.each.to_a.join)
      end
      response = page(PREVIEW)
      assert_equal 200, response.status, "the app still serves"
      assert_equal expected_tags(:b), tags(response.body)
    end
  end

  def test_missing_entrypoint_raises_missing_entry
    w = World.new("rails-missing")
    a = w.deploy(:a)
    with_reader(reader(w)) do
      error = assert_raises(ActionView::Template::Error) { get "/missing" }
      assert_kind_of Cutover::MissingEntry, error.cause
      assert_match(/"no-such-entrypoint" in the manifest of release #{a}/, error.message)
    end
  end

  # A manifest written to Redis by hand, with one bad URL in the stylesheets
  # (which Rails 6.1 also sends in the Link preload header) and the scripts.
  def publish_forged(w, id, good, url)
    assets = good.dig("entrypoints", "application", "assets")
    forged = good.merge("entrypoints" => { "application" => { "assets" => {
                          "js" => assets["js"] + [{ "src" => url }], "css" => assets["css"] + [{ "src" => url }]
                        } } })
    admin = TestServers.redis.admin
    admin.multi do |t|
      t.set(w.key("current"), id)
      t.set(w.key("manifest"), JSON.generate(forged))
    end
    admin.publish(w.key("events"), "{}")
  end

  def test_link_header_and_page_never_carry_a_refused_url
    w = World.new("link")
    a = w.deploy(:a)
    good_bytes = TestServers.redis.admin.get(w.key("manifest"))
    good = JSON.parse(good_bytes)
    bad = [%("><script>alert(1)</script>), "https://evil.example/x.js", "//evil.example/x.js",
           "data:text/javascript,alert(1)", "https://cdn.example.com/packs/x.css\r\nX-Injected: 1"]
    r = reader(w, asset_origins: [World::CDN])
    with_reader(r) do
      response = page
      links = response.headers["Link"].to_s
      css = tags(response.body).select { |t| t["rel"] == "stylesheet" }.map { |t| t["href"] }
      assert_equal 2, css.size
      css.each { |href| assert_includes links, "<#{href}>; rel=preload; as=style" }
      wait_for_subscription(r)

      bad.each_with_index do |url, i|
        id = format("%016x", 0xe0 + i)
        publish_forged(w, id, good, url)
        wait_until("the reader refused #{id}") { r.status[:rejected] == id }
        response = page
        assert_equal 200, response.status
        assert_equal expected_tags(:a), tags(response.body), url
        header = response.headers.to_a.flatten.join("\n")
        ["evil.example", "<script>", "data:", "X-Injected", "\r"].each do |needle|
          refute_includes header, needle, "#{url.inspect} reached the response headers"
          refute_includes response.body.sub(/\A<!DOCTYPE html>/, ""), needle.sub("<script>", "<script>alert"), url
        end
        assert_equal links, response.headers["Link"].to_s
      end
    end
    assert_equal bad.size, log_lines.grep(/refused release/).size, log_lines.join

    # Without an allowlist (warned at boot), an https URL on another origin
    # is taken and reaches the header: what asset_origins prevents. The
    # other four are refused whatever the configuration.
    TestServers.redis.admin.mset(w.key("current"), a, w.key("manifest"), good_bytes) # A live again
    open_reader = reader(w)
    assert_equal 1, log_lines.grep(/no asset_origins configured/).size
    with_reader(open_reader) do
      publish_forged(w, "00000000000000ff", good, "https://evil.example/x.js")
      wait_until("the open reader took it") { open_reader.release_id == "00000000000000ff" }
      assert_includes page.headers["Link"], "<https://evil.example/x.js>"
      (bad - ["https://evil.example/x.js"]).each_with_index do |url, i|
        id = format("%016x", 0xd0 + i)
        publish_forged(w, id, good, url)
        wait_until("the open reader refused #{id}") { open_reader.status[:rejected] == id }
      end
    end
  end

  # Booting an app (a fresh process, as a server would) with Redis down.
  def boot_subprocess(env)
    script = <<~RUBY
      require "support/rails_app"
require "support/rails_pages"
      require "rack/mock"
      CutoverRailsApp.initialize!
      CutoverRailsApp.routes.draw { root "pages#show" }
      status, _, body = Rails.application.call(Rack::MockRequest.env_for("/"))
      print status, "\\n"
      body.each { |part| print part }
    RUBY
    Open3.capture3(env, RbConfig.ruby, "-I#{File.expand_path('../lib', __dir__)}", "-I#{__dir__}", "-e", script)
  end

  def test_boot_with_redis_down_uses_the_fallback_manifest_or_fails_clearly
    port = TestServers.free_port
    env = { "CUTOVER_TEST_APP" => "booting", "CUTOVER_TEST_REDIS_URL" => "redis://:s3cret@127.0.0.1:#{port}" }

    _, err, status = boot_subprocess(env)
    refute status.success?
    assert_match(%r{cannot read cutover:\{booting\}:manifest from Redis at redis://:\*\*\*@127\.0\.0\.1:#{port}\b.*\(Cutover::Unavailable\)}, err)
    refute_includes err, "s3cret"

    out, err, status = boot_subprocess(env.merge("CUTOVER_TEST_FALLBACK" => FIXTURE_A_MANIFEST))
    assert status.success?, err
    code, html = out.split("\n", 2)
    assert_equal "200", code
    scripts = tags(html).select { |t| t["tag"] == "script" }.map { |t| t["src"] }
    assert_equal fixture_manifest(:a).dig("entrypoints", "application", "assets", "js").map { |c| c["src"] }, scripts
  end

  # ---------------------------------------------------------------- formats

  def tags_page(asset)
    get "/tags", { asset: asset }
    assert_equal 200, last_response.status, last_response.body
    last_response.body
  end

  # Every URL of the page is the bytes of the build's file at that key in S3.
  def assert_urls_are_the_build_in_s3(world, html, build)
    prefix = "#{World::CDN}/#{World::PREFIXES.fetch(build)}/"
    urls = html.scan(/(?:src|href)="([^"]+)"/).flatten
    assert_operator urls.size, :>=, 3
    urls.each do |url|
      assert url.start_with?(prefix), url
      key = url.delete_prefix("#{World::CDN}/")
      assert_equal World.fixture_file(build, url.delete_prefix(prefix)), world.s3_object(key), "#{key} in S3"
    end
  end

  def test_vite_deploy_renders_module_scripts_modulepreloads_and_css_as_vite_ruby
    w = World.new("rails-vite")
    w.deploy(:vite)
    dir = File.join(World::FIXTURES, "vite/.vite")
    data = JSON.parse(File.read(File.join(dir, "manifest.json")))
    logo = JSON.parse(File.read(File.join(dir, "manifest-assets.json"))).dig("images/logo.svg", "file")
    app = data.fetch("entrypoints/application.js")
    shared = data.fetch(app["imports"].first)
    cdn = ->(path) { "#{World::CDN}/vite/#{path}" }
    css = (app["css"] + shared["css"]).map do |c|
      { "tag" => "link", "rel" => "stylesheet", "media" => "screen", "crossorigin" => "", "href" => cdn.(c) }
    end
    expected = css + [
      { "tag" => "script", "type" => "module", "crossorigin" => "", "src" => cdn.(app["file"]) },
      { "tag" => "link", "rel" => "modulepreload", "as" => "script", "crossorigin" => "", "href" => cdn.(shared["file"]) },
      { "tag" => "img", "src" => cdn.(logo), "alt" => "" }
    ]
    with_reader(reader(w)) do
      html = tags_page("images/logo.svg")
      assert_equal expected, tags(html)
      assert_urls_are_the_build_in_s3(w, html, :vite)
    end
  end

  def test_propshaft_and_sprockets_deploys_render_tags_with_integrity
    { propshaft: ".manifest.json", sprockets: nil }.each do |build, manifest|
      w = World.new("rails-#{build}")
      w.deploy(build)
      dir = File.join(World::FIXTURES, World::BUILDS.fetch(build))
      manifest ||= Dir.children(dir).find { |f| f.start_with?(".sprockets-manifest-") }
      data = JSON.parse(File.read(File.join(dir, manifest)))
      # name -> [path inside the build, integrity]
      asset = lambda do |name|
        if build == :propshaft
          [data.dig(name, "digested_path"), data.dig(name, "integrity")]
        else
          path = data.dig("assets", name)
          [path, data.dig("files", path, "integrity")]
        end
      end
      cdn = ->(path) { "#{World::CDN}/assets/#{path}" }
      css, css_sri = asset.("application.css")
      js, js_sri = asset.("application.js")
      expected = [
        { "tag" => "link", "rel" => "stylesheet", "media" => "screen", "href" => cdn.(css), "integrity" => css_sri,
          "crossorigin" => "anonymous" },
        { "tag" => "script", "src" => cdn.(js), "defer" => "defer", "integrity" => js_sri, "crossorigin" => "anonymous" },
        { "tag" => "img", "src" => cdn.(asset.("logo.svg").first), "alt" => "" }
      ]
      with_reader(reader(w)) do
        html = tags_page("logo.svg")
        assert_equal expected, tags(html), build
        assert_urls_are_the_build_in_s3(w, html, build)
      end
    end
  end
end

