"""Loading a Python file as a module, for tests that reuse another test file's helpers or a script of hack/ or
bench/: pytest's importlib import mode puts no test directory on sys.path, so siblings are not importable by name."""

import importlib.util
import os


def load_file(name, path):
    """The module ``name`` executed from ``path`` (a new module object on every call)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_sibling(test_file, file_name, name):
    """The module ``name`` from ``file_name`` in the directory of ``test_file`` (pass ``__file__``)."""
    return load_file(name, os.path.join(os.path.dirname(os.path.abspath(test_file)), file_name))
