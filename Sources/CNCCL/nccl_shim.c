#include "nccl_shim.h"
#include <string.h>

typedef int (*comm_init_rank_function)(void **comm, int ranks, flashgrad_nccl_unique_id id, int rank);

int flashgrad_nccl_comm_init_rank(void *function, void **comm, int ranks, const char *id, int rank) {
    flashgrad_nccl_unique_id copy;
    memcpy(copy.internal, id, FLASHGRAD_NCCL_UNIQUE_ID_BYTES);
    return ((comm_init_rank_function)function)(comm, ranks, copy, rank);
}
