"""Builds the optional C kernel of the fast generation path (wavegen/synth/_kernel.c), three times: with float
weights (wavegen.synth._kernel, the "c" backend), with IEEE half weights (wavegen.synth._kernel_f16, from
_kernel_f16.c: the same source with WG_WEIGHT_F16; the "c16" backend) and with bf16 weights and inputs to
its products (wavegen.synth._kernel_bf16, WG_WEIGHT_BF16; the "cbf16" backend).

Everything else about the package is in pyproject.toml. The kernel is compiled for the machine it is
installed on (-march=native; set WAVEGEN_MARCH, e.g. x86-64-v3, to build for other machines). If it
cannot be compiled, the install still succeeds and wavegen uses its numba kernel instead.
"""

import os
import sys

from setuptools import Extension, setup

march = os.environ.get("WAVEGEN_MARCH", "native")
args = ["-O3", "-ffast-math", "-std=c11"]
if sys.platform != "win32":
    args.append(f"-march={march}")

# glibc: libmvec holds the vectorized expf that -ffast-math loops call
LIBS = ["m", "mvec"] if sys.platform.startswith("linux") else ([] if sys.platform == "win32" else ["m"])

setup(ext_modules=[Extension(f"wavegen.synth.{name}", sources=[f"wavegen/synth/{name}.c"], extra_compile_args=args,
                             libraries=LIBS, depends=["wavegen/synth/_kernel.c"], optional=True)
                   for name in ("_kernel", "_kernel_f16", "_kernel_bf16")])
