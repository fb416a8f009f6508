"""Checkpoints: one msgpack stream holding the spec, params and grads, optimizer and RNG
state, progress and the plugin lock (docs/checkpoint-format.md).

- `container.py`: the file format (header, aligned payloads, every check on reading)
- `header.py`: the header's schema; `checksums.py`: XXH3-64 (CRC-32 in format 1 files)
- `writer.py`: saving a network and its training state; `reader.py`: loading them
- `memory.py`: load targets and zeros that take memory only when written
Files are replaced atomically (`nnkit/atomic.py`).
"""

from nnkit.checkpoint.lock import PluginVersionWarning
from nnkit.checkpoint.reader import Checkpoint, LoadReport, inspect, load, load_into, verify
from nnkit.checkpoint.writer import plugin_lock, save

__all__ = ["Checkpoint", "LoadReport", "PluginVersionWarning", "inspect", "load", "load_into", "plugin_lock",
           "save", "verify"]
