"""Build the small C kernels that make hashing and matching fast.

Everything else about the package lives in pyproject.toml; setup.py exists only
because setuptools declares C extensions here.
"""

import platform

from setuptools import Extension, setup

# popcnt is on every x86-64 CPU since 2008; elsewhere the compiler's builtin is used.
_ARCH_FLAGS = ["-mpopcnt"] if platform.machine() in ("x86_64", "AMD64") else []
# No -ffast-math and no fused multiply-add: PDQ must round exactly like the
# reference implementation.
_CFLAGS = ["-O3", "-std=c11", "-fno-fast-math", "-ffp-contract=off", *_ARCH_FLAGS]

setup(
    ext_modules=[
        Extension(
            "ridgeline.pdq._pdqcore",
            sources=["src/ridgeline/pdq/_pdqcore.c"],
            extra_compile_args=_CFLAGS,
        ),
        Extension(
            "ridgeline.index._kernels",
            sources=["src/ridgeline/index/_kernels.c"],
            extra_compile_args=[*_CFLAGS, "-pthread"],
            extra_link_args=["-pthread"],
        ),
    ],
)
