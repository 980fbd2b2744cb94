"""tools/fetch_photos.py records each photograph's licence from the package's debian/copyright or the file's own metadata."""

from helpers import load_script

fetch_photos = load_script("tools/fetch_photos.py")

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: lomiri-wallpapers

Files: 16.04/seeding_by_Clements_Engelhardt.jpg
Copyright: Clemens Engelhardt, 2018
License: CC0-1.0

Files: 16.04/Bridge_by_Sander_Klootwijk.jpg 20.04/Kleiber_by_Lukas_Baubkus.jpg
Copyright: 2018. Sander Klootwijk
License: CC-BY-SA-4.0

Files: debian/*
Copyright: 2018, Dalton Durst
License: Expat

License: CC-BY-SA-4.0
 Attribution-ShareAlike 4.0 International
"""


def test_dep5_licences_maps_every_listed_file_to_its_own_paragraph():
    licences = fetch_photos.dep5_licences(COPYRIGHT)
    assert licences["seeding_by_Clements_Engelhardt.jpg"] == ("Clemens Engelhardt, 2018", "CC0-1.0")
    assert licences["Bridge_by_Sander_Klootwijk.jpg"] == ("2018. Sander Klootwijk", "CC-BY-SA-4.0")
    assert licences["Kleiber_by_Lukas_Baubkus.jpg"] == ("2018. Sander Klootwijk", "CC-BY-SA-4.0")
    assert "Attribution-ShareAlike 4.0 International" not in str(licences)  # licence texts are not files


def test_every_lomiri_photo_is_named_once():
    names = [n for names in fetch_photos.LOMIRI_PHOTOS.values() for n in names]
    assert len(names) == len(set(names)) == 14


PUZZLE_DESKTOP = """[Desktop Entry]
Name=Citrus Fruits
Name[de]=Zitrusfrüchte
Comment=Oranges, lemons and limes
Icon=citrus-fruits.jpg
Type=X-Palapeli-Puzzle

X-KDE-PluginInfo-Author=US Department of Agriculture
X-KDE-PluginInfo-Website=http://commons.wikimedia.org/wiki/Image:Citrus_fruits.jpg
X-KDE-PluginInfo-License=Public Domain

[Job]
Image=citrus-fruits.jpg
Slicer=palapeli_goldbergslicer
"""


def test_a_puzzle_desktop_file_gives_its_image_author_and_licence():
    fields = fetch_photos.desktop_fields(PUZZLE_DESKTOP)
    assert fields["Image"] == "citrus-fruits.jpg"
    assert fields["Name"] == "Citrus Fruits"  # the untranslated name, not a localised one
    assert fields["X-KDE-PluginInfo-Author"] == "US Department of Agriculture"
    assert fields["X-KDE-PluginInfo-License"] == "Public Domain"


def test_the_texture_pool_names_each_file_once_and_no_drawn_pattern():
    names = fetch_photos.KRITA_PATTERNS + fetch_photos.PALAPELI_TEXTURES
    assert len(names) == len(set(names)) == 22
    assert not any(word in n.lower() for n in names for word in ("drawed", "stars", "maze", "swirl", "abstract"))


def test_tuxpaint_pool_writes_each_photograph_with_its_licence_and_skips_missing_ones(tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    fake = tmp_path / "deb" / "usr/share/tuxpaint"
    (fake / "templates").mkdir(parents=True)
    (fake / "starters").mkdir()
    Image.fromarray(np.full((40, 60, 3), 120, np.uint8)).save(fake / "templates" / "mossy_log.jpg")
    Image.fromarray(np.full((30, 50, 3), 200, np.uint8)).save(fake / "starters" / "reef-back.png")
    monkeypatch.setattr(fetch_photos, "download", lambda package, into: tmp_path / "deb")
    out = tmp_path / "out"
    out.mkdir()
    fetch_photos.fetch_tuxpaint(out)
    assert sorted(p.name for p in out.iterdir()) == ["SOURCES.md", "tuxpaint_mossy_log.jpg", "tuxpaint_reef-back.jpg"]
    sources = (out / "SOURCES.md").read_text()
    assert "templates/mossy_log.jpg (Bill Kendrick) | GPL-2+" in sources
    assert "starters/reef-back.png (Coral reef, NOAA" in sources and "public domain" in sources
    assert "skipped tuxpaint-data: templates/cliff.jpg" in capsys.readouterr().out
    names = fetch_photos.TUXPAINT_TEMPLATES
    assert len(names) == len(set(names)) == 19
