"""Reading params files safely: the safe loader only, size and nesting limits checked before any
value is built (an alias bomb is refused unexpanded), a key set twice refused, and the `extends:`
chain through which a file starts from another and sets only what differs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from repsafe_lib.params.errors import ParamsError, shown

EXTENDS_KEY = "extends"
MAX_PARAMS_BYTES = 2**20
MAX_NESTING = 16  # levels of mappings and lists; the profiles use five
# Values once aliases are expanded; a file of MAX_PARAMS_BYTES without aliases has fewer.
MAX_VALUES = 1_000_000
MERGE_TAG = "tag:yaml.org,2002:merge"

# libyaml's safe loader where PyYAML was built with it (several times faster), else PyYAML's own.
SafeYamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_nodes(
    node: yaml.Node, key: str, path: Path, shapes: dict[int, tuple[int, int] | None], depth: int = 0
) -> tuple[int, int]:
    """The number of values in `node` once its aliases are expanded, and how deep it nests; a key
    set twice, a value that contains itself, too many values or too deep a nesting is an error
    naming the dotted key.

    It reads the composed node tree, before any value is built. An alias is the anchored node met
    again, so its size is known from the first meeting: an alias bomb is refused without being
    expanded.
    """
    line = node.start_mark.line + 1
    if id(node) in shapes:  # an alias
        shape = shapes[id(node)]
        if shape is None:
            raise ParamsError(path, key, f"an alias inside the value it names (line {line})")
        if depth + shape[1] > MAX_NESTING:
            raise ParamsError(path, key, f"line {line}: nested deeper than {MAX_NESTING} levels")
        return shape
    if depth > MAX_NESTING:
        raise ParamsError(path, key, f"line {line}: nested deeper than {MAX_NESTING} levels")
    shapes[id(node)] = None
    children: list[tuple[yaml.Node, str]] = []
    if isinstance(node, yaml.SequenceNode):
        children = [(item, f"{key}[{index}]") for index, item in enumerate(node.value)]
    elif isinstance(node, yaml.MappingNode):
        first_lines: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            dotted = f"{key}.{name}" if key else name
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != MERGE_TAG:
                identity, key_line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
                if identity in first_lines:
                    problem = f"set twice, at lines {first_lines[identity]} and {key_line}"
                    raise ParamsError(path, dotted, problem + ": keep one")
                first_lines[identity] = key_line
            children += [(key_node, dotted), (value_node, dotted)]
    size, height = 1, 0
    for child, child_key in children:
        child_size, child_height = _check_nodes(child, child_key, path, shapes, depth + 1)
        size, height = size + child_size, max(height, child_height + 1)
        if size > MAX_VALUES:
            problem = f"more than {MAX_VALUES} values once its YAML aliases are expanded"
            raise ParamsError(path, key, f"line {line}: {problem}")
    shapes[id(node)] = (size, height)
    return size, height


def _yaml_problem(error: yaml.MarkedYAMLError) -> str:
    """A YAML error on one line: where and what, without the parser's quote of the text."""
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = ", ".join(part for part in (error.context, error.problem) if part)
    return f"not valid YAML{where}: {' '.join(what.split())}"


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ParamsError(path, "", "params file not found")
    with path.open("rb") as stream:
        data = stream.read(MAX_PARAMS_BYTES + 1)
    if len(data) > MAX_PARAMS_BYTES:
        problem = f"larger than {MAX_PARAMS_BYTES} bytes (1 MiB), the most a params file may be"
        raise ParamsError(path, "", problem)
    loader = None
    try:
        loader = SafeYamlLoader(data.decode("utf-8"))
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, "", path, {})
        return loader.construct_document(node)
    except ParamsError:
        raise
    except yaml.MarkedYAMLError as error:
        raise ParamsError(path, "", _yaml_problem(error)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ParamsError(path, "", f"not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ParamsError(path, "", f"nested deeper than {MAX_NESTING} levels") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise ParamsError(path, "", f"a value YAML cannot read: {error}") from None
    finally:
        if loader is not None:
            loader.dispose()


def merge_overlay(base: dict, overlay: dict) -> dict:
    """`base` with `overlay` laid over it: mappings merge key by key, anything else (a list, a
    number, null) replaces the base's value."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


def extends_chain(path: Path, _seen: tuple[Path, ...] = ()) -> list[tuple[Path, Any]]:
    """Each file's YAML (without its `extends:`) from `path` to the root of its `extends:` chain;
    the named file is relative to the folder of the file that names it."""
    raw = _read_yaml(path)
    if not isinstance(raw, dict) or EXTENDS_KEY not in raw:
        return [(path, raw)]
    raw = dict(raw)
    parent_name = raw.pop(EXTENDS_KEY)
    if not isinstance(parent_name, str) or not parent_name:
        problem = f"expected a params file name, got {shown(parent_name)}"
        raise ParamsError(path, EXTENDS_KEY, problem)
    parent = (path.parent / parent_name).resolve()
    if parent in (*_seen, path.resolve()):
        raise ParamsError(path, EXTENDS_KEY, f"{parent_name} extends this file again (a cycle)")
    if not parent.is_file():
        raise ParamsError(path, EXTENDS_KEY, f"no params file {parent}")
    chain = extends_chain(parent, (*_seen, path.resolve()))
    if not isinstance(chain[0][1], dict):
        raise ParamsError(parent, "", f"expected a mapping, got {shown(chain[0][1])}")
    return [(path, raw), *chain]


def merged_chain(chain: list[tuple[Path, Any]]) -> Any:
    merged = chain[-1][1]
    for _, raw in reversed(chain[:-1]):
        merged = merge_overlay(merged, raw)
    return merged


def raw_params(path: Path) -> Any:
    """The YAML mapping of `path` with its `extends:` chain resolved (the named file, relative to
    this one's folder, is read first and this file's keys laid over it)."""
    return merged_chain(extends_chain(path))


def _sets(raw: dict, key: str) -> bool:
    """Whether the mapping `raw` sets the dotted `key` (`a.b`, `a.b[0]`) or replaces a value above
    it (a list or a scalar where the key's section would be)."""
    for name, value in raw.items():
        name = str(name)
        if key == name:
            return True
        if not key.startswith(name) or key[len(name)] not in ".[":
            continue
        below = key[len(name) + 1 :]
        if key[len(name)] == "[" or not isinstance(value, dict) or _sets(value, below):
            return True
    return False


def file_that_sets(key: str, chain: list[tuple[Path, Any]]) -> Path:
    """The file of an `extends:` chain whose value of `key` the merged params hold (the first
    file, the one loaded, for a key no file sets)."""
    setting = (path for path, raw in chain if isinstance(raw, dict) and _sets(raw, key))
    return next(setting, chain[0][0])
