# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the generic fstab reader/editor."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
from ansible_collections.gpulab.cluster.plugins.module_utils import _fstab
from ansible_collections.gpulab.cluster.plugins.module_utils._fstab import FstabFile, FstabLine

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "modules", "fixtures", "swap")
FSTABS = ["fstab_ubuntu2204_swapimg", "fstab_ubuntu2204_partition", "fstab_debian12", "fstab_mixed_forms",
          "fstab_unparsable_swap"]


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


@pytest.mark.parametrize("name", FSTABS)
def test_render_gives_back_the_input(name):
    text = fixture(name)
    assert FstabFile.from_text(text).render() == text


@pytest.mark.parametrize(
    "text",
    ["", "\n", "a b c", "a b c\n\n\n", "x\r\ny z w\r\n", "  \t\n#c\n", "only one line without newline"],
)
def test_render_round_trips_odd_texts(text):
    assert FstabFile.from_text(text).render() == text


def test_lines_are_classified():
    fstab = FstabFile.from_text(fixture("fstab_mixed_forms"))
    kinds = [line.kind for line in fstab.lines]
    assert kinds == [
        "comment", "entry", "entry", "entry", "entry", "entry", "entry", "comment", "malformed", "entry", "entry",
    ]
    assert [line.lineno for line in fstab.entries("swap")] == [2, 3, 4, 5, 6, 7]
    assert [line.lineno for line in fstab.entries()] == [2, 3, 4, 5, 6, 7, 10, 11]
    assert fstab.lines[-1].newline == ""
    assert fstab.malformed()[0].lineno == 9


@pytest.mark.parametrize(
    "text, error",
    [
        ("/swapfile swap", "2 field(s), fstab needs at least 3 (source, mount point, type)"),
        ("a b c d 0 0 extra", "7 fields, fstab has at most 6"),
        ("a b swap sw x 0", "dump field 'x' is not a number"),
        ("a b swap sw 0 -1", "pass field '-1' is not a number"),
    ],
)
def test_malformed_lines_say_why(text, error):
    line = FstabLine(1, text, "\n")
    assert line.kind == FstabLine.MALFORMED
    assert line.error == error
    assert line.entry is None


def test_entry_fields_and_defaults():
    entry = FstabLine(1, "PARTLABEL=swap\\040one none swap", "").entry
    assert entry.options == "defaults" and entry.freq == 0 and entry.passno == 0
    assert entry.to_dict() == {
        "spec": "PARTLABEL=swap one",
        "file": "none",
        "vfstype": "swap",
        "options": "defaults",
        "freq": 0,
        "passno": 0,
    }
    entry = FstabLine(1, "/dev/sdb1 /data ext4 defaults,,noatime 1 2\r", "\n").entry
    assert entry.option_list == ["defaults", "noatime"]
    assert entry.has_option("noatime") and not entry.has_option("noauto")
    assert (entry.freq, entry.passno) == (1, 2)


def test_mentions_is_a_whole_field_match():
    assert FstabLine(1, "x swap", "").mentions("swap")
    assert not FstabLine(1, "/swapfile x", "").mentions("swap")


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("UUID=9b5c1f5e-2a71", ("UUID", "/dev/disk/by-uuid/9b5c1f5e-2a71")),
        ('UUID="9b5c"', ("UUID", "/dev/disk/by-uuid/9b5c")),
        ("LABEL='swap'", ("LABEL", "/dev/disk/by-label/swap")),
        ("LABEL=a/b", ("LABEL", "/dev/disk/by-label/a\\x2fb")),
        ("LABEL=my\\040swap", ("LABEL", "/dev/disk/by-label/my swap")),
        ("PARTUUID=3e9f", ("PARTUUID", "/dev/disk/by-partuuid/3e9f")),
        ("PARTLABEL=swap", ("PARTLABEL", "/dev/disk/by-partlabel/swap")),
        ("/swap.img", ("path", "/swap.img")),
        ("/var/swap\\040files/x", ("path", "/var/swap files/x")),
        ("FOO=bar", ("path", "FOO=bar")),
        ("UUID=", ("UUID", "/dev/disk/by-uuid/")),
    ],
)
def test_spec_device_path(spec, expected):
    assert _fstab.spec_device_path(spec) == expected


def test_field_escapes_round_trip():
    value = "a b\tc\nd\\e"
    assert _fstab.encode_field(value) == "a\\040b\\011c\\012d\\134e"
    assert _fstab.decode_field(_fstab.encode_field(value)) == value


def test_marker_comment_and_uncomment():
    text = "\t/swap.img none swap sw 0 0"
    commented = _fstab.comment_text(text, "gpulab.cluster.swap")
    assert commented == "#gpulab.cluster.swap# \t/swap.img none swap sw 0 0"
    assert _fstab.uncomment_text(commented, "gpulab.cluster.swap") == text
    assert _fstab.uncomment_text(commented, "other") is None
    assert _fstab.uncomment_text("#/swap.img none swap sw 0 0", "gpulab.cluster.swap") is None
    fstab = FstabFile.from_text("a b c\n" + commented + "\n#other# x y swap\n")
    assert [(line.lineno, original) for line, original in fstab.commented_by("gpulab.cluster.swap")] == [(2, text)]


@pytest.mark.parametrize("marker", ["", "a b", "a#b", "x\n", None])
def test_bad_markers(marker):
    with pytest.raises(ValueError):
        _fstab.marker_prefix(marker)


def test_replace_keeps_other_lines_and_newlines():
    fstab = FstabFile.from_text("a b c\nd e swap\r\nlast x y")
    new = fstab.replace(2, "#d e swap\r")
    assert new.render() == "a b c\n#d e swap\r\nlast x y"
    assert fstab.render() == "a b c\nd e swap\r\nlast x y"  # the original is not changed
    assert new.lines[1].kind == FstabLine.COMMENT
    assert new.replace(3, "z").render() == "a b c\n#d e swap\r\nz"


def test_read_text(tmp_path):
    assert _fstab.read_text(str(tmp_path / "missing")) is None
    path = tmp_path / "fstab"
    path.write_bytes(b"odd \xff bytes\n")
    text = _fstab.read_text(str(path))
    assert text.encode("utf-8", "surrogateescape") == b"odd \xff bytes\n"
    with pytest.raises(_fstab.FstabError) as err:
        _fstab.read_text(str(tmp_path))
    assert str(err.value).startswith("cannot read %s" % tmp_path)


class FakeModule(object):
    def __init__(self):
        self.moves = []

    def atomic_move(self, src, dest):
        self.moves.append((src, dest))
        os.rename(src, dest)


def test_write_text_atomic_keeps_mode_and_bytes(tmp_path):
    path = tmp_path / "fstab"
    path.write_bytes(b"old\n")
    os.chmod(str(path), 0o640)
    module = FakeModule()
    _fstab.write_text_atomic(module, str(path), "new \udcff\n")
    assert path.read_bytes() == b"new \xff\n"
    assert os.stat(str(path)).st_mode & 0o777 == 0o640
    assert module.moves[0][0].startswith(str(tmp_path / ".fstab."))
    assert os.listdir(str(tmp_path)) == ["fstab"]


def test_write_text_atomic_new_file_and_cleanup(tmp_path):
    module = FakeModule()
    _fstab.write_text_atomic(module, str(tmp_path / "new"), "x\n")
    assert (tmp_path / "new").read_text() == "x\n"

    class Broken(object):
        def atomic_move(self, src, dest):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        _fstab.write_text_atomic(Broken(), str(tmp_path / "new"), "y\n")
    assert sorted(os.listdir(str(tmp_path))) == ["new"]


def test_write_text_atomic_without_chown_rights(tmp_path, monkeypatch):
    path = tmp_path / "fstab"
    path.write_text("old\n")

    def refuse(*args):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", refuse)
    _fstab.write_text_atomic(FakeModule(), str(path), "new\n")
    assert path.read_text() == "new\n"
