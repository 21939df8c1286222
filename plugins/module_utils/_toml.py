# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small TOML 1.0 reader, and an editor that changes one value and keeps the rest of the text as it is.

Made for containerd's config.toml and CRI-O's crio.conf and drop-ins, on managed nodes with Python 3.8
(no tomllib there). ``loads`` gives nested dicts; dates and times stay as their source text.
``TomlDocument`` edits the text in place: comments, blank lines, ordering and quoting stay byte for byte;
every edit is parsed again and checked, so it never hands back invalid TOML.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import math
import re

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_BASIC = re.compile(r'[^"\\\x00-\x08\x0a-\x1f\x7f]+')
_ML_BASIC = re.compile(r'[^"\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+')
_ML_CONTINUE = re.compile(r"\\[ \t]*\r?\n[ \t\r\n]*")
_LITERAL = re.compile(r"'([^'\x00-\x08\x0a-\x1f\x7f]*)'")
_HEXES = re.compile(r"[0-9A-Fa-f]+")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?)?|\d{2}:\d{2}:\d{2}(?:\.\d+)?")
_NUMBER = re.compile(
    r"[+-]?(?:inf|nan)|0x[0-9A-Fa-f](?:_?[0-9A-Fa-f])*|0o[0-7](?:_?[0-7])*|0b[01](?:_?[01])*"
    r"|[+-]?(?:0|[1-9](?:_?[0-9])*)(?:\.[0-9](?:_?[0-9])*)?(?:[eE][+-]?[0-9](?:_?[0-9])*)?"
)
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_DUMP_ESCAPES = dict((v, "\\" + k) for k, v in _ESCAPES.items())


class TomlError(Exception):
    """Invalid TOML, or an edit that cannot be made; ``line`` is 1-based (None when no line applies)."""

    def __init__(self, message, line=None):
        self.message = message
        self.line = line
        super(TomlError, self).__init__(message if line is None else "line %d: %s" % (line, message))


def _fmt_key(key):
    return key if _BARE.fullmatch(key) else _dump_str(key)


def _dotted(path):
    return ".".join(_fmt_key(k) for k in path if isinstance(k, str))


def _dump_str(text):
    out = []
    for char in text:
        if char in _DUMP_ESCAPES:
            out.append(_DUMP_ESCAPES[char])
        elif char < " " or char == "\x7f":
            out.append("\\u%04x" % ord(char))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def dumps_value(value):
    """The TOML literal of a str, bool, int, float, list/tuple or dict (an inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _dump_str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(dumps_value(v) for v in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TomlError("table keys must be strings, not %r" % (key,))
        return "{" + ", ".join("%s = %s" % (_fmt_key(k), dumps_value(v)) for k, v in value.items()) + "}"
    raise TomlError("cannot write %s as TOML" % type(value).__name__)


def _same(a, b):
    """Equal as TOML values: the same types (true is not 1, 1 is not 1.0), lists and tuples alike."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    if type(a) is not type(b):
        return False
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def _plain(value):
    """value with tuples turned into lists, as loads() would give it back."""
    if isinstance(value, dict):
        return dict((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Entry(object):
    """Where a key/value sits in the text: value span, line span, section (index in headers, -1 = root)."""

    def __init__(self, path, nkeys, section, inline, kstart, vstart, vend, lstart):
        self.path, self.nkeys, self.section, self.inline = path, nkeys, section, inline
        self.kstart, self.vstart, self.vend, self.lstart, self.lend = kstart, vstart, vend, lstart, vend


class _Header(object):
    def __init__(self, path, array, lstart, hstart):
        self.path, self.array, self.lstart, self.hstart, self.lend = path, array, lstart, hstart, hstart


class _Parser(object):
    def __init__(self, text):
        if not isinstance(text, str):
            raise TomlError("TOML text must be a str, not %s" % type(text).__name__)
        self.s, self.i, self.data = text, 0, {}
        self.headers, self.entries = [], []
        self.explicit, self.frozen, self.pending = set(), set(), []
        self.dotted = {}  # table made by a dotted key -> index of the section holding that key
        self.section, self.cur, self.table = -1, (), self.data

    def err(self, message, pos=None):
        raise TomlError(message, self.s.count("\n", 0, self.i if pos is None else pos) + 1)

    def run(self):
        s = self.s
        while True:
            self.skip_ws()
            if self.i >= len(s):
                return self
            if s[self.i] in "#\r\n":
                self.eol()
                continue
            lstart = s.rfind("\n", 0, self.i) + 1
            if s[self.i] == "[":
                self.header(lstart)
            else:
                entry = self.keyval(self.cur, self.table, lstart)
                self.eol()
                entry.lend = self.i

    def skip_ws(self):
        while self.s.startswith((" ", "\t"), self.i):
            self.i += 1

    def newline(self):
        """step over one newline; False when there is none here."""
        for newline in ("\n", "\r\n"):
            if self.s.startswith(newline, self.i):
                self.i += len(newline)
                return True
        return False

    def comment(self):
        if self.s.startswith("#", self.i):
            end = self.s.find("\n", self.i)
            self.i = len(self.s) if end < 0 else end

    def skip_blank(self):
        """whitespace, comments and newlines, as allowed inside arrays."""
        while True:
            self.skip_ws()
            self.comment()
            if not self.newline():
                return

    def eol(self):
        self.skip_ws()
        self.comment()
        if not self.newline() and self.i < len(self.s):
            self.err("expected a newline or a comment, found %r" % self.s[self.i])

    def key(self):
        s, parts = self.s, []
        while True:
            self.skip_ws()
            if s.startswith('"', self.i) and not s.startswith('"""', self.i):
                parts.append(self.basic())
            elif s.startswith("'", self.i) and not s.startswith("'''", self.i):
                parts.append(self.literal())
            else:
                match = _BARE.match(s, self.i)
                if not match:
                    self.err("expected a key")
                parts.append(match.group())
                self.i = match.end()
            self.skip_ws()
            if not s.startswith(".", self.i):
                return tuple(parts)
            self.i += 1

    def header(self, lstart):
        s, pos = self.s, self.i
        array = s.startswith("[[", pos)
        self.i += 2 if array else 1
        path = self.key()
        close = "]]" if array else "]"
        if not s.startswith(close, self.i):
            self.err("expected %r to close the table header" % close)
        self.i += len(close)
        self.explicit.update(self.pending)
        self.pending = []
        for n in range(1, len(path) + 1):
            if path[:n] in self.frozen:
                self.err("key %s redefined as a table" % _dotted(path[:n]), pos)
        if array:
            parent = self.nest(path[:-1], pos)
            if path[-1] not in parent:
                parent[path[-1]] = []
            elif not isinstance(parent[path[-1]], list):
                self.err("key %s redefined as an array of tables" % _dotted(path), pos)
            parent[path[-1]].append({})
            self.table = parent[path[-1]][-1]
            # a new element: the tables of the previous one may be declared again
            self.explicit = set(p for p in self.explicit if p[:len(path)] != path)
            self.frozen = set(p for p in self.frozen if p[:len(path)] != path)
        else:
            if path in self.explicit:
                self.err("table %s defined twice" % _dotted(path), pos)
            self.table = self.nest(path, pos)
        self.explicit.add(path)
        self.cur, self.section = path, len(self.headers)
        self.headers.append(_Header(path, array, lstart, pos))
        self.eol()
        self.headers[-1].lend = self.i

    def nest(self, path, pos):
        table = self.data
        for n, key in enumerate(path):
            table = table.setdefault(key, {})
            if isinstance(table, list):
                table = table[-1]
            if not isinstance(table, dict):
                self.err("key %s redefined as a table" % _dotted(path[:n + 1]), pos)
        return table

    def keyval(self, base, table, lstart=None):
        """key = value into table (at path base); lstart None: inside an inline table."""
        kstart = self.i
        keys = self.key()
        if not self.s.startswith("=", self.i):
            self.err("expected '=' after the key")
        self.i += 1
        self.skip_ws()
        vstart = self.i
        path = base + keys
        value = self.value(path)
        for n, key in enumerate(keys[:-1]):
            sub = base + keys[:n + 1]
            if sub in self.explicit or sub in self.frozen:
                self.err("key %s redefined" % _dotted(sub), kstart)
            if key not in table:
                table[key] = {}
                if lstart is not None:
                    self.dotted[sub] = self.section
            table = table[key]
            if not isinstance(table, dict):
                self.err("key %s redefined as a table" % _dotted(sub), kstart)
            self.pending.append(sub)
        if keys[-1] in table:
            self.err("duplicate key %s" % _dotted(path), kstart)
        table[keys[-1]] = value
        if isinstance(value, (dict, list)):
            self.frozen.add(path)
        entry = _Entry(path, len(keys), self.section, lstart is None, kstart, vstart, self.i, lstart)
        if all(isinstance(k, str) for k in base):
            self.entries.append(entry)
        return entry

    def value(self, path):
        s, i = self.s, self.i
        if s.startswith('"""', i):
            return self.basic(multi=True)
        if s.startswith("'''", i):
            return self.ml_literal()
        if s.startswith('"', i):
            return self.basic()
        if s.startswith("'", i):
            return self.literal()
        if s.startswith("[", i):
            return self.array()
        if s.startswith("{", i):
            return self.inline(path)
        for word, value in (("true", True), ("false", False)):
            if s.startswith(word, i):
                self.i += len(word)
                return value
        match = _DATETIME.match(s, i) or _NUMBER.match(s, i)
        if not match:
            self.err("invalid value")
        self.i, text = match.end(), match.group()
        if match.re is _DATETIME:
            return text
        digits = text.replace("_", "")
        if text.startswith(("0x", "0o", "0b")):
            return int(digits, 0)
        if "inf" in text or "nan" in text or "." in text or "e" in text or "E" in text:
            return float(digits)
        return int(digits)

    def escape(self):
        s, i = self.s, self.i
        char = s[i + 1:i + 2]
        if char in _ESCAPES and char:
            self.i += 2
            return _ESCAPES[char]
        if char in ("u", "U"):
            size = 4 if char == "u" else 8
            digits = s[i + 2:i + 2 + size]
            if len(digits) == size and _HEXES.fullmatch(digits):
                code = int(digits, 16)
                if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
                    self.i += 2 + size
                    return chr(code)
        self.err("invalid escape sequence in string")

    def basic(self, multi=False):
        """a "basic" or a multi-line basic string, at its opening quotes."""
        s, start, out = self.s, self.i, []
        self.i += 3 if multi else 1
        if multi:
            self.newline()
        while True:
            match = (_ML_BASIC if multi else _BASIC).match(s, self.i)
            if match:
                out.append(match.group().replace("\r\n", "\n"))
                self.i = match.end()
            char = s[self.i:self.i + 1]
            if char == '"':
                tail = self.ml_close() if multi else ""
                if tail is not None:
                    self.i += 0 if multi else 1
                    return "".join(out) + tail
                out.append('"')
                self.i += 1
            elif char == "\\":
                cont = multi and _ML_CONTINUE.match(s, self.i)
                if cont:
                    self.i = cont.end()
                else:
                    out.append(self.escape())
            elif char == "" or char in "\r\n":
                self.err("unterminated string", start)
            else:
                self.err("invalid control character in string")

    def literal(self):
        match = _LITERAL.match(self.s, self.i)
        if not match:
            self.err("unterminated literal string")
        self.i = match.end()
        return match.group(1)

    def ml_close(self, quote='"'):
        """at a run of quotes in a multi-line string: the quotes that end its content, None when it goes on."""
        end = self.i
        while self.s.startswith(quote, end):
            end += 1
        run = end - self.i
        if run < 3:
            return None
        if run > 5:
            self.err("too many quotes at the end of a multi-line string")
        self.i += run
        return quote * (run - 3)

    def ml_literal(self):
        s, start = self.s, self.i
        self.i += 3
        self.newline()
        begin = self.i
        end = s.find("'''", begin)
        if end < 0:
            self.err("unterminated string", start)
        self.i = end
        tail = self.ml_close("'")
        return s[begin:end].replace("\r\n", "\n") + tail

    def array(self):
        start, out = self.i, []
        self.i += 1
        while True:
            self.skip_blank()
            if self.s.startswith("]", self.i):
                self.i += 1
                return out
            if self.i >= len(self.s):
                self.err("unterminated array", start)
            out.append(self.value(None))
            self.skip_blank()
            if self.s.startswith(",", self.i):
                self.i += 1
            elif not self.s.startswith("]", self.i):
                self.err("expected ',' or ']' in array")

    def inline(self, path):
        table = {}
        base = path if path is not None else (object(),)  # tables inside arrays are not addressable
        self.i += 1
        self.skip_ws()
        if self.s.startswith("}", self.i):
            self.i += 1
            return table
        while True:
            self.keyval(base, table)
            self.skip_ws()
            if self.s.startswith("}", self.i):
                self.i += 1
                return table
            if not self.s.startswith(",", self.i):
                self.err("expected ',' or '}' in inline table")
            self.i += 1
            self.skip_ws()


def loads(text):
    """Parse TOML text into nested dicts (dates and times as their source text)."""
    return _Parser(text).run().data


def _check_path(path):
    if not isinstance(path, (tuple, list)) or not path or not all(isinstance(k, str) for k in path):
        raise TomlError("a path is a non-empty tuple of str keys, not %r" % (path,))
    return tuple(path)


class TomlDocument(object):
    """A TOML text to read and edit; ``text`` and ``data`` always describe the current text."""

    def __init__(self, text):
        self._parsed = _Parser(text).run()
        self._text = text
        self._nl = "\r\n" if "\r\n" in text else "\n"

    @property
    def text(self):
        return self._text

    @property
    def data(self):
        return self._parsed.data

    def get(self, path, default=None):
        node = self.data
        for key in _check_path(path):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def _walk(self, path):
        """(found, value) at path; TomlError when a table on the way is an array or a plain value."""
        node = self.data
        for n, key in enumerate(path):
            if not isinstance(node, dict):
                kind = "an array" if isinstance(node, list) else "not a table"
                raise TomlError("cannot edit %s: %s is %s" % (_dotted(path), _dotted(path[:n]), kind))
            if key not in node:
                return False, None
            node = node[key]
        return True, node

    def _entry(self, path):
        for entry in self._parsed.entries:
            if entry.path == path:
                return entry
        return None

    def set(self, path, value):
        """Set the value at path (table keys + key); True when the text changed."""
        path = _check_path(path)
        literal = dumps_value(value)
        found, current = self._walk(path)
        if found and _same(current, value):
            return False
        entry = self._entry(path) if found else None
        if entry is not None:
            text = self._text[:entry.vstart] + literal + self._text[entry.vend:]
        elif found:
            raise TomlError("cannot set %s: it is a table, not a value" % _dotted(path))
        else:
            text = self._insert(path, literal)
        expected = copy.deepcopy(self.data)
        node = expected
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = _plain(value)
        self._commit(text, path, expected)
        return True

    def remove(self, path):
        """Remove the key at path with its line; True when the text changed, False when it is missing."""
        path = _check_path(path)
        found = self._walk(path)[0]
        entry = self._entry(path) if found else None
        if entry is None:
            if found:
                raise TomlError("cannot remove %s: it is a table, not a key" % _dotted(path))
            return False
        if entry.inline:
            raise TomlError("cannot remove %s: it is inside an inline table" % _dotted(path))
        expected = copy.deepcopy(self.data)
        chain = [expected]
        for key in path[:-1]:
            chain.append(chain[-1][key])
        del chain[-1][path[-1]]
        for n in range(1, entry.nkeys):  # tables made only by this dotted key go with it
            if chain[-n]:
                break
            del chain[-n - 1][path[-n - 1]]
        self._commit(self._text[:entry.lstart] + self._text[entry.lend:], path, expected)
        return True

    def remove_table(self, path):
        """Remove the table at path with its sub-tables, wherever they are written; True when the text changed."""
        path = _check_path(path)
        found, node = self._walk(path)
        if not found:
            return False
        if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
            raise TomlError("cannot remove table %s: it is an array of tables" % _dotted(path))
        if not isinstance(node, dict):
            raise TomlError("cannot remove table %s: it is a value, not a table" % _dotted(path))
        parsed, size = self._parsed, len(path)
        spans, gone = [], set()
        for n, head in enumerate(parsed.headers):
            if head.path[:size] == path:
                if head.array:
                    raise TomlError("cannot remove table %s: %s is an array of tables" % (_dotted(path), _dotted(head.path)))
                gone.add(n)
                ends = [e.lend for e in parsed.entries if e.section == n]
                spans.append((head.lstart, max(ends + [head.lend])))
        for entry in parsed.entries:
            if entry.path[:size] == path and entry.section not in gone:
                if entry.inline:
                    raise TomlError("cannot remove table %s: it is inside an inline table" % _dotted(path))
                spans.append((entry.lstart, entry.lend))
        text = self._text
        for start, end in sorted(set(spans), reverse=True):
            text = text[:start] + text[end:]
        expected = copy.deepcopy(self.data)
        parent = expected
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        self._commit(text, path, expected)
        return True

    def _indent_step(self):
        """What the document puts before keys, relative to their section header (containerd: two spaces)."""
        for entry in self._parsed.entries:
            if entry.section >= 0 and not entry.inline:
                head = self._parsed.headers[entry.section]
                head_indent = self._text[head.lstart:head.hstart]
                indent = self._text[entry.lstart:entry.kstart]
                return indent[len(head_indent):] if indent.startswith(head_indent) else ""
        return ""

    def _insert(self, path, literal):
        parsed, text, nl = self._parsed, self._text, self._nl
        parent, keys = path[:-1], path[-1:]
        section = -1 if not parent else None
        for n, head in enumerate(parsed.headers):
            if head.path == parent and not head.array:
                section = n
        if section is None and parent in parsed.dotted:
            section = parsed.dotted[parent]
            keys = path[len(parsed.headers[section].path) if section >= 0 else 0:]
        if section is None:
            inline = [parent[:n] for n in range(1, len(parent) + 1) if parent[:n] in parsed.frozen]
            if inline:
                raise TomlError("cannot add %s: %s is an inline table" % (_dotted(path), _dotted(inline[0])))
            sep = "" if not text.strip() or text.endswith(nl + nl) else (nl if text.endswith(nl) else nl + nl)
            return "%s%s[%s]%s%s%s = %s%s" % (text, sep, _dotted(parent), nl, self._indent_step(), _dotted(path[-1:]), literal, nl)
        line = " = ".join((_dotted(keys), literal)) + nl
        entries = [e for e in parsed.entries if e.section == section and not e.inline]
        if entries:
            last = max(entries, key=lambda e: e.lend)
            pos, indent = last.lend, text[last.lstart:last.kstart]
        elif section < 0:
            pos, indent = 0, ""
        else:
            head = parsed.headers[section]
            pos, indent = head.lend, text[head.lstart:head.hstart] + self._indent_step()
        if pos == len(text) and text and not text.endswith("\n"):
            line = nl + line
        return text[:pos] + indent + line + text[pos:]

    def _commit(self, text, path, expected):
        try:
            parsed = _Parser(text).run()
        except TomlError as exc:  # a guard against bugs: the edits above keep the text valid
            raise TomlError("editing %s would make invalid TOML (%s)" % (_dotted(path), exc))
        if not _same(parsed.data, expected):
            raise TomlError("cannot edit %s in place without changing other values" % _dotted(path))
        self._text, self._parsed = text, parsed
