"""The latency floor: the least time a forward pass can take when every weight is read
from device memory once, and the check that flags figures below it.

floor = parameters x bytes per parameter x passes / memory bandwidth. Real models are
slower (activations, kernels, launches), so a measured or reported time below the
floor is a unit slip or a different measurement, never a fast model.
"""

from __future__ import annotations

# Peak memory bandwidth in GB/s (vendor data sheets).
BANDWIDTH_GB_S = {
    "H200": 4800.0,
    "H100 SXM": 3350.0,
    "H100 NVL": 3900.0,
    "H100 PCIe": 2000.0,
    "H100": 3350.0,  # an unqualified H100 (the paper's) is taken as SXM
    "A100-SXM4-80GB": 2039.0,
    "A100 80GB": 2039.0,
    "A100-PCIE-40GB": 1555.0,
    "A100": 1555.0,
    "L40S": 864.0,
    "L40": 864.0,
    "RTX 4090": 1008.0,
    "RTX 3090": 936.0,
    "A10G": 600.0,
    "L4": 300.0,
    "V100": 900.0,
    "T4": 320.0,
}

DTYPE_BYTES = {"float32": 4, "fp32": 4, "tf32": 4, "float16": 2, "fp16": 2, "bfloat16": 2, "bf16": 2,
               "float8": 1, "fp8": 1, "int8": 1, "int4": 0.5}


def bandwidth_for(device_name: str) -> tuple[str, float] | None:
    """(table key, GB/s) for a device name such as 'NVIDIA H100 80GB HBM3'; longest match wins."""
    name = device_name.upper().replace("-", " ")
    for key in sorted(BANDWIDTH_GB_S, key=len, reverse=True):
        if key.upper().replace("-", " ") in name:
            return key, BANDWIDTH_GB_S[key]
    return None


def floor_s(parameters: int, dtype: str, passes: int, bandwidth_gb_s: float) -> float | None:
    """Seconds to read the weights `passes` times; None when it cannot be known."""
    if not parameters or dtype not in DTYPE_BYTES or not bandwidth_gb_s:
        return None
    return parameters * DTYPE_BYTES[dtype] * passes / (bandwidth_gb_s * 1e9)


def check_ttff(ttff_s: float | None, parameters: int, dtype: str, passes_first_chunk: int,
               device_name: str) -> dict:
    """The TTFF floor on that device and whether a TTFF lies below it."""
    found = bandwidth_for(device_name or "")
    floor = floor_s(parameters, dtype, passes_first_chunk, found[1]) if found else None
    return {"ttff_floor_s": floor, "floor_device": found[0] if found else None,
            "ttff_below_floor": bool(floor is not None and ttff_s is not None and ttff_s < floor)}
