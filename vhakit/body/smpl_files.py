"""Find and read SMPL model files safely: no chumpy, no arbitrary code from pickles.

The official SMPL ``.pkl`` files are Python-2 pickles that hold numpy arrays, a scipy sparse
``J_regressor`` and, in some releases, ``chumpy.Ch`` objects wrapping arrays. Unpickling them with
:mod:`pickle` would import chumpy and, like any pickle, could run arbitrary code.
:func:`load_smpl_file` uses an allow-listed unpickler instead: numpy arrays, dtypes and scalars,
scipy sparse CSC/CSR matrices, sets; every ``chumpy.*`` class is replaced by a stand-in that keeps
the pickled state and is turned into its array ``x`` afterwards. Anything else (``os.system``,
``builtins.eval``, ...) raises :class:`UnsafePickleError`.

SMPL is licensed separately: register at https://smpl.is.tue.mpg.de and download the files
yourself; vhakit never ships or downloads them.
"""
from __future__ import annotations

import _compat_pickle
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "SafeUnpickler", "load_smpl_file", "find_smpl_file", "SMPL_URL",
           "SMPL_DIR_ENV"]

SMPL_URL = "https://smpl.is.tue.mpg.de"
SMPL_DIR_ENV = "VHAKIT_SMPL_DIR"
GENDERS = ("neutral", "male", "female")
_LEGACY_GENDER = {"neutral": "neutral", "male": "m", "female": "f"}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global that is not on the SMPL allow-list."""


class ChumpyStandIn:
    """Takes the place of a ``chumpy`` object while unpickling; keeps its pickled state."""

    chumpy_name = "Ch"

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def to_array(self) -> np.ndarray:
        state = self.__dict__.get("_state")
        x = state.get("x") if isinstance(state, dict) else None
        if x is None:
            raise ValueError(f"chumpy object {self.chumpy_name} has no array 'x' (it is a lazy "
                             "expression); re-export the SMPL file with plain numpy arrays")
        return _resolve(x)


def _resolve(obj: Any) -> Any:
    return obj.to_array() if isinstance(obj, ChumpyStandIn) else obj


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """Safe replacement for ``copyreg._reconstructor`` (protocol 0/1 object creation)."""
    import scipy.sparse as sp

    safe = isinstance(cls, type) and (issubclass(cls, ChumpyStandIn)
                                      or cls in (sp.csc_matrix, sp.csr_matrix))
    if base is not object or state is not None or not safe:
        raise UnsafePickleError(f"refusing to reconstruct {cls!r} from {base!r}")
    return object.__new__(cls)


def _encode(text: str, encoding: str = "latin1") -> bytes:
    """Safe ``_codecs.encode``: Python 3 writes bytes into protocol-2 pickles this way."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("refusing _codecs.encode with unexpected arguments")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import scipy.sparse as sp

    numpy_core = np._core if hasattr(np, "_core") else np.core  # numpy 2 renamed numpy.core
    multiarray = numpy_core.multiarray
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "object"): object,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("_codecs", "encode"): _encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = multiarray._reconstruct
        table[(mod, "scalar")] = multiarray.scalar
    for mod in ("scipy.sparse.csc", "scipy.sparse._csc"):
        table[(mod, "csc_matrix")] = sp.csc_matrix
    for mod in ("scipy.sparse.csr", "scipy.sparse._csr"):
        table[(mod, "csr_matrix")] = sp.csr_matrix
    return table


class SafeUnpickler(pickle.Unpickler):
    """The allow-listed unpickler of :func:`load_smpl_file` (see the module docstring).
    ``extra``: more ``(module, name)`` globals to allow, imported when a pickle asks for them."""

    def __init__(self, file, extra: frozenset[tuple[str, str]] = frozenset()) -> None:
        super().__init__(file, encoding="latin1")  # SMPL pickles come from Python 2
        self._allowed, self._extra = _allowed_globals(), extra

    def find_class(self, module: str, name: str) -> Any:
        # Python-2 names (``__builtin__``, ``copy_reg``) as pickle's own fix_imports maps them
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module == "chumpy" or module.startswith("chumpy."):
            return type(f"ChumpyStandIn_{name}", (ChumpyStandIn,), {"chumpy_name": name})
        if (module, name) in self._extra:
            import importlib
            return getattr(importlib.import_module(module), name)
        obj = self._allowed.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"refusing to load global '{module}.{name}' from an SMPL pickle: only numpy "
                "arrays, scipy sparse matrices and chumpy arrays are allowed")
        return obj


def load_smpl_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read an SMPL model file (``.pkl`` or ``.npz``) into a dict of numpy arrays.

    Args:
        path: the file. ``.npz`` is read with ``allow_pickle=False``; ``.pkl`` with the
            allow-listed unpickler described in the module docstring.
    Returns:
        dict with at least ``v_template (6890, 3)``, ``shapedirs (6890, 3, S)``, ``posedirs
        (6890, 3, 207)``, ``J_regressor (24, 6890)`` (dense), ``weights (6890, 24)``,
        ``kintree_table (2, 24)``, ``f (13776, 3)``.
    Raises:
        UnsafePickleError: the pickle references anything outside the allow-list.
        ValueError: a required key is missing.
    """
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    else:
        with open(path, "rb") as fh:
            data = SafeUnpickler(fh).load()
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a dict (got {type(data).__name__})")
    required = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                "kintree_table", "f")
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{path} lacks the SMPL keys {missing}; found {sorted(data)}")
    out = {}
    for key in required:
        value = _resolve(data[key])
        if hasattr(value, "toarray"):  # scipy sparse J_regressor
            value = value.toarray()
        out[key] = np.asarray(value)
    return out


def candidate_names(gender: str) -> list[str]:
    """File names accepted for `gender`, most specific first."""
    g = gender.upper()
    legacy = _LEGACY_GENDER[gender]
    return [f"SMPL_{g}.pkl", f"SMPL_{g}.npz", f"smpl/SMPL_{g}.pkl", f"smpl/SMPL_{g}.npz",
            f"basicmodel_{legacy}_lbs_10_207_0_v1.1.0.pkl",
            f"basicmodel_{legacy}_lbs_10_207_0_v1.0.0.pkl"]


def find_smpl_file(path_or_dir: str | os.PathLike | None, gender: str) -> Path:
    """Locate the SMPL file for `gender` in a file path, a folder, or ``$VHAKIT_SMPL_DIR``.

    Raises:
        ValueError: unknown gender.
        FileNotFoundError: names the files expected, the folder searched and where to register.
    """
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
    if path_or_dir is None:
        path_or_dir = os.environ.get(SMPL_DIR_ENV)
        if not path_or_dir:
            raise FileNotFoundError(
                f"No SMPL folder given and ${SMPL_DIR_ENV} is not set. Expected one of "
                f"{candidate_names(gender)[:2]} in a folder passed as path_or_dir or named by "
                f"${SMPL_DIR_ENV}. SMPL is not shipped with vhakit: register at {SMPL_URL}, "
                "download the model files and point vhakit at their folder.")
    root = Path(path_or_dir).expanduser()
    if root.is_file():
        return root
    names = candidate_names(gender)
    if root.is_dir():
        lower = {p.name.lower(): p for p in root.iterdir()}
        for name in names:
            if (root / name).is_file():
                return root / name
            if "/" not in name and name.lower() in lower:
                return lower[name.lower()]
    raise FileNotFoundError(
        f"No SMPL model file for gender={gender!r} in {root.resolve()} (searched for "
        f"{names}). SMPL is not shipped with vhakit: register at {SMPL_URL}, download the "
        f"model files, and pass their folder as path_or_dir or set ${SMPL_DIR_ENV}.")
