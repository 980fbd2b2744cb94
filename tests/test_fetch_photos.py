"""tools/fetch_photos.py records each photograph's licence from the package's debian/copyright or the file's own metadata."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

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


def qt_resource_file(files: dict[str, tuple[bytes, bool]]) -> bytes:
    """A compiled Qt resource file (format version 2) holding `files` {"dir/name": (bytes, zlib?)}:
    header, data, names, then the tree of 22-byte nodes, breadth first, each directory's children
    contiguous (as Qt's rcc lays it out)."""
    tree: dict = {}
    for path, entry in files.items():
        *dirs, leaf = path.split("/")
        node = tree
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = entry
    order, first_child = [("", tree)], {}
    for i, (_, entry) in enumerate(order):  # grows while walked: breadth first
        if isinstance(entry, dict):
            first_child[i] = len(order)
            order.extend(sorted(entry.items()))
    data, names, nodes = b"", b"", []
    for i, (name, entry) in enumerate(order):
        name_offset = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
        if isinstance(entry, dict):
            nodes.append(struct.pack(">IHIIQ", name_offset, 2, len(entry), first_child[i], 0))
            continue
        blob, compress = entry
        stored = struct.pack(">I", len(blob)) + zlib.compress(blob) if compress else blob
        nodes.append(struct.pack(">IHHHIQ", name_offset, 1 if compress else 0, 0, 0, len(data), 0))
        data += struct.pack(">I", len(stored)) + stored
    data_offset = 20
    names_offset = data_offset + len(data)
    tree_offset = names_offset + len(names)
    return b"qres" + struct.pack(">IIII", 2, tree_offset, data_offset, names_offset) + data + names + b"".join(nodes)


def test_read_qt_resources_returns_stored_and_zlib_entries_by_path(tmp_path):
    path = tmp_path / "a.rcc"
    path.write_bytes(qt_resource_file({"gcompris/src/x/one.webp": (b"plain bytes", False),
                                       "gcompris/src/x/two.webp": (b"squeezed " * 50, True),
                                       "gcompris/top.txt": (b"t", False)}))
    assert fetch_photos.read_qt_resources(path) == {"gcompris/src/x/one.webp": b"plain bytes",
                                                    "gcompris/src/x/two.webp": b"squeezed " * 50,
                                                    "gcompris/top.txt": b"t"}
    (tmp_path / "b.rcc").write_bytes(b"not a resource file")
    with pytest.raises(ValueError, match="b.rcc: not a Qt resource file"):
        fetch_photos.read_qt_resources(tmp_path / "b.rcc")


GCOMPRIS_COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2014 GCompris authors
License: GPL-3+

Files: src/activities/categorization/resource/images/tools/hammer1.jpg
Copyright: Jane Photographer
License: CC-BY-SA-3.0

Files: src/activities/explore_farm_animals/resource/animals/*
       src/activities/categorization/resource/images/tools/saw.jpg
Copyright: Farm Photos Ltd
License: GPL-3

Files: src/activities/explore_farm_animals/resource/animals/cow.jpg
Copyright: A Cow Photographer
License: CC0-1.0
"""


def test_dep5_licence_takes_the_last_matching_paragraph_and_continued_file_lists():
    paragraphs = fetch_photos.dep5_paragraphs(GCOMPRIS_COPYRIGHT)
    assert [p[2] for p in paragraphs] == ["GPL-3+", "CC-BY-SA-3.0", "GPL-3", "CC0-1.0"]
    licence = fetch_photos.dep5_licence
    assert licence(paragraphs, "src/activities/categorization/resource/images/tools/hammer1.jpg")[1:] == (
        "Jane Photographer", "CC-BY-SA-3.0")
    assert licence(paragraphs, "src/activities/categorization/resource/images/tools/saw.jpg")[2] == "GPL-3"
    assert licence(paragraphs, "src/activities/explore_farm_animals/resource/animals/cow.jpg")[2] == "CC0-1.0"
    assert licence(paragraphs, "src/activities/explore_farm_animals/resource/animals/pig.jpg")[2] == "GPL-3"
    assert licence(paragraphs, "src/activities/erase/resource/tiger.jpg")[0] == "*"  # only the catch-all


def test_gcompris_pool_keeps_photographs_licensed_by_file_or_folder_only(tmp_path, monkeypatch):
    def webp(h: int, w: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(buf, format="WEBP")
        return buf.getvalue()

    fake = tmp_path / "deb"
    (fake / "usr/share/doc/gcompris-qt-data").mkdir(parents=True)
    (fake / "usr/share/doc/gcompris-qt-data/copyright").write_text(GCOMPRIS_COPYRIGHT)
    rcc = fake / "usr/share/gcompris-qt/rcc"
    rcc.mkdir(parents=True)
    tools = "gcompris/src/activities/categorization/resource/images/tools"
    farm = "gcompris/src/activities/explore_farm_animals/resource/animals"
    for activity in fetch_photos.GCOMPRIS_ACTIVITIES:
        (rcc / f"{activity}.rcc").write_bytes(qt_resource_file({}))
    (rcc / "categorization.rcc").write_bytes(qt_resource_file({
        f"{tools}/hammer1.webp": (webp(200, 300), False),           # licensed by file: kept
        f"{tools}/tiny.webp": (webp(40, 60), False),                # under 150 px
        f"{tools}/unlisted.webp": (webp(200, 300), True)}))         # only Files: * covers it
    (rcc / "explore_farm_animals.rcc").write_bytes(qt_resource_file({
        f"{farm}/cow.webp": (webp(300, 400), True),                 # by file (the last paragraph wins)
        f"{farm}/farmer_boy.webp": (webp(300, 400), False)}))       # shows a person
    monkeypatch.setattr(fetch_photos, "download", lambda package, into: fake)
    out = tmp_path / "out"
    out.mkdir()
    fetch_photos.fetch_gcompris(out)
    assert sorted(p.name for p in out.iterdir()) == ["SOURCES.md", "gcompris_categorization_hammer1.jpg",
                                                     "gcompris_explore_farm_animals_cow.jpg"]
    sources = (out / "SOURCES.md").read_text()
    assert "tools/hammer1 (© Jane Photographer) | CC-BY-SA-3.0" in sources
    assert "animals/cow (© A Cow Photographer) | CC0-1.0" in sources
    with Image.open(out / "gcompris_explore_farm_animals_cow.jpg") as im:
        assert im.mode == "RGB" and im.size == (400, 300)


KALZIUM_COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kalzium

Files: *
Copyright: 2007, A Chemist <chemist@example.org>
           2008, Another One
License: GPL-2.0-or-later

Files: doc/*
Copyright: 2008, A Writer
License: GFDL-1.2-only
"""


def test_kalzium_pool_keeps_its_photographs_with_the_tree_licence_and_leaves_out_the_drawing(tmp_path, monkeypatch):
    fake = tmp_path / "deb"
    (fake / "usr/share/doc/kalzium-data").mkdir(parents=True)
    (fake / "usr/share/doc/kalzium-data/copyright").write_text(KALZIUM_COPYRIGHT)
    pics = fake / "usr/share/kalzium/data/toolpics"
    pics.mkdir(parents=True)
    Image.fromarray(np.full((300, 250, 3), 80, np.uint8)).save(pics / "becherglas.jpg")
    Image.fromarray(np.full((77, 310, 4), 200, np.uint8)).save(pics / "kolbenprober.png")  # the one drawing
    (pics / "notes.txt").write_text("not an image")
    monkeypatch.setattr(fetch_photos, "download", lambda package, into: fake)
    out = tmp_path / "out"
    out.mkdir()
    fetch_photos.fetch_kalzium(out)
    assert sorted(p.name for p in out.iterdir()) == ["SOURCES.md", "kalzium_becherglas.jpg"]
    sources = (out / "SOURCES.md").read_text()
    assert "data/toolpics/becherglas.jpg (© 2007, A Chemist <chemist@example.org> et al.)" in sources
    assert "GPL-2.0-or-later (debian/copyright, Files: *)" in sources
    with Image.open(out / "kalzium_becherglas.jpg") as im:
        assert im.mode == "RGB" and im.size == (250, 300)
