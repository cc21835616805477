"""Writes the backbone of a graft model folder as a PyTorch checkpoint, the form a pretrained
backbone arrives in: model.safetensors' "backbone." tensors, prefix removed, torch.save'd.

    python3 bench/extract_backbone.py MODEL_FOLDER OUTPUT.pth
"""
import json
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def main():
    folder, output = sys.argv[1], sys.argv[2]
    with open(folder + "/model.safetensors", "rb") as file:
        data = file.read()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    start = 8 + header_size
    state = {}
    for name, entry in header.items():
        if name == "__metadata__" or not name.startswith("backbone."):
            continue
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[start + begin:start + end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
        state[name[len("backbone."):]] = torch.from_numpy(array.copy())
    if not state:
        sys.exit(folder + "/model.safetensors: no backbone tensors")
    torch.save(state, output)


if __name__ == "__main__":
    main()
