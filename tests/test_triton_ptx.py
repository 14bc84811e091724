"""PTX audit: every Triton kernel compiled for sm_80 and sm_90 on the CPU, no GPU needed.

Triton's compiler builds TTIR, PTX and (with the ``ptxas`` it ships) cubin without a
driver. The audit asserts, for each kernel and dtype:

* no approximate or flush-to-zero instruction: ``ex2.approx``, ``lg2.approx``,
  ``div.full``, ``div.approx``, ``rcp.approx``, ``sqrt.approx``, ``tanh.approx``,
  ``.ftz``;
* no transcendental op and no libdevice call in the TTIR (``math.exp``, ``math.log``...,
  ``tt.extern_elementwise``), and no float32 division (``arith.divf`` on ``f32``):
  this is what catches a ``tl.exp`` that the interpreter cannot see (there it is
  NumPy's accurate exp), whether on float32 or float64 values;
* no call instruction and no local memory (``.local``, ``ld.local``, ``st.local``),
  and ``ptxas -v`` reports 0 bytes of spill stores and loads and of stack;
* the float64 constants of our exp reach the PTX as float64 (``0d3FF71547652B82FE``
  is ``log2(e)``): a bare Python float in a kernel would have been rounded to float32
  on the GPU, though not in the interpreter.

Compilation runs in a subprocess without ``TRITON_INTERPRET`` (under the interpreter
``@triton.jit`` gives an interpreted function that cannot be compiled), once for all
tests; it takes about a minute on two cores.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("triton") is None:
    pytest.skip(
        "triton is not installed (the `gpu` extra); `nox -s triton-interpret` runs the audit",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parent.parent
ARCHS = (80, 90)
FORBIDDEN_PTX = (
    "ex2.approx",
    "lg2.approx",
    "div.full",
    "div.approx",
    "rcp.approx",
    "sqrt.approx",
    "tanh.approx",
    ".ftz",
    ".local",
)
FORBIDDEN_TTIR = re.compile(
    r"math\.(exp|exp2|log|log2|log1p|expm1|tanh|sqrt|rsqrt|erf|pow)\b|tt\.extern_elementwise"
    r"|tt\.precise_divf|arith\.divf [^\n]*: (tensor<[0-9x]*)?f32"
)
LOG2E_F64 = "0d3FF71547652B82FE"

CE_OFF = {"HAS_W": False, "SMOOTH": 0.0, "CAP": 0.0, "ZLOSS": 0.0}
CE_ON = {"HAS_W": True, "SMOOTH": 0.1, "CAP": 30.0, "ZLOSS": 1e-4}


def _cases() -> list[tuple[str, str, dict[str, Any], str]]:
    """``(kernel, dtype, constexprs, id)`` for every kernel the lanes launch."""
    cases = []
    for dt in ("fp32", "fp64", "bf16"):
        for op in (0, 1, 2):
            cases.append(("rows_forward", dt, {"OP": op}, f"rows_forward-op{op}-{dt}"))
            cases.append(("rows_backward", dt, {"OP": op}, f"rows_backward-op{op}-{dt}"))
    for dt in ("fp32", "fp64"):
        for name, opts in (("off", CE_OFF), ("on", CE_ON)):
            for kernel in ("ce_forward", "ce_backward"):
                cases.append((kernel, dt, opts, f"{kernel}-{name}-{dt}"))
    return cases


def _signature(kernel: str, dt: str) -> tuple[Any, dict[str, str], dict[str, Any]]:
    from xsoftmax._kernels.triton import cross_entropy as ce
    from xsoftmax._kernels.triton import rows

    p, f64, i64 = f"*{dt}", "*fp64", "*i64"
    if kernel == "rows_forward":
        sig = {"x_ptr": p, "out_ptr": p, "m_ptr": f64, "lg_ptr": f64}
        sig |= {"n_cols": "i32", "sx_r": "i32", "so_r": "i32"}
        return rows.rows_forward_kernel, sig, {"sx_c": 1, "so_c": 1}
    if kernel == "rows_backward":
        sig = {"x_ptr": p, "g_ptr": p, "m_ptr": f64, "lg_ptr": f64, "dx_ptr": p}
        sig |= {"n_cols": "i32", "sx_r": "i32", "sg_r": "i32", "sd_r": "i32"}
        return rows.rows_backward_kernel, sig, {"sx_c": 1, "sg_c": 1, "sd_c": 1}
    head = {"x_ptr": p, "t_ptr": i64, "w_ptr": f64, "wsum_ptr": f64}
    if kernel == "ce_forward":
        sig = head | dict.fromkeys(("ce_ptr", "zl_ptr", "wt_ptr", "m_ptr", "lg_ptr"), f64)
        sig |= {"n_cols": "i32", "sx_r": "i32", "ignore_index": "i32"}
        return ce.cross_entropy_forward_kernel, sig, {"sx_c": 1}
    sig = head | dict.fromkeys(("m_ptr", "lg_ptr", "gce_ptr", "gzl_ptr"), f64) | {"dx_ptr": p}
    sig |= {"n_cols": "i32", "sx_r": "i32", "sd_r": "i32", "ignore_index": "i32"}
    return ce.cross_entropy_backward_kernel, sig, {"sx_c": 1, "sd_c": 1}


def _compile_all() -> dict[str, dict[str, Any]]:
    """Compile every case for every arch (run in the subprocess); findings by case id."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from xsoftmax._kernels.triton.launch import MAX_BLOCK, num_warps

    triton.knobs.nvidia.dump_ptxas_log = True  # ptxas -v output, printed to stdout
    found: dict[str, dict[str, Any]] = {}
    for kernel, dt, consts, case_id in _cases():
        fn, sig, fixed = _signature(kernel, dt)
        constexprs = {**fixed, **consts, "BLOCK": MAX_BLOCK}
        for arch in ARCHS:
            src = ASTSource(
                fn=fn,
                signature={**sig, **dict.fromkeys(constexprs, "constexpr")},
                constexprs=constexprs,
            )
            log = io.StringIO()
            with contextlib.redirect_stdout(log):
                compiled = triton.compile(
                    src,
                    target=GPUTarget("cuda", arch, 32),
                    options={"enable_fp_fusion": False, "num_warps": num_warps(MAX_BLOCK)},
                )
            ptx, ttir = compiled.asm["ptx"], compiled.asm["ttir"]
            code = [ln for ln in ptx.splitlines() if not ln.lstrip().startswith(("//", ".b8"))]
            found[f"{case_id}-sm{arch}"] = {
                "forbidden_ptx": sorted({w for w in FORBIDDEN_PTX for ln in code if w in ln}),
                "calls": sorted({ln.strip() for ln in code if re.match(r"\s*call", ln)}),
                "forbidden_ttir": sorted({m.group(0) for m in FORBIDDEN_TTIR.finditer(ttir)}),
                "log2e_f64": LOG2E_F64 in ptx,
                "spills": re.findall(
                    r"(\d+) bytes spill stores, (\d+) bytes spill loads", log.getvalue()
                ),
                "stack": re.findall(r"(\d+) bytes stack frame", log.getvalue()),
            }
    return found


@pytest.fixture(scope="module")
def audit() -> dict[str, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["TRITON_ALWAYS_COMPILE"] = "1"  # a cached kernel skips ptxas, and its spill report
    proc = subprocess.run(
        [sys.executable, __file__, "--emit"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


CASE_IDS = [f"{c[3]}-sm{a}" for c in _cases() for a in ARCHS]


@pytest.mark.parametrize("case", CASE_IDS)
def test_no_approximate_or_flushing_instruction(audit: dict[str, Any], case: str) -> None:
    found = audit[case]
    assert found["forbidden_ptx"] == [], found["forbidden_ptx"]
    assert found["forbidden_ttir"] == [], found["forbidden_ttir"]
    assert found["calls"] == [], found["calls"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_no_spill_and_float64_constants(audit: dict[str, Any], case: str) -> None:
    found = audit[case]
    assert found["spills"], found["spills"]
    assert all(s == ["0", "0"] for s in found["spills"]), found["spills"]
    assert found["stack"], found["stack"]
    assert all(s == "0" for s in found["stack"]), found["stack"]
    assert found["log2e_f64"], "log2(e) did not reach the PTX as a float64 constant"


if __name__ == "__main__" and sys.argv[1:] == ["--emit"]:
    with contextlib.redirect_stdout(io.StringIO()):
        result = _compile_all()
    print(json.dumps(result))
