"""PyTorch's scaled_dot_product_attention on the GPU, the reference for `attention-bench --device cuda`.

Same shapes and FLOP model as attention-bench: B = 4, H = 16, forward 4·B·H·N²·D, backward 2.5× the
forward, causal halves both. Each backend (flash, cuDNN, memory-efficient) in each dtype it takes;
median of --repetitions after 3 of warm-up, timed with CUDA events. One line per case:
  dtype D N causal backend fwd_ms fwdbwd_ms fwd_TFLOP/s fwdbwd_TFLOP/s
"""
import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

parser = argparse.ArgumentParser()
parser.add_argument("--dims", default="64,128")
parser.add_argument("--lengths", default="1024,2048,4096,8192,16384")
parser.add_argument("--dtypes", default="bfloat16,float16,float32")
parser.add_argument("--backends", default="flash,cudnn,efficient")
parser.add_argument("--repetitions", type=int, default=10)
args = parser.parse_args()

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}
B, H = 4, 16


def median_ms(fn):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(args.repetitions):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, B={B} H={H}", flush=True)
print(f"{'dtype':9} {'D':>4} {'N':>6} {'causal':>6} {'backend':9} {'fwd_ms':>9} {'fwdbwd_ms':>10} {'fwd_TF/s':>9} {'fb_TF/s':>8}")
for dtype_name in args.dtypes.split(","):
    dtype = getattr(torch, dtype_name)
    for dim in map(int, args.dims.split(",")):
        for n in map(int, args.lengths.split(",")):
            for causal in (False, True):
                for name in args.backends.split(","):
                    q, k, v = (torch.randn(B, H, n, dim, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
                    upstream = torch.randn_like(q)
                    try:
                        with sdpa_kernel(BACKENDS[name]):
                            forward = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                            def forward_backward():
                                forward().backward(upstream)

                            forward_ms, total_ms = median_ms(forward), median_ms(forward_backward)
                    except RuntimeError as error:
                        print(f"{dtype_name:9} {dim:4d} {n:6d} {str(causal):>6} {name:9} unsupported: {str(error).splitlines()[0][:60]}", flush=True)
                        continue
                    flops = 4 * B * H * n * n * dim * (0.5 if causal else 1)
                    print(f"{dtype_name:9} {dim:4d} {n:6d} {str(causal):>6} {name:9} {forward_ms:9.3f} {total_ms:10.3f} "
                          f"{flops / forward_ms / 1e9:9.1f} {3.5 * flops / total_ms / 1e9:8.1f}", flush=True)
                    del q, k, v, upstream
