"""The layering of ARCHITECTURE.md, checked on the source."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bgp_orchestrator"
# Thin Ray adapters; everything else in the core package must stay Ray-free.
ADAPTERS = {"stack", "cli"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if p.relative_to(PACKAGE).parts[0] not in ADAPTERS],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_domain_modules_never_import_ray(path: Path) -> None:
    bad = {name for name in _imports(path) if name == "ray" or name.startswith("ray.")}
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"
    assert not any(n.startswith("deployments") or n.startswith("jobs") for n in _imports(path))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_work_at_import_time(path: Path) -> None:
    """No settings objects, pools or clients built at module level (Ray imports every module)."""
    forbidden = {"Settings", "get_settings", "create_pool", "connect", "create_app", "Database"}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.Expr) and isinstance(
            getattr(node, "value", None), ast.Call
        ):
            func = node.value.func  # type: ignore[union-attr]
            name = getattr(func, "id", None) or getattr(func, "attr", None)
            assert name not in forbidden, f"{path.name}:{node.lineno} calls {name}() at import"


@pytest.mark.parametrize(
    ("module", "factory"), [("api.py", "create_app("), ("portal.py", "create_portal_app(")]
)
def test_serve_deployment_builds_its_app_in_the_replica(module: str, factory: str) -> None:
    source = (PACKAGE.parent / "deployments" / module).read_text()
    assert "__serve_build_asgi_app__" in source
    assert factory in source.split("def __serve_build_asgi_app__")[1]
