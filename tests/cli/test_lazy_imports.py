"""Issue 15 item 3: a data command's start-up imports no pandas, numpy, pyarrow or polars
until it touches data; :mod:`marketdb.lazy` keeps behaviour unchanged."""

from __future__ import annotations

import subprocess
import sys
import threading
import types

from marketdb.lazy import LazyMapping, LazyModule, lazy_module

HEAVY = ("pandas", "numpy", "pyarrow", "polars")


def _loaded_after(statements: str) -> list[str]:
    code = f"import sys\n{statements}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return eval(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]  # noqa: S307


def test_services_and_their_cli_commands_import_no_heavy_module() -> None:
    statements = (
        "import marketdb, marketdb.cli, marketdb.client\n"
        "import marketdb.services.query, marketdb.services.bars\n"
        "# alembic imports every revision to find the head (each command's schema check)\n"
        "import importlib, pkgutil, marketdb.store.migrations.versions as v\n"
        "[importlib.import_module(f'{v.__name__}.{m.name}') for m in pkgutil.iter_modules(v.__path__)]\n"
    )
    assert _loaded_after(statements) == []


def test_first_use_imports_the_module_and_behaves_like_it() -> None:
    statements = (
        "from marketdb.services.bars import BAR_OUTPUT\n"
        "import marketdb.services.query._frames as f\n"
        "assert 'ts' in BAR_OUTPUT and str(BAR_OUTPUT['ts']) == 'timestamp[us, tz=UTC]'\n"
        "assert str(f._ts_ns_utc()) == 'timestamp[ns, tz=UTC]'\n"
    )
    assert _loaded_after(statements) == ["numpy", "pyarrow"]


def test_lazy_module_proxy() -> None:
    name = "colorsys"  # a small stdlib module nobody here imports
    sys.modules.pop(name, None)
    proxy = lazy_module(name)
    assert isinstance(proxy, LazyModule)
    assert isinstance(proxy, types.ModuleType)
    assert lazy_module(name) is proxy  # one stand-in per name
    assert "not imported yet" in repr(proxy)
    assert name not in sys.modules
    assert proxy.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert name in sys.modules
    assert "loaded" in repr(proxy)
    assert proxy.hsv_to_rgb is sys.modules[name].hsv_to_rgb
    assert lazy_module("json") is sys.modules["json"]  # already imported: the real module


def test_lazy_module_first_use_from_many_threads() -> None:
    name = "quopri"  # another small module nobody here imports
    sys.modules.pop(name, None)
    proxy = lazy_module(name)
    seen: list[object] = []
    errors: list[BaseException] = []

    def use() -> None:
        try:
            seen.append(proxy.encodestring(b"="))
        except BaseException as exc:  # pragma: no cover - what this test guards against
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(seen) == 8
    assert set(seen) == {b"=3D"}


def test_lazy_mapping_builds_once() -> None:
    calls: list[int] = []

    def build() -> dict[str, int]:
        calls.append(1)
        return {"a": 1, "b": 2}

    table = LazyMapping(build)
    assert calls == []
    assert dict(table) == {"a": 1, "b": 2}
    assert table["b"] == 2
    assert len(table) == 2
    assert {**table, "c": 3} == {"a": 1, "b": 2, "c": 3}
    assert calls == [1]
