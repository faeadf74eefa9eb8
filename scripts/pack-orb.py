#!/usr/bin/env python3
"""Pack the orb source (orb/src) into one orb YAML, as `circleci orb pack` does.

Usage: .venv-ci/bin/python scripts/pack-orb.py [orb/src] > orb.yml

The rules are those of the CircleCI CLI's packer (internal/pack in
CircleCI-Public/circleci-cli), which the test suite mirrors so that it can
validate the orb CircleCI would get, without the CircleCI CLI:
  - YAML files at the root (@orb.yml) merge into the top level;
  - each root subdirectory becomes a top-level key, each YAML file in it (or
    in a deeper folder) an entry named after the file; two entries of one
    name are an error; a subdirectory without YAML (scripts/) adds no key;
  - dotfiles and non-YAML files are skipped;
  - unquoted yes/no/on/off values are booleans (YAML 1.1, as CircleCI reads);
  - in jobs, commands and executors, a value that is `<< include(path) >>`
    is replaced with that file's contents (path relative to the root), with
    `<<` in the file escaped as `\\<<`; the include must be the whole value
    and there can be only one per value (the CLI refuses `echo
    <<include(a.sh)>>` and two includes in one value), so an orb step's
    script cannot be assembled from a shared file plus its own;
  - output keys are sorted, indented by four spaces.
Needs ruamel.yaml (scripts/setup.sh installs it into .venv-ci).
"""

import io
import os
import re
import sys

from ruamel.yaml import YAML
from ruamel.yaml.representer import SafeRepresenter
from ruamel.yaml.scalarstring import ScalarString

YAML11_BOOLS = {
    "yes": True, "Yes": True, "YES": True, "on": True, "On": True, "ON": True,
    "no": False, "No": False, "NO": False, "off": False, "Off": False, "OFF": False,
}
INCLUDE = re.compile(r"<<[\s]*include\(([-\w/.]+)\)?[\s]*>>")


def plain(value):
    """Plain dicts/lists/scalars; unquoted YAML 1.1 booleans become booleans."""
    if isinstance(value, dict):
        return {str(k): plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if type(value) is str and value in YAML11_BOOLS:  # plain (unquoted) scalar only
        return YAML11_BOOLS[value]
    if isinstance(value, ScalarString):
        return str(value)
    for kind in (bool, int, float):  # ruamel's ScalarBoolean, ScalarInt, ScalarFloat
        if isinstance(value, kind):
            return kind(value)
    return value


def load(path):
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True  # quoted scalars stay ScalarString: not retagged
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f)
    if data is None:
        return {}
    if not isinstance(data, dict):
        sys.exit(f"{path} must have a YAML map at the root")
    return plain(data)


def is_yaml(name):
    return re.fullmatch(r".+\.(yml|yaml)", name) is not None


def entries(directory):
    """Every YAML file under a section directory, by entry name."""
    found = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not is_yaml(name):
                continue
            path = os.path.join(root, name)
            if name.startswith("@"):
                sys.exit(f"{path}: @-files below a section are not supported here")
            key = os.path.splitext(name)[0]
            if key in found:
                sys.exit(f"{found[key][0]} and {path} both define {key!r}")
            found[key] = (path, load(path))
    return {k: v for k, (_, v) in found.items()}


def include(value, root):
    if isinstance(value, dict):
        return {k: include(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [include(v, root) for v in value]
    if isinstance(value, str):
        matches = list(INCLUDE.finditer(value))
        if len(matches) > 1:
            sys.exit(f"multiple include statements: {value!r}")
        if not matches:
            return value
        if matches[0].group(0) != value:
            sys.exit(f"entire string must be include statement: {value!r}")
        path = os.path.join(root, matches[0].group(1))
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().replace("<<", "\\<<")
        except OSError as e:
            sys.exit(f"could not read included file {path}: {e}")
    return value


def pack(root):
    if not os.path.isfile(os.path.join(root, "@orb.yml")):
        sys.exit(f"{root}/@orb.yml not found: is this the orb's source root?")
    orb = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith("."):
            continue
        if os.path.isdir(path):
            section = entries(path)
            if section:
                orb.setdefault(name, {}).update(section)
        elif is_yaml(name):
            orb.update(load(path))
    for key in ("jobs", "commands", "executors"):
        if key in orb:
            orb[key] = include(orb[key], root)
    return orb


def represent_str(representer, data):
    """Quote strings a YAML 1.1 reader (CircleCI) would take for booleans."""
    if data in YAML11_BOOLS or data in ("y", "Y", "n", "N"):
        return representer.represent_scalar("tag:yaml.org,2002:str", data, style="'")
    return SafeRepresenter.represent_str(representer, data)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "orb/src"
    out = YAML(typ="safe", pure=True)
    out.default_flow_style = False
    out.indent(mapping=4, sequence=4, offset=0)
    out.width = 4096
    out.representer.add_representer(str, represent_str)
    buf = io.StringIO()
    out.dump(pack(root), buf)
    sys.stdout.write(buf.getvalue())


if __name__ == "__main__":
    main()
