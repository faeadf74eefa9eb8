# frozen_string_literal: true

require "test_helper"
require "rack/test"
require "support/rails_pages"
require "support/rollout"

# The middleware and helpers during rollouts and across releases (docs/redis.md,
# "Rollouts and skew protection"), in the real Rails 6.1 app: which release
# each request renders, what the response says, and the cookies.
class RailsRolloutTest < Minitest::Test
  include CutoverTestHelpers
  include Rack::Test::Methods
  include RailsPages
  include RolloutHelpers

  KEY_MAX_AGE = 365 * 24 * 3600

  # Deploys A then B (B live) in a world of its own; a reader of it serves
  # the app for the block. Yields the world, A and its manifest, B, the reader.
  def with_world(name, **options)
    w = World.new(name)
    (a, manifest_a), (b,) = deployed(w).values_at(:a, :b)
    r = reader(w, **options)
    clear_cookies
    with_reader(r) { yield w, a, manifest_a, b, r }
  end

  # Set-Cookie lines of the last response, by cookie name.
  def set_cookies
    last_response.headers["Set-Cookie"].to_s.split("\n").to_h { |line| [line[/\A[^=]+/], line] }
  end

  def meta(html)
    html.scan(/<meta name="cutover-release" content="([^"]*)">/).flatten
  end

  # The release a page rendered, from its tags (every tag must agree) and its
  # meta tag, checked against the response header.
  def rendered(response)
    build = { expected_tags(:a) => :a, expected_tags(:b) => :b }.fetch(tags(response.body)) do
      flunk "the page mixes releases or is neither A nor B: #{tags(response.body)}"
    end
    ids = meta(response.body)
    assert_equal 1, ids.size, "one meta tag"
    assert_equal ids.first, response.headers["X-Cutover-Release"], "the header names the release rendered"
    [build, ids.first]
  end

  def test_a_page_says_its_release_in_a_header_a_cookie_and_a_meta_tag
    with_world("says") do |_, _, _, b|
      response = page
      assert_equal 200, response.status
      assert_equal [:b, b], rendered(response)
      assert_equal "cutover_release=#{b}; path=/; HttpOnly; SameSite=Lax", set_cookies["cutover_release"]
      refute set_cookies.key?("cutover_key"), "no rollout, no key: #{set_cookies}"

      # The browser sends the cookie back: the same release, no new cookie.
      response = page
      assert_equal [:b, b], rendered(response)
      assert_empty set_cookies

      # A response that renders nothing says nothing.
      get "/plain"
      assert_equal "ok", last_response.body
      assert_nil last_response.headers["X-Cutover-Release"]
      assert_empty set_cookies
    end
  end

  # Hex keys (the cookie's shape) that fall on either side of 50 %.
  def hex_keys_around(threshold)
    keys = (0..).lazy.map { |i| format("%032x", i) }
    [keys.find { |k| Cutover::Rollout.bucket(SALT, k) < threshold },
     keys.find { |k| Cutover::Rollout.bucket(SALT, k) >= threshold }]
  end

  def test_the_key_cookie_is_set_once_and_keeps_the_assignment
    with_world("key-cookie") do |w, a, manifest_a, b, r|
      write_canary(w, canary_json(a, 50), manifest_a)
      wait_until("the canary is served") { r.canary_release_id == a }
      expected = ->(key) { Cutover::Rollout.bucket(SALT, key) < 5000 ? [:a, a] : [:b, b] }
      seen = []
      8.times do
        clear_cookies
        first = page
        line = set_cookies.fetch("cutover_key")
        key = line[/\Acutover_key=(\h{32});/, 1]
        refute_nil key, line
        assert_equal "cutover_key=#{key}; path=/; max-age=#{KEY_MAX_AGE}; HttpOnly; SameSite=Lax", line
        assert_equal expected.(key), rendered(first)
        3.times do
          again = page
          assert_equal expected.(key), rendered(again), "the same key, the same release"
          refute set_cookies.key?("cutover_key"), "set once"
        end
        seen << expected.(key).first
      end

      # Chosen keys: each gets its side; a malformed one is replaced.
      on, off = hex_keys_around(5000)
      { on => [:a, a], off => [:b, b] }.each do |key, release|
        clear_cookies
        set_cookie "cutover_key=#{key}"
        assert_equal release, rendered(page)
        refute set_cookies.key?("cutover_key")
      end
      clear_cookies
      set_cookie "cutover_key=not-a-key"
      page
      assert_match(/\Acutover_key=\h{32};/, set_cookies["cutover_key"])

      # Over https the cookie is Secure.
      clear_cookies
      get "https://example.org/"
      assert_match(/; secure; HttpOnly; SameSite=Lax\z/, set_cookies.fetch("cutover_key"))
      assert seen.any?, "8 visitors"
    end
  end

  def test_the_rollout_key_policy_decides_and_no_cookie_is_set
    with_world("policy") do |w, a, manifest_a, b, r|
      write_canary(w, canary_json(a, 50), manifest_a)
      wait_until("the canary is served") { r.canary_release_id == a }
      on, off = keys_around(5000)
      { on => [:a, a], off => [:b, b] }.each do |user, release|
        3.times do
          assert_equal release, rendered(page(CutoverRailsApp::USER_HEADER => user))
          refute set_cookies.key?("cutover_key")
        end
      end
    end
  end

  def test_a_request_naming_a_release_gets_it_while_it_is_servable
    with_world("skew-rails", skew_max_age: 600) do |w, a, _, b|
      admin.zadd(w.key("retired"), now_ms - 60_000, a)
      header = ->(id) { { "HTTP_X_CUTOVER_RELEASE" => id } }
      assert_equal [:a, a], rendered(page(header.(a))), "retired a minute ago: A"
      assert_equal "cutover_release=#{a}; path=/; HttpOnly; SameSite=Lax", set_cookies["cutover_release"]
      assert_equal [:a, a], rendered(page(header.(a).merge("HTTP_SEC_FETCH_MODE" => "navigate"))), "the header always counts"
      assert_equal [:b, b], rendered(page(header.(b)))

      unknown = "0123456789abcdef"
      pruned = "fedcba9876543210"
      admin.zadd(w.key("retired"), now_ms, pruned) # its record is gone
      [unknown, pruned, "not-an-id", a[0, 6]].each do |id|
        clear_cookies
        assert_equal [:b, b], rendered(page(header.(id))), id
      end

      # The cookie counts on requests that are not top-level navigations.
      { "cors" => :a, "same-origin" => :a, "no-cors" => :a, "navigate" => :b, nil => :b }.each do |mode, build|
        clear_cookies
        set_cookie "cutover_release=#{a}"
        env = mode ? { "HTTP_SEC_FETCH_MODE" => mode } : {}
        assert_equal build, rendered(page(env)).first, "Sec-Fetch-Mode #{mode.inspect}"
      end
    end
    # Retired longer ago than skew_max_age: its assignment.
    with_world("skew-old", skew_max_age: 600) do |w, a, _, b|
      admin.zadd(w.key("retired"), now_ms - 601_000, a)
      assert_equal [:b, b], rendered(page("HTTP_X_CUTOVER_RELEASE" => a))
    end
  end

  def test_a_preview_wins_and_is_said_too
    with_world("preview-wins") do |_, a, _, b|
      preview = { "HTTP_X_CUTOVER_PREVIEW" => CutoverRailsApp::PREVIEW_TOKEN, "HTTP_X_CUTOVER_RELEASE" => b }
      assert_equal [:a, a], rendered(page(preview, "?cutover_release=#{a[0, 6]}"))
    end
  end

  # The rollout changes while a page renders (between its stylesheets and
  # its scripts, once the reader has switched): every tag, the meta tag and
  # the header are from the release the page started with.
  def test_one_request_renders_one_release_while_the_canary_changes
    with_world("midway") do |w, a, manifest_a, b, r|
      on, = keys_around(5000)
      user = { CutoverRailsApp::USER_HEADER => on }
      write_canary(w, canary_json(a, 50), manifest_a)
      wait_until("the canary is served") { r.canary_release_id == a }
      wait_for_subscription(r)
      CutoverRailsApp.midway = lambda do
        abort_canary(w, a)
        wait_until("the abort reached the reader mid-page") { r.snapshot(key: on).release_id == b }
      end
      get "/midway", {}, user
      assert_equal [:a, a], rendered(last_response)
      assert_equal [:b, b], rendered(page(user)), "the next page: B"

      CutoverRailsApp.midway = lambda do
        write_canary(w, canary_json(a, 50), manifest_a)
        wait_until("the rollout reached the reader mid-page") { r.snapshot(key: on).release_id == a }
      end
      get "/midway", {}, user
      assert_equal [:b, b], rendered(last_response)
      assert_equal [:a, a], rendered(page(user)), "the next page: the canary"
    ensure
      CutoverRailsApp.midway = nil
    end
  end
end
