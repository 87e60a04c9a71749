"""Check a request against its model spec before it leaves the process.

Every error names the tensor (and column, when the spec names columns), the value that
was given and what is allowed, so a caller can fix the request without reading configs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from marquee.errors import InputValidationError
from marquee.specs.base import ModelSpec, TensorSpec


def validate_inputs(spec: ModelSpec, inputs: Mapping[str, object]) -> dict[str, np.ndarray]:
    expected = [t.name for t in spec.inputs]
    missing = [name for name in expected if name not in inputs]
    unknown = [name for name in inputs if name not in expected]
    if missing or unknown:
        raise InputValidationError(
            f"{spec.name}: missing inputs {missing}, unknown inputs {unknown}; expected exactly {expected}"
        )
    arrays = {t.name: _validated_tensor(spec, t, inputs[t.name]) for t in spec.inputs}
    if spec.batched:
        sizes = {name: a.shape[0] for name, a in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise InputValidationError(f"{spec.name}: inputs disagree on batch size: {sizes}")
    return arrays


def _validated_tensor(spec: ModelSpec, tensor: TensorSpec, value: object) -> np.ndarray:
    target = np.dtype(tensor.dtype.numpy)
    if isinstance(value, np.ndarray):
        array = value
    else:  # lists and scalars: build with the spec's dtype, reject what does not fit
        try:
            array = np.asarray(value, dtype=target)
        except (TypeError, ValueError, OverflowError) as error:
            raise InputValidationError(
                f"{spec.name}: input `{tensor.name}` cannot be read as {tensor.dtype.wire_name}: {error}"
            ) from None
    if array.dtype != target:
        raise InputValidationError(
            f"{spec.name}: input `{tensor.name}` has dtype {array.dtype}; allowed: {target} "
            f"({tensor.dtype.wire_name}). Convert with .astype(np.{target})"
        )
    _check_shape(spec, tensor, array)
    _check_values(spec, tensor, array)
    return np.ascontiguousarray(array)


def _check_shape(spec: ModelSpec, tensor: TensorSpec, array: np.ndarray) -> None:
    dims = list(tensor.triton_dims)
    expected = ([-1] if spec.batched else []) + dims
    shown = ["batch" if spec.batched and i == 0 else ("any" if d == -1 else d) for i, d in enumerate(expected)]
    if array.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, array.shape, strict=False)):
        raise InputValidationError(
            f"{spec.name}: input `{tensor.name}` has shape {list(array.shape)}; allowed: {shown}"
            + (f" with columns {list(tensor.fields)}" if tensor.fields else "")
        )
    if spec.batched and not 1 <= array.shape[0] <= spec.max_batch_size:
        raise InputValidationError(
            f"{spec.name}: input `{tensor.name}` has batch size {array.shape[0]}; "
            f"allowed: 1 to {spec.max_batch_size} (max_batch_size). Split the request"
        )


def _check_values(spec: ModelSpec, tensor: TensorSpec, array: np.ndarray) -> None:
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            _raise_at(spec, tensor, array, bad, "is not finite; allowed: finite numbers")
    if tensor.value_range is not None:
        low, high = tensor.value_range
        bad = (array < low) | (array > high)
        if bad.any():
            _raise_at(spec, tensor, array, bad, f"is out of range; allowed: {low} to {high}")


def _raise_at(spec: ModelSpec, tensor: TensorSpec, array: np.ndarray, bad: np.ndarray, what: str) -> None:
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    column = f" ({tensor.fields[index[-1]]})" if tensor.fields else ""
    raise InputValidationError(
        f"{spec.name}: input `{tensor.name}`{list(index)}{column} = {array[index]!r} {what} "
        f"[{int(bad.sum())} bad value(s) in total]"
    )
