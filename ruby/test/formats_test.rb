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
    assert_instance_of Cutover::Formats::Shakapacker, m
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
    assert_instance_of Cutover::Formats::Webpack, m
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
    assert_instance_of Cutover::Formats::Shakapacker, m
    assert_equal %w[/packs/js/runtime-2.js /packs/js/application-1.js], m.entrypoint("application")["js"].map { |c| c["src"] }
    assert_nil m.entrypoint("application")["js"].first["integrity"]
  end

  def test_assets_manifest_without_entrypoints_falls_back
    m = parse("application.js" => { "src" => "/a.js", "integrity" => "sha384-x" })
    assert_instance_of Cutover::Formats::Shakapacker, m
    assert_equal [{ "src" => "/a.js", "integrity" => "sha384-x" }], m.entrypoint("application")["js"]
  end

  def test_unknown_shapes_are_refused
    assert_raises(Cutover::UnknownFormat) { parse([]) }
    assert_raises(Cutover::UnknownFormat) { parse("application.js" => 1) }
  end

  # The classes carry the CLI's format names; the names the README gave
  # them before still resolve to the same classes.
  def test_format_classes_have_the_cli_names_and_keep_the_old_ones
    assert_equal %w[Sprockets Vite Propshaft Shakapacker Webpack],
                 Cutover::Formats::FORMATS.map { |f| f.name.split("::").last }
    assert_same Cutover::Formats::Shakapacker, Cutover::Formats::WebpackAssetsManifest
    assert_same Cutover::Formats::Webpack, Cutover::Formats::WebpackManifestPlugin
  end

  def test_answers_are_frozen
    m = parse(fixture(:a))
    assert_raises(FrozenError) { m.entrypoint("application")["js"] << {} }
    assert_raises(FrozenError) { m.entrypoint("application")["js"].first["src"] = "x" }
    assert_raises(FrozenError) { m.lookup("application.js") << "x" }
  end

  def raw(build, path)
    JSON.parse(File.read(File.join(World::FIXTURES, World::BUILDS.fetch(build), path)))
  end

  def srcs(chunks)
    chunks.map { |c| c["src"] }
  end

  # vite_ruby 3.10's resolve_entries on the real Vite build: the entry
  # chunk, its static imports as preloads, its css then its imports' css.
  def test_vite_entrypoint_is_the_entry_chunk_its_imports_and_their_css
    data = raw(:vite, ".vite/manifest.json")
    m = parse(data)
    assert_instance_of Cutover::Formats::Vite, m
    app = data.fetch("entrypoints/application.js")
    shared = data.fetch(app["imports"].first)
    entry = m.entrypoint("application")
    assert_equal [app["file"]], srcs(entry["js"])
    assert_equal [shared["file"]], srcs(entry["preload"])
    assert_equal app["css"] + shared["css"], srcs(entry["css"])
    assert_nil entry["js"].first["integrity"]
    # The same by its key, with or without the extension.
    assert_equal entry, m.entrypoint("entrypoints/application.js")
    assert_equal entry, m.entrypoint("application.js")
    # The lazy chunk is not preloaded: only static imports are.
    refute_includes srcs(entry["preload"]), data.dig("lazy/report.js", "file")
    assert_equal app["file"], m.lookup("entrypoints/application.js")
    assert_equal data.dig("entrypoints/admin.js", "file"), m.lookup("admin.js")
    assert_nil m.entrypoint("nope")
    assert Cutover::Formats::Vite.module_scripts?
  end

  def test_vite_imports_recurse_dependencies_first_each_file_once
    data = {
      "main.js" => { "file" => "m.js", "isEntry" => true, "imports" => %w[_b.js _d.js], "css" => ["m.css"] },
      "_b.js" => { "file" => "b.js", "imports" => ["_c.js"], "css" => ["b.css"] },
      "_c.js" => { "file" => "c.js", "css" => ["c.css", "m.css"] },
      "_d.js" => { "file" => "d.js", "imports" => ["_c.js"], "css" => ["d.css"] },
      "style.css" => { "file" => "s.css", "isEntry" => true }
    }
    m = parse(data)
    entry = m.entrypoint("main.js")
    assert_equal %w[m.js], srcs(entry["js"])
    assert_equal %w[c.js b.js d.js], srcs(entry["preload"])
    assert_equal %w[m.css c.css b.css d.css], srcs(entry["css"])
    # A CSS entry: no script, its file is the stylesheet.
    assert_equal({ "js" => [], "css" => [{ "src" => "s.css", "integrity" => nil }], "preload" => [] }, m.entrypoint("style.css"))
  end

  def test_propshaft_entrypoint_is_name_js_and_name_css_with_integrity
    data = raw(:propshaft, ".manifest.json")
    m = parse(data)
    assert_instance_of Cutover::Formats::Propshaft, m
    entry = m.entrypoint("application")
    assert_equal [{ "src" => data.dig("application.js", "digested_path"), "integrity" => data.dig("application.js", "integrity") }],
                 entry["js"]
    assert_equal [data.dig("application.css", "digested_path")], srcs(entry["css"])
    assert_equal [], entry["preload"]
    assert_equal data.dig("logo.svg", "digested_path"), m.lookup("logo.svg")
    refute Cutover::Formats::Propshaft.module_scripts?
  end

  def test_sprockets_entrypoint_joins_assets_and_files
    name = Dir.children(File.join(World::FIXTURES, "sprockets")).find { |f| f.start_with?(".sprockets-manifest-") }
    data = raw(:sprockets, name)
    m = parse(data)
    assert_instance_of Cutover::Formats::Sprockets, m
    js = data.dig("assets", "application.js")
    assert_equal [{ "src" => js, "integrity" => data.dig("files", js, "integrity") }], m.entrypoint("application")["js"]
    assert_equal data.dig("assets", "logo.svg"), m.lookup("logo.svg")
    assert_nil m.lookup("files")
  end
end

