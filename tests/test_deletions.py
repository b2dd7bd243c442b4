"""No command of the kit removes a file it did not create: every place in ``vhakit/`` that
deletes (``unlink``, ``rmtree``, ``rmdir``, ``os.remove``) is listed here with what it deletes
and why that is the kit's own file. A new deletion fails this test until it is audited and
listed; the behaviour of each listed one is tested where it lives (test_data_safety.py for
make-data's manifest, test_train.py for run folders, test_kernels.py for the build cache)."""
from __future__ import annotations

import ast
from pathlib import Path

import vhakit

DELETING = {"unlink", "rmtree", "rmdir", "remove", "removedirs"}

# function -> what it deletes (all of them files or folders the kit itself wrote)
AUDITED = {
    "atomic_write_bytes": "its own temporary file when the write fails",
    "remove_recorded": "files listed in make-data's own manifest (.vhakit-dataset), and folders "
                       "this leaves empty",
    "_start_build": "the dataset's own .partial/ folder once it is empty (build_dataset)",
    "_fit": "the run files of RUN_FILES (last.pt, best.pt, metrics.*, done.json) on --overwrite "
            "or a restart with no checkpoint, and their temporary files",
    "pretrain_classroom": "its own card.json while a new checkpoint set is written",
    "clear_stale_lock": "the kernel build lock of a builder that is dead",
    "_build": "the kernel builder's own private build folder, log and lock",
}


def _deleting_functions() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in Path(vhakit.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            inner = {n for n in ast.walk(fn) if n is not fn
                     and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            skip = {id(x) for f in inner for x in ast.walk(f)}
            for node in ast.walk(fn):
                if id(node) in skip or not isinstance(node, ast.Call):
                    continue
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in DELETING:
                    found.setdefault(fn.name, set()).add(f"{path.name}:{node.lineno}")
    return found


def test_every_deletion_in_the_library_is_audited():
    found = _deleting_functions()
    new = {fn: sorted(where) for fn, where in found.items() if fn not in AUDITED}
    assert not new, (f"deletions not audited in {__file__}: {new}; the kit may delete only "
                     "what it can prove it wrote (docs/conventions.md, 'Reliability')")


def test_the_audit_list_has_no_stale_entries():
    assert set(AUDITED) <= set(_deleting_functions())
