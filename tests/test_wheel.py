"""The wheel from ``make wheel`` carries librdkafka and loads it from inside itself."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECK = r"""
import pathlib, cello
from cello import KafkaConfig
KafkaConfig.local()  # loads the core library
package = pathlib.Path(cello.__file__).parent
mapped = {line.split()[-1] for line in open("/proc/self/maps") if "/" in line}
libs = sorted(p for p in mapped if pathlib.Path(p).name.startswith("librdkafka"))
print("PACKAGE", package)
print("LIBS", libs)
assert libs, "librdkafka is not loaded"
assert all(str(package.parent / "cello.libs") in p for p in libs), libs
"""


def test_wheel_bundles_rdkafka(tmp_path: Path) -> None:
    subprocess.run(["make", "wheel"], cwd=ROOT, check=True, capture_output=True, timeout=600)
    wheels = sorted((ROOT / "dist").glob("cello-*-py3-none-manylinux*.whl"))
    assert wheels, "make wheel wrote no manylinux wheel to dist/"

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheels[-1]],
                   check=True, timeout=300)
    clean_env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH", "LD_PRELOAD")}
    result = subprocess.run([python, "-c", CHECK], cwd=tmp_path, env=clean_env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cello.libs/librdkafka" in result.stdout

    installed = next((env_dir / "lib").glob("python*/site-packages/cello/_cello.so"))
    ldd = subprocess.run(["ldd", installed], capture_output=True, text=True, check=True).stdout
    rdkafka = [line for line in ldd.splitlines() if line.strip().startswith("librdkafka")]
    assert len(rdkafka) == 1
    resolved = Path(rdkafka[0].split("=>")[1].split("(")[0].strip()).resolve()
    assert resolved.parent == installed.parent.parent / "cello.libs", ldd
