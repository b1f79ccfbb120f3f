"""Build the Go core into the package before setuptools collects it.

``pip install .`` and ``make wheel`` both run ``go build -buildmode=c-shared``
here, so the wheel carries python/cello/_cello.so. The library links
Debian's librdkafka dynamically; ``make wheel`` then copies librdkafka and
its dependencies into the wheel with auditwheel.
"""

import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithGo(build_py):
    def run(self):
        out = os.path.join(HERE, "python", "cello", "_cello.so")
        subprocess.run(
            ["go", "build", "-tags", "dynamic", "-buildmode=c-shared", "-o", out, "./bridge"],
            cwd=HERE,
            check=True,
        )
        header = os.path.join(HERE, "python", "cello", "_cello.h")
        if os.path.exists(header):
            os.remove(header)
        super().run()


class BinaryDistribution(Distribution):
    """Mark the wheel as platform-specific: it carries a native library."""

    def has_ext_modules(self):
        return True


try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools older than 70.1
    from wheel.bdist_wheel import bdist_wheel


class PlatformWheel(bdist_wheel):
    """Tag the wheel py3-none-<platform>: Python loads the library with
    ctypes, so one wheel serves every CPython 3 on that platform."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    cmdclass={"build_py": BuildWithGo, "bdist_wheel": PlatformWheel},
    distclass=BinaryDistribution,
)
