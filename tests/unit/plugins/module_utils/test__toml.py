# -*- coding: utf-8 -*-
# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the TOML reader/editor, on real containerd and CRI-O configs (fixtures/runtime_configs).

Every parse is cross-checked against Python's tomllib (3.11+, the test venv; the module itself must not use it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import copy
import datetime
import difflib
import math
import os

import pytest
from ansible_collections.gpulab.cluster.plugins.module_utils import _toml
from ansible_collections.gpulab.cluster.plugins.module_utils._toml import TomlDocument, TomlError, dumps_value, loads

tomllib = pytest.importorskip("tomllib")

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "runtime_configs")

CRI_V1 = ("plugins", "io.containerd.grpc.v1.cri")
RUNTIME_V1 = CRI_V1 + ("containerd",)
RUNTIME_V2 = ("plugins", "io.containerd.cri.v1.runtime", "containerd")
NVIDIA = "/usr/bin/nvidia-container-runtime"


def containerd_edits(runtime, default="nvidia"):
    return [
        (runtime + ("runtimes", "runc", "options", "SystemdCgroup"), True),
        (runtime + ("runtimes", "nvidia", "runtime_type"), "io.containerd.runc.v2"),
        (runtime + ("runtimes", "nvidia", "options", "BinaryName"), NVIDIA),
        (runtime + ("default_runtime_name",), default),
    ]


CRIO_EDITS = [
    (("crio", "runtime", "cgroup_manager"), "systemd"),
    (("crio", "runtime", "runtimes", "nvidia", "runtime_path"), NVIDIA),
    (("crio", "runtime", "runtimes", "nvidia", "runtime_type"), "oci"),
    (("crio", "runtime", "default_runtime"), "nvidia"),
]

# fixture -> (values that loads() must find, edits a module makes on such a file)
CASES = {
    "containerd-1.6-default.toml": (
        [
            (("version",), 2),
            (CRI_V1 + ("sandbox_image",), "registry.k8s.io/pause:3.6"),
            (RUNTIME_V1 + ("default_runtime_name",), "runc"),
            (RUNTIME_V1 + ("runtimes", "runc", "runtime_type"), "io.containerd.runc.v2"),
            (RUNTIME_V1 + ("runtimes", "runc", "options", "SystemdCgroup"), False),
            (RUNTIME_V1 + ("runtimes", "runc", "options", "BinaryName"), ""),
            (("plugins", "io.containerd.gc.v1.scheduler", "pause_threshold"), 0.02),
            (("grpc", "max_recv_message_size"), 16777216),
            (("timeouts", "io.containerd.timeout.shim.cleanup"), "5s"),
            (("stream_processors", "io.containerd.ocicrypt.decoder.v1.tar", "args"),
             ["--decryption-keys-path", "/etc/containerd/ocicrypt/keys"]),
            (("plugins", "io.containerd.runtime.v2.task", "platforms"), ["linux/amd64"]),
            (RUNTIME_V1 + ("default_runtime", "options"), {}),
            (("proxy_plugins",), {}),
        ],
        containerd_edits(RUNTIME_V1),
    ),
    "containerd-1.7-default.toml": (
        [
            (("version",), 2),
            (CRI_V1 + ("sandbox_image",), "registry.k8s.io/pause:3.8"),
            (CRI_V1 + ("cdi_spec_dirs",), ["/etc/cdi", "/var/run/cdi"]),
            (RUNTIME_V1 + ("runtimes", "runc", "sandbox_mode"), "podsandbox"),
            (RUNTIME_V1 + ("runtimes", "runc", "options", "SystemdCgroup"), False),
            (("plugins", "io.containerd.transfer.v1.local", "unpack_config"),
             [{"differ": "", "platform": "linux/amd64", "snapshotter": "overlayfs"}]),
        ],
        containerd_edits(RUNTIME_V1),
    ),
    "containerd-2.1-default.toml": (
        [
            (("version",), 3),
            (("root",), "/var/lib/containerd"),
            (("plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"), "registry.k8s.io/pause:3.10"),
            (("plugins", "io.containerd.cri.v1.runtime", "enable_cdi"), True),
            (RUNTIME_V2 + ("default_runtime_name",), "runc"),
            (RUNTIME_V2 + ("runtimes", "runc", "runtime_type"), "io.containerd.runc.v2"),
            (RUNTIME_V2 + ("runtimes", "runc", "sandboxer"), "podsandbox"),
            (RUNTIME_V2 + ("runtimes", "runc", "options", "SystemdCgroup"), False),
            (("plugins", "io.containerd.cri.v1.runtime", "cni", "bin_dirs"), ["/usr/lib/cni", "/opt/cni/bin"]),
            (CRI_V1 + ("stream_server_port",), "0"),
        ],
        containerd_edits(RUNTIME_V2),
    ),
    "containerd-eks.toml": (
        [
            (CRI_V1 + ("sandbox_image",), "602401143452.dkr.ecr.ap-southeast-1.amazonaws.com/eks/pause:3.5"),
            (RUNTIME_V1 + ("default_runtime_name",), "runc"),
            (RUNTIME_V1 + ("runtimes", "runc"), {"runtime_type": "io.containerd.runc.v2"}),
            (CRI_V1 + ("cni", "conf_dir"), "/etc/cni/net.d"),
        ],
        containerd_edits(RUNTIME_V1),
    ),
    "containerd-nvidia-toolkit.toml": (
        [
            (RUNTIME_V1 + ("default_runtime_name",), "nvidia"),
            (RUNTIME_V1 + ("runtimes", "nvidia", "options", "BinaryName"), "/usr/local/nvidia/toolkit/nvidia-container-runtime"),
            (RUNTIME_V1 + ("runtimes", "nvidia-cdi", "runtime_type"), "io.containerd.runc.v2"),
            (CRI_V1 + ("registry", "configs", "discovery:5000", "tls", "insecure_skip_verify"), True),
            (CRI_V1 + ("registry", "mirrors", "docker.io", "endpoint"), ["https://registry-1.docker.io"]),
        ],
        containerd_edits(RUNTIME_V1, default="runc"),
    ),
    "containerd.io-1.6.9-package.toml": (
        [
            (("disabled_plugins",), ["cri"]),
            (("version",), None),
            (("grpc",), None),
        ],
        [(("disabled_plugins",), [])],
    ),
    "crio.conf": (
        [
            (("crio", "runtime", "conmon_cgroup"), "pod"),
            (("crio", "runtime", "cgroup_manager"), "cgroupfs"),
            (("crio", "api"), {}),
            (("crio", "nri"), {}),
            (("crio", "runtime", "default_runtime"), None),
        ],
        CRIO_EDITS,
    ),
    "crio-openshift-00-default.conf": (
        [
            (("crio", "internal_wipe"), True),
            (("crio", "runtime", "default_env"), ["NSS_SDB_USE_CACHE=no"]),
            (("crio", "runtime", "hooks_dir"),
             ["/etc/containers/oci/hooks.d", "/run/containers/oci/hooks.d", "/usr/share/containers/oci/hooks.d"]),
            (("crio", "runtime", "workloads", "openshift-builder", "resources"), {}),
            (("crio", "metrics", "metrics_port"), 9537),
            (("crio", "image", "pause_command"), "/usr/bin/pod"),
        ],
        CRIO_EDITS,
    ),
}


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def normalized(value):
    """tomllib's value with dates and times as TOML text, as _toml gives them."""
    if isinstance(value, dict):
        return dict((k, normalized(v)) for k, v in value.items())
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return ("datetime", value)
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


def mine(value):
    if isinstance(value, dict):
        return dict((k, mine(v)) for k, v in value.items())
    if isinstance(value, list):
        return [mine(v) for v in value]
    if isinstance(value, str) and _toml._DATETIME.fullmatch(value):
        return ("datetime", tomllib.loads("x = " + value)["x"])
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


def same_as_tomllib(text):
    data = loads(text)
    assert mine(data) == normalized(tomllib.loads(text))
    return data


def comment_lines(text):
    return [line for line in text.splitlines() if line.lstrip().startswith("#")]


def test_fixture_folder_is_covered():
    assert sorted(f for f in os.listdir(FIXTURES) if f != "README.md") == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_loads_like_tomllib(name):
    data = same_as_tomllib(fixture(name))
    doc = TomlDocument(fixture(name))
    for path, value in CASES[name][0]:
        assert doc.get(path) == value, path
        assert type(doc.get(path)) is type(value), path
    assert doc.data == data


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_edits(name):
    text = fixture(name)
    edits = CASES[name][1]
    doc = TomlDocument(text)
    expected = copy.deepcopy(doc.data)
    replaced = []
    for path, value in edits:
        changed = doc.get(path) != value
        if changed and doc.get(path) is not None:
            replaced.append(path[-1])
        node = expected
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        assert doc.set(path, value) is changed, path
    # the new text parses (tomllib agrees), the values are there, nothing else changed
    assert same_as_tomllib(doc.text) == expected
    for path, value in edits:
        assert doc.get(path) == value
    assert doc.data == expected
    # comments and every other line stay as they were: only the replaced keys' lines went away
    assert comment_lines(doc.text) == comment_lines(text)
    removed = [line for line in difflib.ndiff(text.splitlines(), doc.text.splitlines()) if line.startswith("- ")]
    assert len(removed) == len(replaced)
    assert sorted(line.split("=")[0].strip("- ") for line in removed) == sorted(replaced)
    # the same edits again change nothing, also on a fresh document
    edited = doc.text
    for path, value in edits:
        assert doc.set(path, value) is False
        assert TomlDocument(edited).set(path, value) is False
    assert doc.text == edited


def test_containerd_1_6_edit_text():
    doc = TomlDocument(fixture("containerd-1.6-default.toml"))
    doc.set(RUNTIME_V1 + ("runtimes", "runc", "options", "SystemdCgroup"), True)
    doc.set(RUNTIME_V1 + ("runtimes", "runc", "options", "ExtraKnob"), "x")
    doc.set(RUNTIME_V1 + ("runtimes", "nvidia", "runtime_type"), "io.containerd.runc.v2")
    assert "\n            SystemdCgroup = true\n            ExtraKnob = \"x\"\n\n" in doc.text
    assert doc.text.endswith(
        '  uid = 0\n\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n  runtime_type = "io.containerd.runc.v2"\n')


def test_containerd_2_keeps_single_quoted_headers():
    text = fixture("containerd-2.1-default.toml")
    doc = TomlDocument(text)
    doc.set(RUNTIME_V2 + ("default_runtime_name",), "nvidia")
    assert "[plugins.'io.containerd.cri.v1.runtime'.containerd]\n      default_runtime_name = \"nvidia\"\n" in doc.text
    assert doc.text.count("\n") == text.count("\n")


def test_crio_dropin_keeps_comments_inside_arrays():
    text = fixture("crio-openshift-00-default.conf")
    doc = TomlDocument(text)
    collectors = doc.get(("crio", "metrics", "metrics_collectors"))
    assert len(collectors) == 18 and "image_pulls_by_digest" not in collectors
    assert doc.set(("crio", "metrics", "metrics_port"), 9538)
    assert doc.text == text.replace("metrics_port = 9537", "metrics_port = 9538")
    assert doc.set(("crio", "metrics", "metrics_collectors"), ["operations_total"])
    assert comment_lines(doc.text) == []
    assert doc.text.endswith('metrics_port = 9538\nmetrics_collectors = ["operations_total"]\n')


VALID = [
    # comments, keys, headers
    '# c\n\n  a = 1 # trailing\n[t] # c\nb = "x"\n',
    'a . "b.c" . \'d\' = 1\n"" = 2\n1234 = 3\n-_ = 4\n',
    '[ a . "b" . \'c d\' ]\nx = 1\n[a]\ny = 2\n',
    '[a.b.c]\nz = 9\n[a]\nb.d = 1\n',
    '[fruit]\napple.color = "red"\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true\n',
    '[[a]]\nx = 1\n[a.b]\ny = 1\n[[a]]\nx = 2\n[a.b]\ny = 2\n[[a.c]]\n',
    # strings
    's = "\\" \\\\ \\n \\t \\b \\f \\r \\u00e9 \\U0001F600"\nl = \'C:\\path "q"\'\n',
    'm = """\nline1\n  line2 \\\n     joined\n"""\n',
    "m = '''\nraw \\n \"\"\" ''\n'''\nn = '''x'''''\n",
    'm = """a "" b""""\nn = """"""\n',
    'm = """x\r\ny"""\r\nk = 1\r\n',
    # numbers, booleans, dates
    'i = [+1, -2, 1_000, 0, 0xDEAD_beef, 0o755, 0b1010]\n',
    'f = [1.5, -0.5, 1e6, 1E-2, 6.626e-34, 9_224.5, +inf, -inf, inf]\nn = nan\nb = [true, false]\n',
    'd = [1979-05-27T07:32:00Z, 1979-05-27 00:32:00.999999-07:00, 1979-05-27T07:32:00, 1979-05-27, 07:32:00, 00:32:00.5]\n',
    # arrays and inline tables
    'a = [\n  1, # one\n  # comment line\n  2,\n]\nb = [[1, 2], ["x", [true]], []]\nc = [ ]\n',
    'p = {x = 1, y = {z = "w"}, a.b = 2}\ne = {}\nl = [{a = 1}, {a = 2, b = {c = 3}}]\n',
    '',
    '\n\n# only a comment',
]


@pytest.mark.parametrize("text", VALID)
def test_valid_documents_load_like_tomllib(text):
    same_as_tomllib(text)


def test_loaded_values():
    assert loads(VALID[1]) == {"a": {"b.c": {"d": 1}}, "": 2, "1234": 3, "-_": 4}
    assert loads(VALID[6])["s"] == '" \\ \n \t \b \f \r \u00e9 \U0001F600'
    assert loads(VALID[6])["l"] == 'C:\\path "q"'
    assert loads(VALID[7])["m"] == "line1\n  line2 joined\n"
    assert loads(VALID[8]) == {"m": 'raw \\n """ \'\'\n', "n": "x''"}
    assert loads(VALID[9]) == {"m": 'a "" b"', "n": ""}
    assert loads(VALID[10]) == {"m": "x\ny", "k": 1}
    assert loads(VALID[11])["i"] == [1, -2, 1000, 0, 0xDEADBEEF, 0o755, 10]
    floats = loads(VALID[12])
    assert floats["f"][:6] == [1.5, -0.5, 1e6, 0.01, 6.626e-34, 9224.5]
    assert math.isnan(floats["n"]) and floats["f"][6:] == [float("inf"), float("-inf"), float("inf")]
    assert loads(VALID[13])["d"] == ["1979-05-27T07:32:00Z", "1979-05-27 00:32:00.999999-07:00", "1979-05-27T07:32:00",
                                     "1979-05-27", "07:32:00", "00:32:00.5"]
    assert loads(VALID[15]) == {"p": {"x": 1, "y": {"z": "w"}, "a": {"b": 2}}, "e": {},
                                "l": [{"a": 1}, {"a": 2, "b": {"c": 3}}]}
    assert loads(VALID[5]) == {"a": [{"x": 1, "b": {"y": 1}}, {"x": 2, "b": {"y": 2}, "c": [{}]}]}


INVALID = [
    # duplicate keys
    ("a = 1\nb = 2\na = 3\n", 3, "duplicate key a"),
    ("[t]\nx.y = 1\nx.y = 2\n", 3, "duplicate key t.x.y"),
    ("p = {a = 1, a = 2}\n", 1, "duplicate key p.a"),
    # tables defined twice
    ("[a]\nx = 1\n\n[a]\ny = 2\n", 4, "table a defined twice"),
    ("a.b = 1\n[a]\n", 2, "table a defined twice"),
    ('[[x]]\n[x]\n', 2, "table x defined twice"),
    ("[a.b]\nx = 1\n[a]\nb.y = 2\n", 4, "key a.b redefined"),
    ("[a]\nb.c = 1\n[a.b]\n", 3, "table a.b defined twice"),
    # keys redefined as tables
    ("a = 1\n[a]\n", 2, "key a redefined as a table"),
    ("a = 1\n[a.b]\n", 2, "key a redefined as a table"),
    ("a = 1\na.b = 2\n", 2, "key a redefined as a table"),
    ("a = [1]\n[[a]]\n", 2, "key a redefined as a table"),
    ("a = {b = 1}\n[a.c]\n", 2, "key a redefined as a table"),
    ("a = {b = 1}\na.c = 2\n", 2, "key a redefined"),
    ("[a]\n[[a]]\n", 2, "key a redefined as an array of tables"),
    ("a = 1\n[[a]]\n", 2, "key a redefined as an array of tables"),
    # unterminated strings
    ('a = "abc\nb = 1\n', 1, "unterminated string"),
    ('x = 1\n\na = """abc\n\ndef\n', 3, "unterminated string"),
    ("a = 'abc\n", 1, "unterminated literal string"),
    ("a = '''abc\n", 1, "unterminated string"),
    ('a = "abc', 1, "unterminated string"),
    # bad values
    ("a = \n", 1, "invalid value"),
    ("x = 1\na = yes\n", 2, "invalid value"),
    ("a = 1 2\n", 1, "expected a newline or a comment"),
    ("a = 01\n", 1, "expected a newline or a comment"),
    ("a = truex\n", 1, "expected a newline or a comment"),
    ('a = "\\q"\n', 1, "invalid escape sequence"),
    ('a = "\\uD800"\n', 1, "invalid escape sequence"),
    ('a = "\\u12G4"\n', 1, "invalid escape sequence"),
    ('a = "\\', 1, "invalid escape sequence"),
    ('a = "\\U0011FFFF"\n', 1, "invalid escape sequence"),
    ('a = "x\x01"\n', 1, "invalid control character"),
    ('a = """x\x01"""\n', 1, "invalid control character"),
    ('a = """x""""""\n', 1, "too many quotes"),
    ("a = [1 2]\n", 1, "expected ',' or ']'"),
    ("x = 1\na = [1,\n2,\n", 2, "unterminated array"),
    ("a = {b = 1 c = 2}\n", 1, "expected ',' or '}'"),
    ("a = {b = 1,}\n", 1, "expected a key"),
    ("a = {\nb = 1}\n", 1, "expected a key"),
    # keys and headers
    ("= 1\n", 1, "expected a key"),
    ("a b = 1\n", 1, "expected '=' after the key"),
    ("x = 1\n[a\n", 2, "expected ']' to close the table header"),
    ("[[a]\n", 1, "expected ']]' to close the table header"),
    ("[a] b = 1\n", 1, "expected a newline or a comment"),
    ('"""a""" = 1\n', 1, "expected a key"),
]


@pytest.mark.parametrize("text,line,message", INVALID)
def test_errors_name_the_line(text, line, message):
    with pytest.raises(TomlError) as info:
        loads(text)
    assert info.value.line == line
    assert info.value.message.startswith(message), info.value.message
    assert str(info.value) == "line %d: %s" % (line, info.value.message)
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(text)


def test_document_error_and_error_text():
    with pytest.raises(TomlError) as info:
        TomlDocument("[a]\nx = 1\n[a]\n")
    assert str(info.value) == "line 3: table a defined twice"
    assert str(TomlError("no line here")) == "no line here" and TomlError("m").line is None
    with pytest.raises(TomlError, match="must be a str"):
        loads(b"a = 1")


@pytest.mark.parametrize("value,literal", [
    (True, "true"), (False, "false"), (0, "0"), (-17, "-17"), (1.5, "1.5"), (1e20, "1e+20"), (-0.001, "-0.001"),
    (float("inf"), "inf"), (float("-inf"), "-inf"), (float("nan"), "nan"),
    ("plain", '"plain"'), ('q"b\\n\nt\te\x01\x7f', '"q\\"b\\\\n\\nt\\te\\u0001\\u007f"'), (u"\u00e9", u'"\u00e9"'),
    ([], "[]"), ((1, "a", [True]), '[1, "a", [true]]'),
    ({}, "{}"), ({"a": 1, "b.c": {"d": [1.5]}}, '{a = 1, "b.c" = {d = [1.5]}}'),
])
def test_dumps_value(value, literal):
    assert dumps_value(value) == literal
    back = tomllib.loads("x = " + literal)["x"]
    assert _toml._same(back, value)


@pytest.mark.parametrize("value", [None, object(), {1: "a"}, [None], b"bytes"])
def test_dumps_value_refuses(value):
    with pytest.raises(TomlError):
        dumps_value(value)


def edited(text, path, value):
    doc = TomlDocument(text)
    assert doc.set(path, value) is True
    assert same_as_tomllib(doc.text) == doc.data
    assert doc.get(path) == value
    return doc.text


def test_set_replaces_only_the_value():
    text = '# head\n[a]\n  key   =   "old"   # keep me\n  other = 1\n'
    assert edited(text, ("a", "key"), "new") == '# head\n[a]\n  key   =   "new"   # keep me\n  other = 1\n'
    assert edited(text, ("a", "other"), [1, 2]) == '# head\n[a]\n  key   =   "old"   # keep me\n  other = [1, 2]\n'


def test_set_replaces_multiline_values_whole():
    text = 'a = [\n  "x", # one\n  "y",\n] # after\nb = """\nmulti\nline"""\nc = 1\n'
    assert edited(text, ("a",), ["z"]) == 'a = ["z"] # after\nb = """\nmulti\nline"""\nc = 1\n'
    assert edited(text, ("b",), "one") == 'a = [\n  "x", # one\n  "y",\n] # after\nb = "one"\nc = 1\n'


def test_set_in_quoted_and_dotted_sections():
    text = '[plugins."io.containerd.grpc.v1.cri" . containerd]\n  snapshotter = "overlayfs"\n'
    assert edited(text, RUNTIME_V1 + ("default_runtime_name",), "nvidia") == (
        '[plugins."io.containerd.grpc.v1.cri" . containerd]\n  snapshotter = "overlayfs"\n  default_runtime_name = "nvidia"\n')
    text = "[plugins.'io.containerd.grpc.v1.cri'.containerd]\n"
    assert edited(text, RUNTIME_V1 + ("x",), 1) == text + "x = 1\n"


def test_set_inserts_after_the_last_key_of_the_section():
    text = "[a]\nx = 1\ny = [\n  2,\n]\n\n# about b\n[b]\nz = 3\n"
    assert edited(text, ("a", "new"), True) == "[a]\nx = 1\ny = [\n  2,\n]\nnew = true\n\n# about b\n[b]\nz = 3\n"
    text = "top = 1\n[b]\n"
    assert edited(text, ("other",), "v") == 'top = 1\nother = "v"\n[b]\n'
    assert edited("[b]\nz = 1\n", ("first",), 0) == "first = 0\n[b]\nz = 1\n"


def test_set_indents_like_the_document():
    text = "[a]\n  x = 1\n\n  [a.b]\n\n  [a.c]\n    y = 2\n"
    assert edited(text, ("a", "b", "k"), "v") == '[a]\n  x = 1\n\n  [a.b]\n    k = "v"\n\n  [a.c]\n    y = 2\n'
    assert edited(text, ("a", "c", "k"), "v") == '[a]\n  x = 1\n\n  [a.b]\n\n  [a.c]\n    y = 2\n    k = "v"\n'
    assert edited("[x]\n", ("x", "k"), 1) == "[x]\nk = 1\n"
    assert edited("\t[x]\n\t\ty = 1\n  [z]\n", ("z", "k"), 1) == "\t[x]\n\t\ty = 1\n  [z]\n  \tk = 1\n"
    assert edited("  [x]\n\ty = 1\n[z]\n", ("z", "k"), 1) == "  [x]\n\ty = 1\n[z]\nk = 1\n"


def test_set_appends_new_sections():
    text = "[a]\n  x = 1\n"
    assert edited(text, ("a", "b c", "d", "k"), "v") == '[a]\n  x = 1\n\n[a."b c".d]\n  k = "v"\n'
    assert edited("a = 1", ("t", "k"), 2) == "a = 1\n\n[t]\nk = 2\n"
    assert edited("a = 1\n\n", ("t", "k"), 2) == "a = 1\n\n[t]\nk = 2\n"
    assert edited("", ("t", "k"), 2) == "[t]\nk = 2\n"
    assert edited("[a.b.c]\nz = 1\n", ("a", "k"), 2) == "[a.b.c]\nz = 1\n\n[a]\nk = 2\n"


def test_set_at_the_end_without_newline():
    assert edited("[a]\nx = 1", ("a", "y"), 2) == "[a]\nx = 1\ny = 2\n"
    assert edited("[a]", ("a", "y"), 2) == "[a]\ny = 2\n"


def test_set_keeps_crlf():
    text = "[a]\r\nx = 1 # c\r\n"
    assert edited(text, ("a", "x"), 2) == "[a]\r\nx = 2 # c\r\n"
    assert edited(text, ("a", "y"), 2) == "[a]\r\nx = 1 # c\r\ny = 2\r\n"
    assert edited(text, ("b", "y"), 2) == "[a]\r\nx = 1 # c\r\n\r\n[b]\r\ny = 2\r\n"


def test_set_inline_tables_and_dotted_keys():
    text = "[x]\na.b = 1 # dotted\np = {q = 1, r = {s = 2}}\n"
    assert edited(text, ("x", "a", "b"), 5) == "[x]\na.b = 5 # dotted\np = {q = 1, r = {s = 2}}\n"
    assert edited(text, ("x", "p", "r", "s"), "t") == '[x]\na.b = 1 # dotted\np = {q = 1, r = {s = "t"}}\n'
    assert edited(text, ("x", "p", "r"), {"u": 1}) == "[x]\na.b = 1 # dotted\np = {q = 1, r = {u = 1}}\n"
    assert edited(text, ("x", "a", "c"), 2) == "[x]\na.b = 1 # dotted\np = {q = 1, r = {s = 2}}\na.c = 2\n"
    assert edited("a.b.c = 1\n[z]\n", ("a", "b", "d"), 2) == "a.b.c = 1\na.b.d = 2\n[z]\n"
    assert edited(text, ("x", "new"), {"k": [1]}) == text + "new = {k = [1]}\n"
    with pytest.raises(TomlError, match="cannot add x.p.r.new: x.p is an inline table"):
        TomlDocument(text).set(("x", "p", "r", "new"), 1)
    with pytest.raises(TomlError, match="cannot add x.p.t.u: x.p is an inline table"):
        TomlDocument(text).set(("x", "p", "t", "u"), 1)


def test_set_refuses_arrays_of_tables_and_plain_values():
    text = "plain = 1\nlist = [1, {a = 1}]\n[[servers]]\nname = 'a'\n[servers.tls]\nca = ''\n"
    doc = TomlDocument(text)
    with pytest.raises(TomlError, match="cannot edit servers.name: servers is an array"):
        doc.set(("servers", "name"), "b")
    with pytest.raises(TomlError, match="cannot edit servers.tls.ca: servers is an array"):
        doc.set(("servers", "tls", "ca"), "x")
    with pytest.raises(TomlError, match="cannot edit plain.sub.k: plain is not a table"):
        doc.set(("plain", "sub", "k"), 1)
    with pytest.raises(TomlError, match="cannot edit list.a: list is an array"):
        doc.set(("list", "a"), 2)
    with pytest.raises(TomlError, match="cannot set servers: it is a table"):
        TomlDocument("[servers]\n").set(("servers",), 1)
    assert doc.text == text


def test_set_is_idempotent_and_type_exact():
    text = "a = 1\nb = 1.0\nc = [1, 2]\nd = {e = true}\nf = nan\ng = \"1\"\n"
    doc = TomlDocument(text)
    for path, value in [(("a",), 1), (("b",), 1.0), (("c",), (1, 2)), (("d",), {"e": True}), (("f",), float("nan")),
                        (("g",), "1")]:
        assert doc.set(path, value) is False
    assert doc.text == text
    assert doc.set(("a",), True) is True and doc.get(("a",)) is True
    assert doc.set(("b",), 1) is True and repr(doc.get(("b",))) == "1"
    assert doc.set(("c",), [1, 2.0]) is True
    assert doc.set(("d",), {"e": 1}) is True
    assert doc.set(("g",), 1) is True
    assert doc.text == "a = true\nb = 1\nc = [1, 2.0]\nd = {e = 1}\nf = nan\ng = 1\n"


def test_get():
    doc = TomlDocument("[a]\nb = 1\nc = [1]\n")
    assert doc.get(("a", "b")) == 1
    assert doc.get(["a", "b"]) == 1
    assert doc.get(("a", "x"), "dflt") == "dflt"
    assert doc.get(("a", "b", "c")) is None
    assert doc.get(("a", "c", "0")) is None
    assert doc.get(("a",)) == {"b": 1, "c": [1]}
    for bad in [(), "a.b", ("a", 1), None]:
        with pytest.raises(TomlError, match="non-empty tuple"):
            doc.get(bad)
    with pytest.raises(TomlError, match="non-empty tuple"):
        doc.set((), 1)
    with pytest.raises(TomlError, match="cannot write NoneType"):
        doc.set(("a", "b"), None)


def test_remove():
    text = "# top\n[a]\nx = 1 # gone too\ny = [\n  1,\n]\n# kept\nz = 3\n"
    doc = TomlDocument(text)
    assert doc.remove(("a", "y")) is True
    assert doc.text == "# top\n[a]\nx = 1 # gone too\n# kept\nz = 3\n"
    assert doc.remove(("a", "x")) is True
    assert doc.text == "# top\n[a]\n# kept\nz = 3\n"
    assert doc.remove(("a", "x")) is False
    assert doc.remove(("nope", "x")) is False
    assert doc.remove(("a", "z")) is True
    assert doc.text == "# top\n[a]\n# kept\n" and doc.data == {"a": {}}
    assert same_as_tomllib(doc.text) == {"a": {}}


def test_remove_dotted_and_refusals():
    doc = TomlDocument("[x]\na.b = 1\nc.d = 1\nc.e = 2\np = {q = 1}\n[[s]]\nt = 1\n")
    assert doc.remove(("x", "a", "b")) is True
    assert doc.data["x"] == {"c": {"d": 1, "e": 2}, "p": {"q": 1}}
    assert doc.remove(("x", "c", "d")) is True
    assert doc.data["x"] == {"c": {"e": 2}, "p": {"q": 1}}
    with pytest.raises(TomlError, match="cannot remove x.p.q: it is inside an inline table"):
        doc.remove(("x", "p", "q"))
    with pytest.raises(TomlError, match="cannot remove x.c: it is a table"):
        doc.remove(("x", "c"))
    with pytest.raises(TomlError, match="s is an array"):
        doc.remove(("s", "t"))
    assert doc.remove(("x", "p")) is True
    assert doc.text == "[x]\nc.e = 2\n[[s]]\nt = 1\n"
    doc = TomlDocument("a.b.c = 1\n[a.b.d]\n")
    assert doc.remove(("a", "b", "c")) is True
    assert doc.data == {"a": {"b": {"d": {}}}}


def test_edits_are_checked(monkeypatch):
    """the guard behind every edit: a wrong or broken result is refused and the document stays as it was."""
    text = "[a]\nx = 1\ny = 2\n"
    doc = TomlDocument(text)
    monkeypatch.setattr(_toml, "dumps_value", lambda value: "3")
    with pytest.raises(TomlError, match="cannot edit a.x in place without changing other values"):
        doc.set(("a", "x"), 2)
    monkeypatch.setattr(_toml, "dumps_value", lambda value: "[")
    with pytest.raises(TomlError, match=r"editing a.x would make invalid TOML \(line 3: invalid value\)"):
        doc.set(("a", "x"), 2)
    assert doc.text == text and doc.data == {"a": {"x": 1, "y": 2}}


def test_module_runs_on_python_3_8_without_tomllib():
    with open(_toml.__file__.replace(".pyc", ".py")) as handle:
        source = handle.read()
    tree = ast.parse(source, feature_version=(3, 8))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"__future__", "copy", "math", "re"}
    assert "removeprefix" not in source and "print(" not in source


def test_remove_table_takes_sub_tables_and_nothing_else():
    text = fixture("containerd-nvidia-toolkit.toml")
    doc = _toml.TomlDocument(text)
    handler = ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "nvidia")
    before = tomllib.loads(text)
    assert doc.remove_table(handler) is True
    after = tomllib.loads(doc.text)
    del before["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["nvidia"]
    assert after == before
    assert "nvidia-cdi" in after["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert doc.remove_table(handler) is False


def test_remove_table_written_with_dotted_keys_and_refusals():
    doc = _toml.TomlDocument('[r]\nnvidia.type = "x"\nnvidia.options.bin = "y"\nrunc.type = "z"\n[[arr]]\na = 1\n')
    assert doc.remove_table(("r", "nvidia")) is True
    assert doc.text == '[r]\nrunc.type = "z"\n[[arr]]\na = 1\n'
    with pytest.raises(_toml.TomlError, match="array of tables"):
        doc.remove_table(("arr",))
    with pytest.raises(_toml.TomlError, match="a value, not a table"):
        doc.remove_table(("r", "runc", "type"))
    inline = _toml.TomlDocument('t = {a = {b = 1}}\n')
    with pytest.raises(_toml.TomlError, match="inline table"):
        inline.remove_table(("t", "a"))
