"""A tiny ONNX model with the salient teacher's contract (ISNet / U2-Net), built in milliseconds with
``onnx``; the tests of the salient and combined teachers share it.

    >>> from tests.tiny_onnx import tiny_model
    >>> teacher = build_teacher("salient", model=str(tiny_model(tmp_path / "tiny.onnx")), threads=1)
"""

from __future__ import annotations

from pathlib import Path


def tiny_model(path: Path, size: int | None = 64, sigmoid: bool = True) -> Path:
    """ISNet's contract in four nodes: 1x3xSxS ``(x - 128) / 256`` -> 1x1xSxS. The channel mean goes
    through ``sigmoid(20 * (v + 0.11))``: pixels brighter than about 100 grey levels are foreground.
    ``size=None`` gives a dynamic input size; ``sigmoid=False`` outputs logits."""
    import onnx
    from onnx import TensorProto, helper

    dims = [1, 3, size, size] if size else [1, 3, "H", "W"]
    out_dims = [1, 1, size, size] if size else [1, 1, "H", "W"]
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Mul", ["m", "scale"], ["s"]),
             helper.make_node("Add", ["s", "bias"], ["z" if sigmoid else "output"])]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["output"]))
    graph = helper.make_graph(
        nodes, "tiny_salient",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_dims)],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [20.0]),
         helper.make_tensor("bias", TensorProto.FLOAT, [], [2.2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
