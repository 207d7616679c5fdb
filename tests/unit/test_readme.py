"""README.md documents every spec field with its default: a field added to spec.py but not to the README fails here."""

import os

from ansible_collections.kubecluster.aws.plugins.module_utils import spec

from conftest import REPO


def field_paths(schema, path):
    for key, field in schema.items():
        here = "%s.%s" % (path, key)
        if field.children is not None:
            yield from field_paths(field.children, here)
        elif field.items is not None:
            yield here
            yield from field_paths(field.items, here + "[]")
        else:
            yield here


def documented(path, readme):
    """A field is documented by its own row, or as `.leaf` in a row that groups its siblings."""
    if "`%s`" % path in readme:
        return True
    parent, leaf = path.rsplit(".", 1)
    return any(line.startswith("| `%s." % parent) and "`.%s`" % leaf in line for line in readme.splitlines())


def test_every_spec_field_is_documented():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    assert [path for path in field_paths(spec.SCHEMA, "cluster") if not documented(path, readme)] == []


def test_readme_gives_the_two_setup_commands():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    assert "make demo" in readme and "make test" in readme
