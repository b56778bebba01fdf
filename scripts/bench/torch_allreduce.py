"""torch.distributed all-reduce time and bandwidth, the reference for `allreduce-bench`.

Same sizes and the same measure: median of N calls (after 5 of warm-up), each between a barrier and a
device synchronisation; algbw = bytes / time, busbw = algbw * 2(N-1)/N (nccl-tests' definitions).
Run with one process per GPU:  torchrun --nproc_per_node 2 scripts/bench/torch_allreduce.py
"""
import argparse
import os
import time

import torch
import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("--sizes", default="65536,1048576,4194304,26214400,104857600")
parser.add_argument("--iterations", type=int, default=20)
args = parser.parse_args()

dist.init_process_group("nccl")
rank, world = dist.get_rank(), dist.get_world_size()
torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
if rank == 0:
    print(f"torch_allreduce: {world} ranks, NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}, torch {torch.__version__}, "
          f"median of {args.iterations}")
    print(f"{'tensors':34} {'bytes':>12} {'time_us':>10} {'algbw_GB/s':>10} {'busbw_GB/s':>10}")
for size in [int(s) for s in args.sizes.split(",")]:
    tensor = torch.ones(size // 4, device="cuda")
    times = []
    for iteration in range(args.iterations + 5):
        dist.barrier()
        torch.cuda.synchronize()
        start = time.perf_counter()
        dist.all_reduce(tensor, op=dist.ReduceOp.AVG)
        torch.cuda.synchronize()
        if iteration >= 5:
            times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2]
    algbw = size / seconds / 1e9
    if rank == 0:
        print(f"{'one tensor':34} {size:12d} {seconds * 1e6:10.1f} {algbw:10.2f} {algbw * 2 * (world - 1) / world:10.2f}")
dist.destroy_process_group()
