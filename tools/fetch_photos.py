"""Fetch the training pool of real photographs from the Debian archive (nothing is committed).

    python tools/fetch_photos.py [--out .cache/photos/train]
    python tools/fetch_photos.py --cutouts [--out .cache/photos/cutouts]
    python tools/fetch_photos.py --opencv [--out .cache/photos/opencv]
    python tools/fetch_photos.py --lomiri [--out .cache/photos/lomiri]
    python tools/fetch_photos.py --textures [--out .cache/photos/textures]
    python tools/fetch_photos.py --tuxpaint [--out .cache/photos/tuxpaint]
    python tools/fetch_photos.py --gcompris [--out .cache/photos/gcompris]
    python tools/fetch_photos.py --kalzium [--out .cache/photos/kalzium]

Downloads two Debian packages with `apt-get download` (no root needed to download, nothing is
installed), extracts the photographs named below, downscales each to at most 1280 px on its longer
side (the synthetic engine crops 224-px backgrounds from them; smaller files decode faster) and
writes them with `SOURCES.md` (package, file, licence). Used as `handrecon synth --backgrounds`.

- `mate-backgrounds` (1.26): the `nature/` photographs, GPL-2+ (debian/copyright of the package).
- `plasma-workspace-wallpapers` (5.27): the photographic wallpapers listed in `PLASMA_PHOTOS`,
  LGPL / CC-BY-SA as stated in each wallpaper's `metadata.json` (recorded in `SOURCES.md`).

With `--cutouts`: photographed objects cut out on a transparent background (animals with fur and
feathers, fruit and vegetables, tools, dishes, vehicles, plants; 347 PNGs with alpha) from
`tuxpaint-stamps-default` (2022.06.04, GPL-2, debian/copyright), leaving out the drawn ones
(`cartoon/`, symbols, letters, signs, seasonal clip art) and everything showing people, hands or
a glove (`CUTOUT_EXCLUDE`), downscaled to at most 512 px. Put in a `--backgrounds` folder, an
image with an alpha channel is pasted onto the backgrounds as clutter (`SynthConfig.clutter`)
instead of being a background itself.

With `--opencv`: the 21 photographs among OpenCV's sample images (`OPENCV_PHOTOS`: a mandrill, a
dog, a squirrel, a butterfly, fruit, an aloe, buildings, a street, aerial views, graffiti, a
painting, a cluttered box and desk) from `opencv-doc` (4.6.0, `examples/data/`; Apache-2.0 AND
BSD-3-Clause as debian/copyright states for the source tree), leaving out the drawn ones, the
calibration boards and the two showing people. Close-ups of fur and skin-toned fruit, where the
default pool is mostly empty landscapes.

With `--lomiri`: the 14 photographs (`LOMIRI_PHOTOS`: a figs-on-a-plate still life, paint brushes,
a room with a drum and wine, a lamp with a toy bird, two dogs at a window, a wall clock, a stream, a
tree with a nuthatch, dandelions, mountains, a sunset, a bridge) among the Ubuntu Touch wallpapers
of `lomiri-wallpapers-16.04` and `lomiri-wallpapers-20.04` (20.04.0), leaving out the drawn and
rendered ones; CC-BY-4.0, CC-BY-SA-3.0/4.0 or CC0-1.0 per file, read from the package's
debian/copyright into `SOURCES.md` with the author. Indoor scenes and close-ups, which the other
pools lack.

With `--textures`: surfaces a hand is seen against (walls, wood, bark, rock, fabric, paper, sand,
moss) and five more photographs, where the other pools are mostly whole scenes: the five
photographs of the jigsaw game Palapeli (`palapeli-data` 22.12.3: a castle, a bridge at night, citrus
fruit, a bee on a flower, a chameleon; Wikimedia Commons, public domain or GFDL, author and licence
read from each puzzle's `.desktop` file) with its five background textures (GPL-2+), and the
photographed patterns of `krita-data` (5.1.5, `KRITA_PATTERNS`: rock, bark, wood, crackle, reptile
skin, chain mail, canvas, paper, plaster, sand; grey, 512 px; the package's "GPL-and-LGPL" paragraph
of debian/copyright), leaving out the drawn ones (hatching, dots, swirls, stars, mazes).

With `--tuxpaint`: the 19 photographs among Tux Paint's templates (`TUXPAINT_TEMPLATES`: burnt and
mossy bark, a mossy log, mudstone, rocks, a cliff, a corn maze, jellyfish, a lighthouse, ocean spray
and waves, redwoods and trees from below, trees at dusk, sheep in a field, a spider's web, the sun
behind clouds and leaves, a wool-mill machine; by Bill Kendrick, `tuxpaint-data` 0.9.28, GPL-2+ as
debian/copyright states for Files: *) and the two photographs behind its starters
(`TUXPAINT_STARTER_PHOTOS`: a coral reef and San Francisco at dusk, NOAA, public domain per the
package's AUTHORS.txt). Warm close surfaces and machinery, which the other pools have few of.
With `--gcompris`: the photographs of the educational suite GCompris (`gcompris-qt-data` 3.1, read
out of its Qt resource files, `read_qt_resources`) that debian/copyright licenses file by file or
folder by folder (CC0, public domain, CC-BY, CC-BY-SA, GPL; author and licence into `SOURCES.md`),
leaving out what only its catch-all `Files: *` paragraph covers, what shows people, hands or
primates (`GCOMPRIS_EXCLUDE`) and images under 150 px: tools, dishes, household objects, fish in
tanks, solar panels, windmills, dams and monuments (`categorization`), animals in the wild and on
farms, the sea floor. Close-up objects, the things hands hold, which the other pools have few of.

With `--kalzium`: the photographs of laboratory equipment that the chemistry program Kalzium shows
in its glossary (`kalzium-data` 22.12.3, `data/toolpics/`: beakers and flasks, burners, pipettes, a
balance, a hot plate, a mortar, goggles, clamps and stands, on lab benches and red tiles; 39 of its
40 pictures, `KALZIUM_DRAWN` leaving out the one drawing), GPL-2.0-or-later as debian/copyright's
`Files: *` paragraph states for the whole source tree (no paragraph names other sources for its
images, unlike GCompris's), 60-530 px. Glass, steel and plastic in a workplace, held by hands in use.

The foreign test set uses other photographs (scikit-image's, `benchmarks/foreign_testset.py`), so
the two pools never overlap.
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import re
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

from PIL import Image

MATE_NATURE = ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
               "TwoWings", "Wood", "YellowFlower")
PLASMA_PHOTOS = ("Autumn", "BytheWater", "Canopee", "Cascade", "ColorfulCups", "DarkestHour", "EveningGlow",
                 "FallenLeaf", "Grey", "Kite", "Path", "SafeLanding", "summer_1am", "Altai", "IceCold", "OneStandsOut")
MAX_SIDE = 1280
OPENCV_PHOTOS = ("aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "box_in_scene.png", "building.jpg",
                 "butterfly.jpg", "chicky_512.png", "ela_original.jpg", "fruits.jpg", "graf1.png", "graf3.png", "home.jpg",
                 "leuvenA.jpg", "orange.jpg", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "starry_night.jpg",
                 "stuff.jpg")
LOMIRI_PHOTOS = {"lomiri-wallpapers-16.04": ("Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
                                             "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede",
                                             "aitzgorri_by_Aitzol_Berasategi", "free_by_Peter_Nerlich",
                                             "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
                                             "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
                                             "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi"),
                 "lomiri-wallpapers-20.04": ("Kleiber_by_Lukas_Baubkus",)}
PALAPELI_TEXTURES = ("Eliminator-Funk-2", "Rear-Admiral-Diplomat-1", "Time-For-Lunch-2",
                     "gon-defends-the-critters-1", "mahogany-handjob-1")
KRITA_PATTERNS = ("01_canvas", "02_rough-canvas", "02b_WoofTissue", "05_paper-torchon", "06_hard-grain", "08_bump-relief",
                  "14_texture-rock", "15_texture-rockB", "16_texture-woody", "18_texture-bark", "19_texture-crackle",
                  "20_texture-vegetal", "21_texture-chainmail", "22_texture-reptile", "Rough_Paper",
                  "Rough_Wall_With_Impasto", "Sand_fine")
TUXPAINT_TEMPLATES = ("burnt_bark", "cliff", "corn_maze", "jellyfish", "lighthouse", "mossy_bark", "mossy_log", "mudstone",
                      "ocean_splash", "ocean_waves", "redwoods_above", "rocks", "sheep", "spiders_web", "sun_behind_clouds",
                      "sun_behind_leaves", "trees_above", "trees_at_dusk", "wool_mill_machine")
TUXPAINT_STARTER_PHOTOS = {"reef-back.png": "Coral reef, NOAA photo library reef2583 (Thomas K. Gibson)",
                           "skyline-sf-dusk-back.jpeg": "San Francisco at dusk, NOAA photo library line1989 (Rich Bourgerie)"}
CUTOUT_MAX_SIDE = 512
CUTOUT_EXCLUDE = re.compile(r"cartoon|symbols|alphabet|roadsign|seasonal|/people/|fireman|paratrooper|roll-call|glove|"
                            r"body_parts|hand|finger", re.IGNORECASE)
GCOMPRIS_ACTIVITIES = ("categorization", "explore_world_animals", "explore_farm_animals", "clickgame", "erase",
                       "explore_monuments")
GCOMPRIS_EXCLUDE = re.compile(r"people|person|child|girl|boy|man\b|woman|face|hand|finger|arm\b|body|gorilla|monkey|"
                              r"chimp|gibbon|orangutan|lemur|baboon|macaque|alphabets|numbers", re.IGNORECASE)
GCOMPRIS_MIN_SIDE = 150
KALZIUM_DRAWN = ("kolbenprober.png",)


def download(package: str, into: Path) -> Path:
    subprocess.run(["apt-get", "download", package], cwd=into, check=True, capture_output=True)
    deb = next(into.glob(f"{package}_*.deb"))
    root = into / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def save(src: Path, dst: Path) -> None:
    with Image.open(src) as im:
        im = im.convert("RGB")
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        im.save(dst, quality=92)


def take(src: Path, out: Path, dst: str, rows: list[str], source: str, licence: str, credit: str = "") -> None:
    """Save the package's image `src` as `out`/`dst` and add its SOURCES.md row (`source`: "package:
    path", `credit`: who made it, if known), or say it was skipped when the package no longer has it."""
    if not src.is_file():
        print(f"skipped {source} (not in the package)")
        return
    save(src, out / dst)
    rows.append(f"| {dst} | {source}{f' ({credit})' if credit else ''} | {licence} |")


def write_sources(out: Path, rows: list[str], what: str) -> None:
    """`out`/SOURCES.md: one table row per file (name, Debian package and image, licence)."""
    (out / "SOURCES.md").write_text("| file | Debian package: image | licence |\n|---|---|---|\n" + "\n".join(rows) + "\n")
    print(f"{len(rows)} {what} in {out}")


def fetch_cutouts(out: Path) -> None:
    """The photographed objects of `tuxpaint-stamps-default` as RGBA PNGs in `out`, with SOURCES.md."""
    rows = []
    with tempfile.TemporaryDirectory() as d:
        root = download("tuxpaint-stamps-default", Path(d)) / "usr/share/tuxpaint/stamps"
        for src in sorted(root.rglob("*.png")):
            rel = src.relative_to(root).as_posix()
            if CUTOUT_EXCLUDE.search("/" + rel):
                continue
            with Image.open(src) as im:
                im = im.convert("RGBA")
                im.thumbnail((CUTOUT_MAX_SIDE, CUTOUT_MAX_SIDE), Image.Resampling.LANCZOS)
                name = "tux_" + rel[:-4].replace("/", "_") + ".png"
                im.save(out / name)
            rows.append(f"| {name} | tuxpaint-stamps-default: stamps/{rel} | GPL-2 |")
    write_sources(out, rows, "cutouts")


def fetch_opencv(out: Path) -> None:
    """OpenCV's sample photographs (`OPENCV_PHOTOS`) as JPEGs in `out`, with SOURCES.md."""
    rows = []
    with tempfile.TemporaryDirectory() as d:
        root = download("opencv-doc", Path(d)) / "usr/share/doc/opencv-doc/examples/data"
        for name in OPENCV_PHOTOS:
            take(root / name, out, f"opencv_{Path(name).stem}.jpg", rows, f"opencv-doc: examples/data/{name}",
                 "Apache-2.0 AND BSD-3-Clause (debian/copyright)")
    write_sources(out, rows, "photographs")


def dep5_paragraphs(copyright_text: str) -> list[tuple[list[str], str, str]]:
    """The `Files` paragraphs of a machine-readable debian/copyright (DEP-5), in order: (file
    patterns, first line of the copyright holders, licence name); continuation lines of `Files`
    are read as more patterns."""
    out = []
    for para in copyright_text.split("\n\n"):
        files = re.search(r"^Files: *(.*(?:\n[ \t]+.*)*)", para, re.MULTILINE)
        licence = re.search(r"^License: *(.*)$", para, re.MULTILINE)
        holder = re.search(r"^Copyright: *(.*)$", para, re.MULTILINE)
        if files and licence:
            out.append((files.group(1).split(), holder.group(1).strip() if holder else "", licence.group(1).strip()))
    return out


def dep5_licences(copyright_text: str) -> dict[str, tuple[str, str]]:
    """{file name: (copyright holder, licence)} from a machine-readable debian/copyright (DEP-5)."""
    return {Path(pattern).name: (holder, licence)
            for patterns, holder, licence in dep5_paragraphs(copyright_text) for pattern in patterns}


def dep5_licence(paragraphs: list[tuple[list[str], str, str]], path: str) -> tuple[str, str, str] | None:
    """(matching pattern, holder, licence) of the source file `path` by DEP-5's rule (the last
    paragraph whose pattern matches wins); None when no paragraph covers it."""
    found = None
    for patterns, holder, licence in paragraphs:
        for pattern in patterns:
            if fnmatch.fnmatchcase(path, pattern):
                found = (pattern, holder, licence)
    return found


def read_qt_resources(path: Path) -> dict[str, bytes]:
    """{resource path: file bytes} of a compiled Qt resource file (`rcc`, format versions 1-3: a
    "qres" header, a tree of 14- or 22-byte nodes, UTF-16 names, zlib-compressed or stored data;
    zstd-compressed entries are refused)."""
    b = path.read_bytes()
    if b[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt resource file (no 'qres' header)")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    node_size = 22 if version >= 2 else 14
    out: dict[str, bytes] = {}

    def name(offset: int) -> str:
        length, = struct.unpack(">H", b[names + offset:names + offset + 2])
        return b[names + offset + 6:names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> None:
        node = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", b[node:node + 6])
        here = f"{prefix}{name(name_offset)}" if index else ""
        if flags & 2:  # a directory: child count, first child
            count, first = struct.unpack(">II", b[node + 6:node + 14])
            for child in range(first, first + count):
                walk(child, f"{here}/" if index else "")
            return
        offset, = struct.unpack(">I", b[node + 10:node + 14])
        size, = struct.unpack(">I", b[data + offset:data + offset + 4])
        blob = b[data + offset + 4:data + offset + 4 + size]
        if flags & 4:
            raise ValueError(f"{path}: {here} is zstd-compressed, which this reader does not decode")
        out[here] = zlib.decompress(blob[4:]) if flags & 1 else blob  # qCompress: a 4-byte size, then zlib

    walk(0, "")
    return out


def fetch_lomiri(out: Path) -> None:
    """The photographs among the Ubuntu Touch wallpapers (`LOMIRI_PHOTOS`) as JPEGs in `out`, with SOURCES.md."""
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for package, names in LOMIRI_PHOTOS.items():
            root = download(package, Path(d))
            licences = dep5_licences((root / "usr/share/doc" / package / "copyright").read_text())
            for name in names:
                src = root / "usr/share/backgrounds" / f"{name}.jpg"
                if not src.is_file() or src.name not in licences:
                    print(f"skipped {package}: {name}.jpg (not in the package, or no licence in its debian/copyright)")
                    continue
                holder, licence = licences[src.name]
                save(src, out / f"lomiri_{name}.jpg")
                rows.append(f"| lomiri_{name}.jpg | {package}: {name}.jpg (© {holder}) | {licence} |")
    write_sources(out, rows, "photographs")


def desktop_fields(text: str) -> dict[str, str]:
    """The untranslated `key=value` fields of a freedesktop `.desktop` file (the first of each key)."""
    fields: dict[str, str] = {}
    for key, value in re.findall(r"^([A-Za-z0-9-]+)=(.*)$", text, re.MULTILINE):
        fields.setdefault(key, value.strip())
    return fields


def fetch_textures(out: Path) -> None:
    """Palapeli's photographs and textures and Krita's photographed patterns as JPEGs in `out`, with SOURCES.md."""
    rows = []
    with tempfile.TemporaryDirectory() as d:
        palapeli = download("palapeli-data", Path(d)) / "usr/share/palapeli"
        for desktop in sorted((palapeli / "collection").glob("*.desktop")):
            info = desktop_fields(desktop.read_text())
            src = palapeli / "collection" / info.get("Image", "")
            if not src.is_file() or "X-KDE-PluginInfo-License" not in info:
                print(f"skipped palapeli-data: {desktop.name} (no image or no licence)")
                continue
            dst = f"palapeli_{src.stem}.jpg"
            save(src, out / dst)
            rows.append(f"| {dst} | palapeli-data: collection/{src.name} (© {info.get('X-KDE-PluginInfo-Author', '?')}, "
                        f"{info.get('X-KDE-PluginInfo-Website', '')}) | {info['X-KDE-PluginInfo-License']} |")
        for name in PALAPELI_TEXTURES:
            take(palapeli / "backgrounds" / f"{name}.jpg", out, f"palapeli_{name}.jpg", rows,
                 f"palapeli-data: backgrounds/{name}.jpg", "GPL-2+ (debian/copyright)")
        krita = download("krita-data", Path(d)) / "usr/share/krita/patterns"
        for name in KRITA_PATTERNS:
            take(krita / f"{name}.png", out, f"krita_{name}.jpg", rows, f"krita-data: patterns/{name}.png",
                 "GPL-and-LGPL (debian/copyright, Files: *)")
    write_sources(out, rows, "photographs and textures")


def fetch_tuxpaint(out: Path) -> None:
    """Tux Paint's photographic templates and two starter photographs as JPEGs in `out`, with SOURCES.md."""
    rows = []
    with tempfile.TemporaryDirectory() as d:
        root = download("tuxpaint-data", Path(d)) / "usr/share/tuxpaint"
        for name in TUXPAINT_TEMPLATES:
            take(root / "templates" / f"{name}.jpg", out, f"tuxpaint_{name}.jpg", rows,
                 f"tuxpaint-data: templates/{name}.jpg", "GPL-2+ (debian/copyright, Files: *)", "Bill Kendrick")
        for name, what in TUXPAINT_STARTER_PHOTOS.items():
            take(root / "starters" / name, out, f"tuxpaint_{Path(name).stem}.jpg", rows,
                 f"tuxpaint-data: starters/{name}", "public domain (AUTHORS.txt)", what)
    write_sources(out, rows, "photographs")


def fetch_gcompris(out: Path) -> None:
    """GCompris's photographs licensed file by file (module docstring) as JPEGs in `out`, with SOURCES.md."""
    rows = []
    with tempfile.TemporaryDirectory() as d:
        root = download("gcompris-qt-data", Path(d))
        paragraphs = dep5_paragraphs((root / "usr/share/doc/gcompris-qt-data/copyright").read_text())
        for activity in GCOMPRIS_ACTIVITIES:
            for resource, blob in sorted(read_qt_resources(root / f"usr/share/gcompris-qt/rcc/{activity}.rcc").items()):
                stem, ext = resource.rsplit(".", 1) if "." in resource else (resource, "")
                if ext.lower() not in ("webp", "jpg", "jpeg", "png") or GCOMPRIS_EXCLUDE.search(stem):
                    continue
                source = stem.removeprefix("gcompris/")  # packed as .webp; debian/copyright names the source file
                found = [dep5_licence(paragraphs, f"{source}.{e}") for e in ("jpg", "jpeg", "png", "webp", ext)]
                found = next((f for f in found if f and f[0] != "*"), None)
                if found is None:
                    continue  # only the catch-all paragraph covers it
                with Image.open(io.BytesIO(blob)) as im:
                    if min(im.size) < GCOMPRIS_MIN_SIDE:
                        continue
                    im = im.convert("RGB")
                    im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
                    dst = f"gcompris_{activity}_{Path(stem).name}.jpg"
                    im.save(out / dst, quality=92)
                _, holder, licence = found
                rows.append(f"| {dst} | gcompris-qt-data: {activity}.rcc {source} (© {holder}) | {licence} (debian/copyright) |")
    write_sources(out, rows, "photographs")


def fetch_kalzium(out: Path) -> None:
    """Kalzium's photographs of laboratory equipment (module docstring) as JPEGs in `out`, with SOURCES.md."""
    rows = []
    with tempfile.TemporaryDirectory() as d:
        root = download("kalzium-data", Path(d))
        paragraphs = dep5_paragraphs((root / "usr/share/doc/kalzium-data/copyright").read_text())
        for src in sorted((root / "usr/share/kalzium/data/toolpics").glob("*")):
            if src.suffix.lower() not in (".jpg", ".jpeg", ".png") or src.name in KALZIUM_DRAWN:
                continue
            found = dep5_licence(paragraphs, f"data/toolpics/{src.name}")
            if found is None:
                print(f"skipped kalzium-data: toolpics/{src.name} (no licence in its debian/copyright)")
                continue
            pattern, holder, licence = found
            take(src, out, f"kalzium_{src.stem}.jpg", rows, f"kalzium-data: data/toolpics/{src.name}",
                 f"{licence} (debian/copyright, Files: {pattern})", f"© {holder} et al.")
    write_sources(out, rows, "photographs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="default: .cache/photos/ + train, cutouts, opencv, lomiri, textures, tuxpaint, gcompris "
                                                       "or kalzium")
    kind = ap.add_mutually_exclusive_group()
    kind.add_argument("--cutouts", action="store_true", help="the cut-out objects instead of the photographs")
    kind.add_argument("--opencv", action="store_true", help="OpenCV's sample photographs instead")
    kind.add_argument("--lomiri", action="store_true", help="the photographs among the Ubuntu Touch wallpapers instead")
    kind.add_argument("--textures", action="store_true", help="photographed surfaces (Palapeli, Krita) instead")
    kind.add_argument("--tuxpaint", action="store_true", help="Tux Paint's photographic templates instead")
    kind.add_argument("--gcompris", action="store_true", help="GCompris's photographs licensed file by file instead")
    kind.add_argument("--kalzium", action="store_true", help="Kalzium's photographs of laboratory equipment instead")
    args = ap.parse_args()
    special = {"cutouts": fetch_cutouts, "opencv": fetch_opencv, "lomiri": fetch_lomiri, "textures": fetch_textures,
               "tuxpaint": fetch_tuxpaint, "gcompris": fetch_gcompris, "kalzium": fetch_kalzium}
    chosen = next((k for k in special if getattr(args, k)), None)
    args.out = args.out or Path(".cache/photos/" + (chosen or "train"))
    args.out.mkdir(parents=True, exist_ok=True)
    if chosen:
        special[chosen](args.out)
        return
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        mate = download("mate-backgrounds", d)
        for name in MATE_NATURE:
            take(mate / "usr/share/backgrounds/mate/nature" / f"{name}.jpg", args.out, f"mate_{name}.jpg", rows,
                 f"mate-backgrounds: nature/{name}.jpg", "GPL-2+")
        plasma = download("plasma-workspace-wallpapers", d)
        for name in PLASMA_PHOTOS:
            folder = plasma / "usr/share/wallpapers" / name
            images = sorted((folder / "contents" / "images").glob("*"), key=lambda p: p.stat().st_size)
            if not images:
                continue
            licence = "see the package's debian/copyright"
            meta = folder / "metadata.json"
            if meta.is_file():
                licence = json.loads(meta.read_text()).get("KPlugin", {}).get("License", licence)
            save(images[-1], args.out / f"plasma_{name}.jpg")
            rows.append(f"| plasma_{name}.jpg | plasma-workspace-wallpapers: {name} | {licence} |")
    write_sources(args.out, rows, "photographs")


if __name__ == "__main__":
    main()
