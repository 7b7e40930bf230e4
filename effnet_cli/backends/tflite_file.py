"""TFLite's flatbuffer, read and rewritten with LiteRT's generated schema: the one place effnet
edits a .tflite file (its writer names the input and output and adds effnet's metadata; its
runner adds the logits as a second output).

The TFLite converter names tensors after TensorFlow's graph (`serving_default_input_layer:0`,
`StatefulPartitionedCall_1:0`) and has no way to add metadata of one's own; the file format
has both: tensor and SignatureDef names, and a `metadata` table of named buffers, which the
interpreter ignores (the converter writes `min_runtime_version` there).
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path
from typing import Any

METADATA_NAME = "effnet"  # the entry of the file's metadata table holding effnet's JSON
IDENTIFIER = b"TFL3"  # TFLite's flatbuffer file identifier


def unpack(content: bytes) -> Any:
    """The whole file as LiteRT's object API (`ModelT`); buffers stay views of `content`."""
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(content, 0)


def pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=IDENTIFIER)
    return bytes(builder.Output())


def name_io(model: Any, input_name: str, output_name: str) -> None:
    """Name the first graph's input and output tensors, and its SignatureDef's keys for them,
    as effnet's other artifacts name them (ONNX, SavedModel and OpenVINO: `input` and
    `probabilities`, `logits` or `features`)."""
    graph = model.subgraphs[0]
    (input_index,), (output_index,) = graph.inputs, graph.outputs
    graph.tensors[int(input_index)].name = input_name.encode()
    graph.tensors[int(output_index)].name = output_name.encode()
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex != 0:
            continue
        for entry in signature.inputs or []:
            if entry.tensorIndex == input_index:
                entry.name = input_name.encode()
        for entry in signature.outputs or []:
            if entry.tensorIndex == output_index:
                entry.name = output_name.encode()


def add_metadata(model: Any, meta: dict[str, str]) -> None:
    """effnet's metadata (the strings ONNX gets in metadata_props) as one JSON buffer named
    METADATA_NAME in the file's metadata table; it replaces an entry of that name already there
    (whose buffer stays, unreferenced)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    model.metadata = [m for m in model.metadata or [] if m.name != METADATA_NAME.encode()]
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME.encode(), len(model.buffers) - 1
    model.metadata.append(entry)


def read_metadata(path: Path) -> dict[str, str]:
    """effnet's metadata from a .tflite file, {} where it holds none (a file effnet did not
    write). Read through the flatbuffer's tables on a memory map: nothing else is parsed."""
    from ai_edge_litert import schema_py_generated as schema

    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        model = schema.Model.GetRootAs(m, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() != METADATA_NAME.encode() or entry.Buffer() >= model.BuffersLength():
                continue
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            text = raw.tobytes() if hasattr(raw, "tobytes") else b""  # 0: an empty buffer
            del raw  # a view of the map, which cannot close while one exists
            try:
                doc = json.loads(text)
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
    return {}
