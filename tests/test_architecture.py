"""The package's shape (docs/architecture.md): no import circle, modules small enough to read, one docstring each,
Keras Tuner's private code reached only through compat."""

import ast
import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "keras_augtune"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(encoding="utf-8"))


def _top_level_imports(name, tree, is_package):
    """The keras_augtune modules ``name`` imports when it is imported (not inside functions, not for type checkers)."""
    out = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ([node] if not isinstance(node, ast.If) else node.body):
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(anchor[: len(anchor) - child.level + 1] + ([base] if base else []))
                if base.startswith("keras_augtune"):
                    out.add(base)
                    out.update(f"{base}.{a.name}" for a in child.names)
            elif isinstance(child, ast.Import):
                out.update(a.name for a in child.names if a.name.startswith("keras_augtune"))
    return out


def test_no_import_circle():
    modules = {name: (path, tree) for name, path, tree in _modules()}
    graph = {name: {m for m in _top_level_imports(name, tree, path.name == "__init__.py") if m in modules and m != name}
             for name, (path, tree) in modules.items()}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_modules_are_small_and_say_their_job():
    for name, path, tree in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        limit = 400 if name == "keras_augtune.tuner" else 450
        assert lines <= limit, f"{name} has {lines} lines (at most {limit})"
        if path.name != "__main__.py":
            assert ast.get_docstring(tree), f"{name} has no docstring saying its job"


def test_keras_tuner_private_code_is_reached_only_through_compat():
    private = re.compile(r"keras_tuner\.src\b|\._(get_checkpoint_fname|configure_tensorboard_dir|try_build|duplicate|"
                         r"set_project_dir|project_dir|retry_queue|save_trial|get_n_values|get_value_by_index|"
                         r"get_num_brackets|start_new_bracket|current_bracket|brackets)\b")
    for name, path, _ in _modules():
        if name == "keras_augtune.compat":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            assert not private.search(code), f"{path.name}:{number} reaches a Keras Tuner private: {line.strip()}"
