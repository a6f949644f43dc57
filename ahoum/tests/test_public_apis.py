"""No code outside tests reads, imports or overrides a private attribute of a library.

CONVENTIONS.md: a library's private names change without notice (django-tasks-db's
`_task_to_db_task` already did once), so nothing but tests may rely on them. Read from the
source (ast), never imported. Each finding names its file and line:

- `x._name`, where `x` is anything but `self`, `cls` or `super()`, and `getattr(x, "_name")`
  and its kin; also the few unprefixed internals of Django's connection (`run_on_commit`);
- `from <library> import _name`;
- in a class that derives, directly or through the project's own classes, from a library's
  class: any `self._name` (or `cls._name`) and any method named `_name`. Private names there
  share the library's namespace: each reads or overrides the library's own, or may one day.

Allowed: `_meta` (Django's documented model options) and the namedtuple API.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["ahoum", "accounts", "events", "bookings", "facilitators", "crm", "bench"]
SCRIPTS = ["manage.py", "gunicorn.conf.py"]
NOT_SOURCE = {"tests", "migrations", "fakes", "e2e", "__pycache__"}

LIBRARIES = {
    "django",
    "django_tasks",
    "django_tasks_db",
    "redis",
    "rest_framework",
    "rest_framework_simplejwt",
    "allauth",
    "djstripe",
    "drf_spectacular",
    "stripe",
}
PUBLIC_DESPITE_UNDERSCORE = {"_meta", "_replace", "_asdict", "_fields", "_make"}
# Undocumented transaction state of Django's database connection, private despite its names
# (transaction.on_commit, get_autocommit, get_rollback and set_rollback are the public API).
UNPREFIXED_INTERNALS = {
    "run_on_commit",
    "savepoint_ids",
    "savepoint_state",
    "needs_rollback",
    "in_atomic_block",
    "atomic_blocks",
    "commit_on_exit",
}
OWN = {"self", "cls"}
ATTRIBUTE_FUNCTIONS = {"getattr", "setattr", "hasattr", "delattr"}


def is_private(name: str) -> bool:
    return (
        name.startswith("_")
        and not (name.startswith("__") and name.endswith("__"))
        and name not in PUBLIC_DESPITE_UNDERSCORE
    )


def is_library(name: str) -> bool:
    root = name.split(".")[0]
    return root in LIBRARIES or root.startswith("django_tasks")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every non-test module of the project."""
    files = [ROOT / script for script in SCRIPTS]
    for source in SOURCES:
        files += [
            path
            for path in (ROOT / source).rglob("*.py")
            if not NOT_SOURCE & set(path.relative_to(ROOT).parts)
            and path.name != "conftest.py"
            and not path.name.startswith("test_")
        ]
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in sorted(files)
    }


def imported_names(tree: ast.Module, module: str) -> dict[str, str]:
    """Local name -> what it was imported as (`openapi` -> `drf_spectacular.openapi`)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                names[alias.asname or root] = alias.name if alias.asname else root
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative (the project writes none): from .y import z
                base = ".".join([*module.split(".")[: -node.level], *filter(None, [base])])
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
    return names


def dotted(node: ast.expr) -> str | None:
    """`a.b.C` as a string; None for anything else (a call, a subscript)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = dotted(node.value)
        return f"{owner}.{node.attr}" if owner else None
    return None


def library_classes(trees: dict[str, ast.Module]) -> set[str]:
    """The project's classes (`module.Class`) that derive from a library's, however deep."""
    bases: dict[str, list[str]] = {}
    for module, tree in trees.items():
        imports = imported_names(tree, module)
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                resolved = []
                for base in filter(None, map(dotted, node.bases)):
                    head, _, rest = base.partition(".")
                    head = imports.get(head, f"{module}.{head}")  # else defined in the module
                    resolved.append(f"{head}.{rest}" if rest else head)
                bases[f"{module}.{node.name}"] = resolved

    def derives(name: str, seen: frozenset = frozenset()) -> bool:
        if is_library(name):
            return True
        return (
            name in bases
            and name not in seen
            and any(derives(base, seen | {name}) for base in bases[name])
        )

    return {name for name in bases if derives(name)}


class Finder(ast.NodeVisitor):
    def __init__(self, path: Path, module: str, on_library_classes: set[str]) -> None:
        self.name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        self.module = module
        self.on_library_classes = on_library_classes
        self.classes: list[str] = []  # the enclosing classes, outermost first
        self.found: list[str] = []

    def report(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.name}:{node.lineno}: {what}")

    def in_library_class(self) -> bool:
        return bool(self.classes) and f"{self.module}.{self.classes[0]}" in self.on_library_classes

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if self.in_library_class() and is_private(node.name):
            self.report(node, f"defines {node.name} in a subclass of a library class")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Attribute(self, node: ast.Attribute) -> None:
        owner = node.value
        own = isinstance(owner, ast.Name) and owner.id in OWN
        via_super = (
            isinstance(owner, ast.Call)
            and isinstance(owner.func, ast.Name)
            and owner.func.id == "super"
        )
        if node.attr in UNPREFIXED_INTERNALS or (
            is_private(node.attr) and (not (own or via_super) or (own and self.in_library_class()))
        ):
            self.report(node, f"reads {ast.unparse(node)}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if (
            isinstance(node.func, ast.Name)
            and node.func.id in ATTRIBUTE_FUNCTIONS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
            and not (isinstance(node.args[0], ast.Name) and node.args[0].id in OWN)
        ):
            self.report(node, ast.unparse(node))
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level and is_library(node.module):
            for alias in node.names:
                if is_private(alias.name):
                    self.report(node, f"imports {alias.name} from {node.module}")


def private_uses(sources: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    """Every finding in `sources` (module -> its file and tree), as `file:line: what`."""
    on_library = library_classes({module: tree for module, (_, tree) in sources.items()})
    found = []
    for module, (path, tree) in sources.items():
        finder = Finder(path, module, on_library)
        finder.visit(tree)
        found += finder.found
    return found


def test_no_module_reads_imports_or_overrides_a_private_attribute_of_a_library():
    sources = {
        module: (path, ast.parse(path.read_text(), str(path)))
        for module, path in project_modules().items()
    }
    found = private_uses(sources)
    assert not found, "private attributes used outside tests:\n" + "\n".join(found)


# The check passes only when it finds nothing, so it must be seen finding something.


def findings(tmp_path: Path, sources: dict[str, str]) -> list[str]:
    parsed = {
        module: (tmp_path / f"{module}.py", ast.parse(text)) for module, text in sources.items()
    }
    return [line.split(": ", 1)[1] for line in private_uses(parsed)]


def test_the_check_finds_private_reads_and_imports(tmp_path):
    sample = (
        "from django.db.models.query import _Unset\n"
        "from events.cache import _page_key\n"  # the project's own: a read of it is found
        "connection.run_on_commit, connection._savepoint_ids, self._mine, row._asdict()\n"
        "model._meta, super()._setup(), cls._registry, getattr(pool, '_available')\n"
    )
    assert sorted(findings(tmp_path, {"sample": sample})) == [
        "getattr(pool, '_available')",
        "imports _Unset from django.db.models.query",
        "reads connection._savepoint_ids",
        "reads connection.run_on_commit",
    ]


def test_the_check_finds_private_names_in_library_subclasses_however_deep(tmp_path):
    sources = {
        "app.cache": "from django.core.cache.backends import redis as django_redis\n"
        "class Client(django_redis.RedisCacheClient):\n"
        "    def get_client(self, key=None):\n"
        "        return self._client(connection_pool=self._get_connection_pool(False))\n",
        "app.schema": "from drf_spectacular import openapi\n"
        "class Schema(openapi.AutoSchema):\n"
        "    def _get_response_bodies(self): ...\n"
        "    def get_operation(self): ...\n",
        "app.views": "from app.schema import Schema as Base\n"
        "class Deeper(Base):\n"
        "    def _helper(self): ...\n"
        "class Plain:\n"
        "    def _helper(self):\n"
        "        return self._state\n",
    }
    assert findings(tmp_path, sources) == [
        "reads self._client",
        "reads self._get_connection_pool",
        "defines _get_response_bodies in a subclass of a library class",
        "defines _helper in a subclass of a library class",
    ]
