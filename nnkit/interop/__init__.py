"""Trained networks outside nnkit, and other formats in: ONNX export (`onnx`, with the
built-in layers' converters in `onnx_layers`) and safetensors files (`safetensors`)."""
