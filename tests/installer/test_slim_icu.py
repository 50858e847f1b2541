"""installer/slim_icu.py: the ICU common data package is rewritten with a subset, and ICU still works."""

from __future__ import annotations

import importlib.util
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

INSTALLER = Path(__file__).resolve().parents[2] / "installer"


def _load():
    spec = importlib.util.spec_from_file_location("slim_icu", INSTALLER / "slim_icu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["slim_icu"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


slim_icu = _load()


def _header() -> bytes:
    # MappedData (headerSize, magic) + UDataInfo (size, reserved, LE, ASCII, sizeofUChar, reserved,
    # "CmnD", formatVersion 1, dataVersion 3), padded to 32 bytes.
    info = struct.pack("<HHBBBB4s4s4s", 20, 0, 0, 0, 2, 0, b"CmnD", b"\x01\0\0\0", b"\x03\0\0\0")
    return (struct.pack("<HBB", 32, 0xDA, 0x27) + info).ljust(32, b"\0")


@pytest.mark.parametrize(
    "name, size, kept",
    [
        ("icudt73l/uprops.icu", 140_000, True),
        ("icudt73l/nfkc.nrm", 30_000, True),
        ("icudt73l/root.res", 9_000, True),
        ("icudt73l/fr_CA.res", 3_000, True),
        ("icudt73l/zh_Hant_TW.res", 3_000, False),
        ("icudt73l/coll/ucadata.icu", 570_000, True),
        ("icudt73l/coll/de.res", 1_000, True),
        ("icudt73l/coll/zh.res", 713_000, False),
        ("icudt73l/coll/pool.res", 1_000, True),
        ("icudt73l/curr/res_index.res", 1_000, True),
        ("icudt73l/ibm-5348_P100-1997.cnv", 1_500, True),  # windows-1252
        ("icudt73l/euc-tw-2014.cnv", 546_000, False),
        ("icudt73l/brkitr/cjdict.dict", 2_000_000, False),
        ("icudt73l/brkitr/word.brk", 20_000, True),
        ("icudt73l/translit/root.res", 1_000_000, False),
    ],
)
def test_items_kept_and_dropped(name, size, kept):
    assert slim_icu.keep(name, size) is kept


def test_package_round_trip_keeps_items_sorted_and_aligned():
    items = [("icudt73l/b.res", b"B" * 5), ("icudt73l/a.icu", b"A" * 40), ("icudt73l/coll/c.res", b"C" * 17)]
    blob = slim_icu.to_bytes(slim_icu.Package(_header(), items))
    package = slim_icu.parse(blob)
    assert [name for name, _ in package.items] == sorted(name for name, _ in items)
    # Each item comes back with its bytes, padded to the 16-byte alignment ICU expects.
    for name, data in package.items:
        original = dict(items)[name]
        assert data[:len(original)] == original and set(data[len(original):]) <= {0} and len(data) % 16 == 0
    (count,) = struct.unpack_from("<I", blob, 32)
    offsets = [struct.unpack_from("<II", blob, 36 + 8 * i)[1] for i in range(count)]
    assert all(offset % 16 == 0 for offset in offsets)


def test_not_a_package_is_a_clear_error():
    with pytest.raises(slim_icu.IcuDataError, match="no ICU data header"):
        slim_icu.parse(b"\0" * 64)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux PySide6 wheels carry ICU; Windows' do not")
def test_slim_library_loads_and_icu_still_collates_and_converts(tmp_path):
    if not (shutil.which("cc") or shutil.which("gcc")) or not shutil.which("readelf"):
        pytest.skip("needs a C compiler and readelf")
    qt_lib = Path(importlib.util.find_spec("PySide6").origin).parent / "Qt" / "lib"
    found = sorted(qt_lib.glob("libicudata.so.*"))
    if not found:
        pytest.skip("this PySide6 has no ICU")
    version = found[0].name.rsplit(".", 1)[-1]
    for library in qt_lib.glob(f"libicu*.so.{version}"):
        shutil.copy2(library, tmp_path / library.name)
    before, after = slim_icu.slim(tmp_path / found[0].name)
    assert after < before / 3
    # A fresh process (this one may have Qt's own ICU loaded already): the copies in
    # tmp_path find each other through their $ORIGIN runpath.
    script = f"""
import ctypes, sys
folder, v = {str(tmp_path)!r}, {version!r}
uc = ctypes.CDLL(folder + "/libicuuc.so." + v, mode=ctypes.RTLD_GLOBAL)
i18n = ctypes.CDLL(folder + "/libicui18n.so." + v)
def call(lib, name, *args):
    st = ctypes.c_int(0)
    fn = getattr(lib, name + "_" + v)
    fn.restype = ctypes.c_void_p
    handle = fn(*args, ctypes.byref(st))
    return st.value, handle is not None
st = ctypes.c_int(0)
getattr(uc, "u_init_" + v)(ctypes.byref(st))
print("init", "-", st.value, True)
for loc in (b"fr", b"de", b"ja"):
    print("coll", loc.decode(), *call(i18n, "ucol_open", loc))
for name in (b"UTF-8", b"windows-1252", b"Shift_JIS"):
    print("cnv", name.decode(), *call(uc, "ucnv_open", name))
print("nfc", "-", *call(uc, "unorm2_getNFCInstance"))
"""
    out = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = {" ".join(line.split()[:2]): line.split()[2:] for line in out.stdout.splitlines()}
    assert lines["init -"] == ["0", "True"]
    # Kept languages collate with their own rules (-127: U_USING_DEFAULT_WARNING would mean root).
    assert lines["coll fr"][1] == "True" and lines["coll de"][1] == "True"
    # A dropped language falls back to the root collation: still a collator, with a warning.
    assert lines["coll ja"] == ["-127", "True"]
    assert lines["cnv UTF-8"] == ["0", "True"] and lines["cnv windows-1252"][1] == "True"
    assert lines["cnv Shift_JIS"][1] == "False"  # multi-byte tables are dropped
    assert lines["nfc -"] == ["0", "True"]
