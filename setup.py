"""Build the Cython core (ext/) into the backtest package as part of `pip install`."""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "backtest._core",
        ["ext/_core.pyx"],
        include_dirs=[numpy.get_include(), "ext"],
        # -ffp-contract=off: no fused multiply-add contraction, so a build that vectorizes (or targets a CPU
        # with FMA) rounds every product and sum as the scalar code does: results stay bit-identical
        extra_compile_args=["-O3", "-fopenmp", "-fno-math-errno", "-ffp-contract=off"],
        extra_link_args=["-fopenmp"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    ),
    # test-only: def wrappers around the venue headers' helpers (ext/venues/), compared with their specs
    Extension("backtest._venue_probe", ["ext/_venue_probe.pyx"], include_dirs=["ext"],
              extra_compile_args=["-O3", "-fno-math-errno", "-ffp-contract=off"]),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        include_path=["ext"],
    )
)
