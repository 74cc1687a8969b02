"""The shr_fan modules import each other without a cycle (imports inside functions count too), and
the library modules do not import the entry points."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "python" / "shr_fan"
ENTRY_POINTS = {"shr_fan.cli", "shr_fan.train", "shr_fan.ablation", "shr_fan.codec_study"}


def module_name(path: pathlib.Path) -> str:
    parts = ["shr_fan", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the shr_fan modules it imports}, from every import statement of its source."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from pkg import name`: name may be a submodule
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_shr_fan_import_graph_is_acyclic():
    graph = import_graph()
    assert {"shr_fan.config", "shr_fan.losses", "shr_fan.checkpoint", "shr_fan.geometry", "shr_fan.backend"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_library_modules_do_not_import_entry_points():
    graph = import_graph()
    for name, edges in graph.items():
        if name not in ENTRY_POINTS:
            assert not edges & ENTRY_POINTS, (name, edges & ENTRY_POINTS)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
