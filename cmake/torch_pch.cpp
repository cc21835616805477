// Anchors the shared LibTorch precompiled header; see graft_torch_pch in CMakeLists.txt.
