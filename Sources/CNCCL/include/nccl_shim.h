// NCCL passes its 128-byte unique id to ncclCommInitRank by value, which a Swift function type
// cannot express; this shim makes that one call through a function pointer found at run time.
// Nothing here needs NCCL's or CUDA's headers.
#ifndef FLASHGRAD_NCCL_SHIM_H
#define FLASHGRAD_NCCL_SHIM_H

#define FLASHGRAD_NCCL_UNIQUE_ID_BYTES 128

typedef struct { char internal[FLASHGRAD_NCCL_UNIQUE_ID_BYTES]; } flashgrad_nccl_unique_id;

/// Calls `ncclCommInitRank(comm, ranks, id, rank)` through `function`; returns its ncclResult_t.
int flashgrad_nccl_comm_init_rank(void *function, void **comm, int ranks, const char *id, int rank);

#endif
