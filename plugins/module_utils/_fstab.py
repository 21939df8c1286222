# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read and edit fstab(5) text without losing a byte of what is not edited.

Generic on purpose: the swap, disk_layout and ceph_osd_prep modules share it.

- ``FstabFile.from_text`` splits the text into lines (only ``\\n`` ends a line), keeps every line's exact
  text and classifies it: ``blank``, ``comment``, ``entry`` (3 to 6 fields, numeric dump/pass fields) or
  ``malformed``. Rendering an unedited ``FstabFile`` gives back the input byte for byte.
- Lines are "commented with a marker" as ``#<marker># <original line>`` and restored by removing exactly
  that prefix, so a module can undo its own edits and only those.
- ``spec_device_path`` turns ``UUID=``/``LABEL=``/``PARTUUID=``/``PARTLABEL=`` into the udev symlink path.
- ``write_text_atomic`` writes through a temporary file in the same folder and ``module.atomic_move``
  (which keeps the mode, owner and SELinux context of the file it replaces).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import tempfile

# fstab(5) source tags and the udev symlink folder each one names.
TAG_PATHS = {
    "UUID": "/dev/disk/by-uuid/",
    "LABEL": "/dev/disk/by-label/",
    "PARTUUID": "/dev/disk/by-partuuid/",
    "PARTLABEL": "/dev/disk/by-partlabel/",
}

_OCTAL = re.compile(r"\\([0-7]{3})")
_FIELD_SEP = re.compile(r"[ \t]+")
_NUMBER = re.compile(r"^[0-9]+$")
# A marker is used inside "#<marker># ": keep it one plain word.
_MARKER = re.compile(r"^[A-Za-z0-9_.:@+-]+\Z")


def decode_field(value):
    """Undo fstab's octal escapes (\\040 space, \\011 tab, \\012 newline, \\134 backslash)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), value)


def encode_field(value):
    """Escape a value for an fstab field (the inverse of decode_field)."""
    out = []
    for char in value:
        if char in " \t\n\\":
            out.append("\\%03o" % ord(char))
        else:
            out.append(char)
    return "".join(out)


def spec_device_path(spec):
    """Device path for an fstab source field: tags become /dev/disk/by-*/ paths, paths stay as written.

    Returns (kind, path): kind is the tag name (``UUID`` ...) or ``path``.
    """
    spec = decode_field(spec)
    tag, sep, value = spec.partition("=")
    if sep and tag in TAG_PATHS:
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return tag, TAG_PATHS[tag] + value.replace("/", "\\x2f")
    return "path", spec


class FstabError(Exception):
    """A problem with fstab text; names the line."""

    def __init__(self, msg, lineno=None, text=None):
        super(FstabError, self).__init__(msg)
        self.lineno = lineno
        self.text = text


def validate_marker(marker):
    """Raise ValueError unless marker can be used in a '#<marker># ' prefix."""
    if not marker or not _MARKER.match(marker):
        raise ValueError(
            "marker %r is not usable: use letters, digits and . _ - : @ + only (no spaces or '#')" % (marker,)
        )
    return marker


def marker_prefix(marker):
    """The text put in front of a line this module comments: '#<marker># '."""
    return "#%s# " % validate_marker(marker)


class FstabEntry(object):
    """One parsed fstab entry (fields decoded only where asked)."""

    def __init__(self, fields):
        self.fields = list(fields)
        self.spec = fields[0]
        self.file = fields[1]
        self.vfstype = fields[2]
        self.options = fields[3] if len(fields) > 3 else "defaults"
        self.freq = int(fields[4]) if len(fields) > 4 else 0
        self.passno = int(fields[5]) if len(fields) > 5 else 0

    @property
    def option_list(self):
        return [opt for opt in self.options.split(",") if opt]

    def has_option(self, name):
        return name in self.option_list

    def to_dict(self):
        return {
            "spec": decode_field(self.spec),
            "file": decode_field(self.file),
            "vfstype": self.vfstype,
            "options": self.options,
            "freq": self.freq,
            "passno": self.passno,
        }


class FstabLine(object):
    """One line: its number (1-based), exact text (without the newline) and what it is."""

    BLANK = "blank"
    COMMENT = "comment"
    ENTRY = "entry"
    MALFORMED = "malformed"

    def __init__(self, lineno, text, newline):
        self.lineno = lineno
        self.text = text
        self.newline = newline
        self.entry = None
        self.error = None
        self.kind, self.fields = self._classify(text)

    def _classify(self, text):
        body = text.rstrip("\r").strip(" \t")
        if not body:
            return self.BLANK, []
        if body.startswith("#"):
            return self.COMMENT, []
        fields = _FIELD_SEP.split(body)
        if len(fields) < 3:
            self.error = "%d field(s), fstab needs at least 3 (source, mount point, type)" % len(fields)
            return self.MALFORMED, fields
        if len(fields) > 6:
            self.error = "%d fields, fstab has at most 6" % len(fields)
            return self.MALFORMED, fields
        for name, value in zip(("dump", "pass"), fields[4:6]):
            if not _NUMBER.match(value):
                self.error = "%s field %r is not a number" % (name, value)
                return self.MALFORMED, fields
        self.entry = FstabEntry(fields)
        return self.ENTRY, fields

    @property
    def raw(self):
        return self.text + self.newline

    def mentions(self, word):
        """True when one of the line's whitespace-separated fields is exactly word."""
        return word in self.fields

    def with_text(self, text):
        return FstabLine(self.lineno, text, self.newline)


class FstabFile(object):
    """The lines of an fstab, editable line by line, rendered back unchanged where not edited."""

    def __init__(self, lines):
        self.lines = list(lines)

    @classmethod
    def from_text(cls, text):
        lines = []
        if text:
            parts = text.split("\n")
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                if last and part == "":
                    break
                lines.append(FstabLine(index + 1, part, "" if last else "\n"))
        return cls(lines)

    def render(self):
        return "".join(line.raw for line in self.lines)

    def entries(self, vfstype=None):
        """Every well-formed entry line, optionally only those of one type."""
        return [
            line
            for line in self.lines
            if line.kind == FstabLine.ENTRY and (vfstype is None or line.entry.vfstype == vfstype)
        ]

    def malformed(self):
        return [line for line in self.lines if line.kind == FstabLine.MALFORMED]

    def commented_by(self, marker):
        """Lines commented with marker: list of (line, original text)."""
        prefix = marker_prefix(marker)
        return [(line, line.text[len(prefix):]) for line in self.lines if line.text.startswith(prefix)]

    def replace(self, lineno, text):
        """A new FstabFile with line lineno's text replaced (its newline kept)."""
        lines = [line.with_text(text) if line.lineno == lineno else line for line in self.lines]
        return FstabFile(lines)

    def append(self, text):
        """A new FstabFile with a line added at the end; a last line without a newline gets one first."""
        lines = list(self.lines)
        if lines and not lines[-1].newline:
            lines[-1] = FstabLine(lines[-1].lineno, lines[-1].text, "\n")
        lines.append(FstabLine(len(lines) + 1, text, "\n"))
        return FstabFile(lines)


def comment_text(text, marker):
    """Line text commented with marker; the original stays intact after the prefix."""
    return marker_prefix(marker) + text


def uncomment_text(text, marker):
    """The original line text if text was commented with marker, else None."""
    prefix = marker_prefix(marker)
    if text.startswith(prefix):
        return text[len(prefix):]
    return None


def read_text(path):
    """The file's text (undecodable bytes kept through surrogateescape), or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            return None
        raise FstabError("cannot read %s: %s" % (path, exc))
    return data.decode("utf-8", "surrogateescape")


def write_text_atomic(module, path, text, mode=None):
    """Replace path with text atomically, keeping its mode and owner; a new file gets ``mode`` (else 0600)."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(text.encode("utf-8", "surrogateescape"))
        if os.path.exists(path):
            info = os.stat(path)
            os.chmod(tmp, info.st_mode & 0o7777)
            try:
                os.chown(tmp, info.st_uid, info.st_gid)
            except OSError:  # not root: atomic_move keeps what it can
                pass
        elif mode is not None:
            os.chmod(tmp, mode)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
