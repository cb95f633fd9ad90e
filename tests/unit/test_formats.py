"""The accepted formats are listed once, in chalicelib/imaging/imageio.py; the CLI and the page,
which cannot import it (they run elsewhere), keep copies that must stay equal to it."""

import ast
import re
from pathlib import Path

from chalicelib import storage
from chalicelib.imaging import imageio

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_accepts_the_same_extensions():
    # Read from this tree's source: the installed `pixelake_cli` may be another checkout's.
    tree = ast.parse((ROOT / "cli" / "pixelake_cli" / "upload.py").read_text())
    [table] = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CONTENT_TYPES" for t in node.targets)
    ]
    assert ast.literal_eval(table) == imageio.FILE_EXTENSIONS


def test_the_page_accepts_the_same_extensions():
    script = (ROOT / "chalicelib" / "web" / "upload.js").read_text()
    table = re.search(r"const TYPES_BY_EXTENSION = \{(.*?)\};", script, re.S)
    assert table, "upload.js has no TYPES_BY_EXTENSION table"
    pairs = dict(re.findall(r'(\w+): "([^"]+)"', table.group(1)))
    assert {f".{extension}": kind for extension, kind in pairs.items()} == imageio.FILE_EXTENSIONS


def test_every_accepted_type_gets_its_own_upload_key_extension():
    assert set(storage.UPLOAD_EXTENSIONS) == imageio.ACCEPTED_CONTENT_TYPES
