"""Engines are found through entry points; engines never touch Qt, and describing one needs no torch."""
import subprocess
import sys
import textwrap

from engines import available_engines, get_engine


def test_builtin_text_engine_is_discovered():
    engines = available_engines()
    assert "text" in engines and engines["text"].modality == "text"
    assert {"small", "tiny", "large"} <= set(get_engine("text").presets())


def test_a_third_party_engine_is_discovered_through_its_entry_point(tmp_path):
    pkg = tmp_path / "site"
    (pkg / "toy_engine").mkdir(parents=True)
    (pkg / "toy_engine" / "__init__.py").write_text(textwrap.dedent("""
        from engines.core.interface import Engine
        class ToyEngine(Engine):
            name = "toy"
            modality = "text"
            def controls(self):
                return []
    """))
    dist = pkg / "toy_engine-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-engine\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sequence_studio.engines]\ntoy = toy_engine:ToyEngine\n")
    code = "from engines import available_engines; print(sorted(available_engines()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(pkg), "PATH": ""})
    assert "'toy'" in out.stdout and "'text'" in out.stdout


def test_describing_engines_imports_neither_torch_nor_qt():
    code = textwrap.dedent("""
        import sys
        from engines import available_engines
        for engine in available_engines().values():
            engine.controls(); engine.presets(); engine.bundled_models()
        heavy = [m for m in ("torch", "PySide6") if m in sys.modules]
        print(heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_engines_never_import_qt():
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1] / "engines"
    offenders = [str(p) for p in root.rglob("*.py") if "PySide6" in p.read_text() or "pyqtgraph" in p.read_text()]
    assert offenders == []
