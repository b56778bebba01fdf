#!/usr/bin/env bash
# Prints the path of the libnvrtc.so.13 that PyPI's nvidia-cuda-nvrtc installed, or nothing.
python3 - <<'PY' 2>/dev/null || true
import os
try:
    import nvidia
except ImportError:
    raise SystemExit
for folder in nvidia.__path__:
    path = os.path.join(folder, "cu13", "lib", "libnvrtc.so.13")
    if os.path.exists(path):
        print(path)
        break
PY
