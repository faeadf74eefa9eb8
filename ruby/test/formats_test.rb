# frozen_string_literal: true

require "test_helper"

# Format detection and reading, on the fixture builds' own manifests and on
# the other shapes the formats take.
class FormatsTest < Minitest::Test
  def parse(data)
    Cutover::Formats.parse(data)
  end

  def fixture(build)
    JSON.parse(File.read(File.join(World::FIXTURES, World::BUILDS.fetch(build), "manifest.json")))
  end

  def test_shakapacker_manifest_with_entrypoints_and_integrity
    data = fixture(:a)
    m = parse(data)
    assert_instance_of Cutover::Formats::WebpackAssetsManifest, m
    assert_equal "/packs/js/application-b62e1c7fb0214cc621a8.js", m.lookup("application.js")
    entry = m.entrypoint("admin")
    assert_equal data.dig("entrypoints", "admin", "assets", "js"), entry["js"]
    assert_equal data.dig("entrypoints", "admin", "assets", "css"), entry["css"]
    assert_equal [], entry["preload"]
    assert_nil m.lookup("entrypoints")
    assert_nil m.entrypoint("nope")
  end

  def test_flat_manifest_falls_back_to_name_js_and_name_css
    m = parse(fixture(:b))
    assert_instance_of Cutover::Formats::WebpackManifestPlugin, m
    assert_equal "/packs/css/report-2f3e4ccc1ef5f55f2bd0.chunk.css", m.lookup("report.css")
    assert_equal({ "js" => [{ "src" => "/packs/js/admin-2de6dd810fd1d9c2202a.js", "integrity" => nil }],
                   "css" => [{ "src" => "/packs/css/admin-f203cde95c0721a7ee83.css", "integrity" => nil }],
                   "preload" => [] }, m.entrypoint("admin"))
    assert_equal [], m.entrypoint("runtime")["css"]
  end

  def test_webpacker_5_entrypoints_and_string_assets
    m = parse("application.js" => "/packs/js/application-1.js",
              "entrypoints" => { "application" => { "js" => ["/packs/js/runtime-2.js", "/packs/js/application-1.js"],
                                                   "css" => [], "js.map" => ["/packs/js/application-1.js.map"] } })
    assert_instance_of Cutover::Formats::WebpackAssetsManifest, m
    assert_equal %w[/packs/js/runtime-2.js /packs/js/application-1.js], m.entrypoint("application")["js"].map { |c| c["src"] }
    assert_nil m.entrypoint("application")["js"].first["integrity"]
  end

  def test_assets_manifest_without_entrypoints_falls_back
    m = parse("application.js" => { "src" => "/a.js", "integrity" => "sha384-x" })
    assert_instance_of Cutover::Formats::WebpackAssetsManifest, m
    assert_equal [{ "src" => "/a.js", "integrity" => "sha384-x" }], m.entrypoint("application")["js"]
  end

  def test_unknown_shapes_are_refused
    assert_raises(Cutover::UnknownFormat) { parse([]) }
    assert_raises(Cutover::UnknownFormat) { parse("application.js" => 1) }
  end

  def test_answers_are_frozen
    m = parse(fixture(:a))
    assert_raises(FrozenError) { m.entrypoint("application")["js"] << {} }
    assert_raises(FrozenError) { m.entrypoint("application")["js"].first["src"] = "x" }
    assert_raises(FrozenError) { m.lookup("application.js") << "x" }
  end
end
