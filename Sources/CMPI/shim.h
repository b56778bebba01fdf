// Open MPI's handles are C macros (pointers to predefined objects), which Swift cannot import:
// these functions re-export the ones FlashGradDistributed uses.
#include <mpi.h>

static inline MPI_Comm flashgrad_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype flashgrad_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype flashgrad_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype flashgrad_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op flashgrad_mpi_sum(void) { return MPI_SUM; }
static inline void *flashgrad_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler flashgrad_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int flashgrad_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int flashgrad_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
