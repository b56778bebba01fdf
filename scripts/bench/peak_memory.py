"""Runs a command and prints its peak resident memory (the child's maximum resident set) with the
tokens/s and exact match it reports, for comparing binaries that do not print their own memory.

    python3 scripts/bench/peak_memory.py .build/release/reverse --steps 400 --eval-every 0 --threads 2
"""
import re
import resource
import subprocess
import sys

output = subprocess.run(sys.argv[1:], capture_output=True, text=True).stdout
tokens = re.search(r"\(([0-9]+) target tokens/s", output)
exact = re.search(r"exact_match=([0-9.]+)", output)
print(f"{sys.argv[1]}: peak resident memory {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024} MiB, "
      f"{tokens.group(1) if tokens else '?'} target tokens/s, exact match {exact.group(1) if exact else '?'}")
