"""Slim the ICU data library that PySide6's Linux wheels ship with Qt (32 MB -> ~5 MB).

On Linux, ``libQt6Core`` needs ``libicudata.so.NN``: one 32 MB symbol (``icudtNN_dat``)
holding ICU's *common data package*, every locale of CLDR, every legacy character-set
converter, the CJK/Thai/Khmer word dictionaries and the transliterators. Qt uses ICU for
collation (``QCollator``), legacy codecs and time-zone display names; ROSACE needs none of
the heavy parts. (The Windows wheels carry no ICU at all: Qt uses Windows' own.)

ICU's documented way to do this is its Data Build Tool with a filter file, which rebuilds
the data from ICU's sources; neither the sources nor that tool are available to a PyInstaller
build. The package format, though, is small and stable (``udata.cpp``/``pkgdata``), so this
module rewrites the package with a subset of its items and links it into a replacement
library with the same soname and symbol (a C compiler is needed; without one the build keeps
the full library). Kept:

* everything at the top level that is not a locale bundle or a converter table: Unicode
  properties and names, normalisation (NFC/NFKC, UTS #46), the converter alias table,
  likely subtags, plural rules, time-zone rules (``zoneinfo64``, ``metaZones``...);
* the single-byte converter tables (Windows-125x, ISO-8859-x, DOS code pages: 0.5 MB);
* the root locale and the languages of ROSACE's users (``LANGUAGES``), in every category;
* the root collation (``ucadata.icu``, ``coll/root.res``) and break-iterator rules.

Dropped: the other locales (ICU falls back to root: English-like formats and collation),
the multi-byte converter tables (CJK, EBCDIC double-byte), the dictionaries for word
breaking in Chinese/Japanese/Thai/Khmer/Lao/Burmese, and transliteration.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Languages whose locale data stays (ARAS/BeSS observers' languages), plus the root.
LANGUAGES = ("root", "en", "fr", "de", "es", "it", "nl", "pt")
#: A locale bundle's file name: ``fr.res``, ``en_GB.res``, ``sr_Latn_RS.res``, ``es_419.res``.
_LOCALE = re.compile(r"^(?P<lang>[a-z]{2,3}|root)(_[A-Za-z0-9_]+)?\.res$")
#: Single-byte converter tables are 1-16 kB; the multi-byte (CJK, EBCDIC DBCS) ones 100-550 kB.
_SINGLE_BYTE_TABLE = 16_000
_ALIGN = 16  # ICU aligns each item of a common data package on 16 bytes


class IcuDataError(ValueError):
    """The library or its data package is not what this module knows how to rewrite."""


@dataclass
class Package:
    """An ICU common data package: its header (copied as it is) and its named items."""

    header: bytes
    items: list[tuple[str, bytes]]


def keep(name: str, size: int = 0) -> bool:
    """True if the item ``name`` (``icudt73l/coll/fr.res``) of ``size`` bytes stays."""
    parts = name.split("/")[1:]
    if not parts:
        return True
    leaf = parts[-1]
    if leaf.endswith(".cnv"):
        return size <= _SINGLE_BYTE_TABLE  # Windows-125x, ISO-8859-x, DOS code pages stay
    if leaf.endswith(".dict") or parts[0] == "translit":
        return False
    locale = _LOCALE.match(leaf)
    if locale is None:
        return True  # data that is not per locale: properties, rules, indexes, pools
    if leaf in ("res_index.res", "pool.res"):
        return True
    return locale.group("lang") in LANGUAGES


def parse(blob: bytes, offset: int = 0) -> Package:
    """Read the common data package that starts at ``offset`` of ``blob``."""
    if len(blob) < offset + 32:
        raise IcuDataError("too short for an ICU data header")
    header_size, magic1, magic2 = struct.unpack_from("<HBB", blob, offset)
    if (magic1, magic2) != (0xDA, 0x27):
        raise IcuDataError(f"no ICU data header at offset {offset}")
    # UDataInfo: size(2) reserved(2) bigEndian(1) charset(1) sizeofUChar(1) reserved(1) format(4)
    big_endian = blob[offset + 8]
    data_format = blob[offset + 12:offset + 16]
    if big_endian or data_format != b"CmnD":
        raise IcuDataError(f"not a little-endian common data package (format {data_format!r})")
    toc = offset + header_size
    (count,) = struct.unpack_from("<I", blob, toc)
    entries = [struct.unpack_from("<II", blob, toc + 4 + 8 * i) for i in range(count)]
    if not entries:
        return Package(blob[offset:toc], [])
    # Items lie one after another; the last one ends where the package ends. ICU items
    # start with their own header whose size we cannot know without reading each format,
    # so the end of the last item is given by the caller's blob (the symbol's size).
    items = []
    for i, (name_offset, data_offset) in enumerate(entries):
        end = blob.index(b"\0", toc + name_offset)
        name = blob[toc + name_offset:end].decode("ascii")
        stop = entries[i + 1][1] if i + 1 < count else len(blob) - toc
        items.append((name, blob[toc + data_offset:toc + stop]))
    return Package(blob[offset:toc], items)


def to_bytes(package: Package) -> bytes:
    """Serialise a package: header, table of contents, names, then 16-byte aligned items."""
    items = sorted(package.items, key=lambda item: item[0].encode("ascii"))  # ICU binary-searches names
    count = len(items)
    names = b"".join(name.encode("ascii") + b"\0" for name, _ in items)
    toc_size = 4 + 8 * count
    name_offsets, position = [], toc_size
    for name, _ in items:
        name_offsets.append(position)
        position += len(name) + 1
    data_start = -(-position // _ALIGN) * _ALIGN
    out = bytearray(package.header)
    if len(out) % _ALIGN:
        raise IcuDataError("header size is not a multiple of 16")
    body = bytearray(struct.pack("<I", count))
    data = bytearray()
    data_offsets = []
    for _, item in items:
        data_offsets.append(data_start + len(data))
        data += item
        data += b"\0" * (-len(data) % _ALIGN)
    for name_offset, data_offset in zip(name_offsets, data_offsets):
        body += struct.pack("<II", name_offset, data_offset)
    body += names
    body += b"\0" * (data_start - len(body))
    return bytes(out + body + data)


def _dynamic_symbol(library: Path) -> tuple[str, int, int]:
    """Return (name, file offset, size) of the library's ``icudtNN_dat`` symbol."""
    readelf = shutil.which("readelf")
    if readelf is None:
        raise IcuDataError("readelf not found")
    symbols = subprocess.run([readelf, "-W", "--dyn-syms", str(library)], capture_output=True, text=True, check=True).stdout
    match = re.search(r":\s+([0-9a-f]+)\s+(\d+|0x[0-9a-f]+)\s+OBJECT\s+GLOBAL\s+\S+\s+\d+\s+(icudt\d+_dat)\b", symbols)
    if match is None:
        raise IcuDataError(f"no icudtNN_dat symbol in {library.name}")
    address, size = int(match.group(1), 16), int(match.group(2), 0)
    # Map the symbol's address to a file offset through the program headers (LOAD segments).
    headers = subprocess.run([readelf, "-W", "-l", str(library)], capture_output=True, text=True, check=True).stdout
    for line in headers.splitlines():
        fields = line.split()
        if fields[:1] == ["LOAD"]:
            file_offset, vaddr, filesz = int(fields[1], 16), int(fields[2], 16), int(fields[4], 16)
            if vaddr <= address < vaddr + filesz:
                return match.group(3), file_offset + address - vaddr, size
    raise IcuDataError(f"the symbol of {library.name} is not in a loaded segment")


def _soname(library: Path) -> str:
    out = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"\(SONAME\).*\[(.+)\]", out)
    return match.group(1) if match else library.name


def build_library(data: bytes, symbol: str, soname: str, output: Path, compiler: str) -> None:
    """Link ``data`` as the exported read-only object ``symbol`` of a shared library."""
    with tempfile.TemporaryDirectory() as tmp:
        blob = Path(tmp) / "icudata.bin"
        blob.write_bytes(data)
        source = Path(tmp) / "icudata.S"
        source.write_text(
            f'    .section .rodata\n    .globl {symbol}\n    .type {symbol}, @object\n    .balign 16\n'
            f'{symbol}:\n    .incbin "{blob.as_posix()}"\n    .size {symbol}, . - {symbol}\n'
            '    .section .note.GNU-stack,"",@progbits\n'
        )
        subprocess.run([compiler, "-shared", "-nostdlib", "-Wl,-soname," + soname, "-Wl,-z,noexecstack",
                        "-o", str(output), str(source)], check=True, capture_output=True, text=True)


def slim(library: Path, compiler: str | None = None) -> tuple[int, int]:
    """Replace ``library`` (``libicudata.so.NN``) by a slim one; return (size before, after).

    The original is left untouched if anything fails (IcuDataError or a failed link)."""
    compiler = compiler or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise IcuDataError("no C compiler (cc/gcc) to link the slim library")
    before = library.stat().st_size
    symbol, offset, size = _dynamic_symbol(library)
    blob = library.read_bytes()[offset:offset + size]
    package = parse(blob)
    slim_package = Package(package.header, [item for item in package.items if keep(item[0], len(item[1]))])
    candidate = library.with_name(library.name + ".slim")
    try:
        build_library(to_bytes(slim_package), symbol, _soname(library), candidate, compiler)
    except subprocess.CalledProcessError as exc:
        candidate.unlink(missing_ok=True)
        raise IcuDataError(f"linking the slim ICU data failed: {exc.stderr.strip()[:500]}") from None
    candidate.replace(library)
    return before, library.stat().st_size


def main(argv: list[str] | None = None) -> int:
    """``python installer/slim_icu.py path/to/libicudata.so.73``: slim it in place."""
    import argparse

    parser = argparse.ArgumentParser(description="Slim an ICU data library (see the module docstring).")
    parser.add_argument("library", type=Path)
    args = parser.parse_args(argv)
    try:
        before, after = slim(args.library)
    except (IcuDataError, OSError) as exc:
        print(f"slim_icu: {args.library}: {exc}")
        return 1
    print(f"slim_icu: {args.library.name} {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
