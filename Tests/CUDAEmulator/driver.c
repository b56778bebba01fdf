// A CUDA emulator for testing FlashGrad's CUDA backend on machines without a GPU: one library that
// stands in for the driver (libcuda.so.1), NVRTC (libnvrtc.so.13), cuBLAS (libcublas.so.13) and
// NCCL (libnccl.so.2: the ranks of one machine, through shared memory).
// - "Device" memory is host memory; copies are memcpy.
// - NVRTC compiles the kernels' CUDA C with the host's C++ compiler after prelude.h, into a shared
//   library that stands in for the CUBIN (its symbols hidden, so that the Float and Double modules
//   never bind to each other's kernels); every `extern "C" __global__` kernel is registered by name.
// - A launch runs the grid's blocks one after another, each thread a fiber (prelude.h).
// - cuBLAS's products go to OpenBLAS (both are column-major); NCCL's collectives go through a
//   shared-memory object the unique id names. There are 8 devices, all of them this host.
// scripts/test.sh builds it (scripts/build-cuda-emulator.sh) and runs the CUDA tests against it with
// FLASHGRAD_CUDA_PATH pointing at it. Numbers match a GPU's to rounding (the host's exp, log, erf);
// speed does not: it is for correctness only. Fresh device memory is NaN until written.
// - FLASHGRAD_EMULATOR_SKIP_KERNELS=1: launches and matrix products return at once, which leaves the
//   host's side of a step to time.
// - FLASHGRAD_EMULATOR_TRACE=<file>: a line per launch (kernel, grid, block), to count what a step launches.
// - FLASHGRAD_EMULATOR_KEEP=1: the translated kernel source and its library stay in /tmp, for reading.
#define _GNU_SOURCE
#include <cblas.h>
#include <ctype.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef int CUresult;
typedef uint64_t CUdeviceptr;
enum { SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, INVALID_DEVICE = 101, NOT_FOUND = 500, LAUNCH_FAILED = 719 };

static __thread void *current_context;
static int primary_context;  // its address is the context handle
static pthread_mutex_t launch_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_error[1024];

// FLASHGRAD_EMULATOR_SKIP_KERNELS: launches and products do nothing.
static int skipping_work(void) {
    static int skip = -1;
    if (skip < 0) skip = getenv("FLASHGRAD_EMULATOR_SKIP_KERNELS") != NULL;
    return skip;
}

// MARK: Driver

CUresult cuInit(unsigned flags) { (void)flags; return SUCCESS; }
enum { DEVICES = 8 };  // so that each rank of a multi-process test has a "GPU" of its own
CUresult cuDeviceGetCount(int *count) { *count = DEVICES; return SUCCESS; }
CUresult cuDeviceGet(int *device, int ordinal) { *device = ordinal; return ordinal >= 0 && ordinal < DEVICES ? SUCCESS : INVALID_DEVICE; }
CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
    (void)device;
    *value = attribute == 75 ? 9 : attribute == 76 ? 0 : 1;  // compute capability 9.0, as an H100
    return SUCCESS;
}
CUresult cuDeviceGetName(char *name, int length, int device) {
    (void)device;
    snprintf(name, (size_t)length, "FlashGrad CUDA emulator");  // the tests skip what is too slow for it by this name
    return SUCCESS;
}
CUresult cuDevicePrimaryCtxRetain(void **context, int device) { (void)device; *context = &primary_context; return SUCCESS; }
CUresult cuCtxSetCurrent(void *context) { current_context = context; return SUCCESS; }
CUresult cuCtxGetCurrent(void **context) { *context = current_context; return SUCCESS; }
CUresult cuCtxSynchronize(void) { return SUCCESS; }

CUresult cuMemAlloc_v2(CUdeviceptr *address, size_t bytes) {
    void *memory = aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (!memory) return OUT_OF_MEMORY;
    // NaN in every Float and Double until written, so that a kernel reading what nothing wrote shows.
    memset(memory, 0xff, (bytes + 255) / 256 * 256);
    *address = (CUdeviceptr)(uintptr_t)memory;
    return SUCCESS;
}
CUresult cuMemFree_v2(CUdeviceptr address) { free((void *)(uintptr_t)address); return SUCCESS; }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr destination, const void *source, size_t bytes, void *stream) {
    (void)stream;
    memcpy((void *)(uintptr_t)destination, source, bytes);
    return SUCCESS;
}
CUresult cuMemcpyDtoH_v2(void *destination, CUdeviceptr source, size_t bytes) {
    memcpy(destination, (const void *)(uintptr_t)source, bytes);
    return SUCCESS;
}
CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total_bytes) { *free_bytes = *total_bytes = (size_t)16 << 30; return SUCCESS; }

typedef int (*LaunchFunction)(const char *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void **, char *, size_t);
typedef struct { void *library; LaunchFunction launch; } Module;
typedef struct { Module *module; char name[128]; } Function;

// The "CUBIN" is the compiled shared library; its size is in its ELF header (section headers come last).
CUresult cuModuleLoadData(void **module, const void *image) {
    const Elf64_Ehdr *header = image;
    if (memcmp(header->e_ident, ELFMAG, SELFMAG) != 0) return INVALID_VALUE;
    size_t size = header->e_shoff + (size_t)header->e_shnum * header->e_shentsize;
    char path[] = "/tmp/flashgrad-emulated-kernels-XXXXXX";
    int file = mkstemp(path);
    if (file < 0) return INVALID_VALUE;
    ssize_t written = write(file, image, size);
    close(file);
    void *library = written == (ssize_t)size ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    unlink(path);
    if (!library) { snprintf(last_error, sizeof last_error, "%s", dlerror()); return INVALID_VALUE; }
    Module *result = calloc(1, sizeof(Module));
    result->library = library;
    result->launch = (LaunchFunction)dlsym(library, "emu_launch");
    *module = result;
    return SUCCESS;
}

CUresult cuModuleGetFunction(void **function, void *module, const char *name) {
    Module *owner = module;
    int (*has_kernel)(const char *) = (int (*)(const char *))dlsym(owner->library, "emu_has_kernel");
    if (!has_kernel || !has_kernel(name) || strlen(name) >= 128) return NOT_FOUND;
    Function *result = calloc(1, sizeof(Function));
    result->module = owner;
    strcpy(result->name, name);
    *function = result;
    return SUCCESS;
}

CUresult cuFuncSetAttribute(void *function, int attribute, int value) {
    (void)function; (void)attribute;
    return value <= 256 * 1024 ? SUCCESS : INVALID_VALUE;  // the prelude's dynamic shared memory
}

CUresult cuLaunchKernel(void *function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void *stream, void **parameters, void **extra) {
    (void)stream; (void)extra;
    static int tracing = -1;
    static FILE *trace;
    Function *kernel = function;
    if (tracing < 0) {
        trace = getenv("FLASHGRAD_EMULATOR_TRACE") ? fopen(getenv("FLASHGRAD_EMULATOR_TRACE"), "w") : NULL;
        tracing = trace != NULL;
    }
    if (trace) fprintf(trace, "%s %u,%u,%u %u,%u,%u\n", kernel->name, gx, gy, gz, bx, by, bz);
    if (skipping_work()) return SUCCESS;
    if (shared > 256 * 1024) return INVALID_VALUE;
    pthread_mutex_lock(&launch_lock);
    int failed = kernel->module->launch(kernel->name, gx, gy, gz, bx, by, bz, parameters, last_error, sizeof last_error);
    pthread_mutex_unlock(&launch_lock);
    if (failed) fprintf(stderr, "CUDA emulator: %s\n", last_error);
    return failed ? LAUNCH_FAILED : SUCCESS;
}

CUresult cuGetErrorString(CUresult result, const char **text) {
    *text = result == LAUNCH_FAILED ? "the emulated launch failed (its reason is on stderr)"
          : result == NOT_FOUND ? "named symbol not found" : result == OUT_OF_MEMORY ? "out of memory" : "emulator error";
    return SUCCESS;
}

// MARK: NVRTC

typedef struct { char *source; char *image; size_t size; char log[8192]; } Program;

int nvrtcVersion(int *major, int *minor) { *major = 0; *minor = 0; return 0; }
int nvrtcCreateProgram(void **program, const char *source, const char *name, int headers, const char **contents,
                       const char **names) {
    (void)name; (void)headers; (void)contents; (void)names;
    Program *result = calloc(1, sizeof(Program));
    result->source = strdup(source);
    *program = result;
    return 0;
}
int nvrtcDestroyProgram(void **program) {
    Program *p = *program;
    free(p->source); free(p->image); free(p);
    *program = NULL;
    return 0;
}

// Appends `text` (n bytes) to a growing buffer.
typedef struct { char *data; size_t length, capacity; } Buffer;
static void append(Buffer *buffer, const char *text, size_t n) {
    if (buffer->length + n + 1 > buffer->capacity) {
        buffer->capacity = (buffer->length + n + 1) * 2;
        buffer->data = realloc(buffer->data, buffer->capacity);
    }
    memcpy(buffer->data + buffer->length, text, n);
    buffer->length += n;
    buffer->data[buffer->length] = 0;
}

// Index just past the bracket that closes the one at `open` (`(` or `{`), skipping comments.
static size_t matching(const char *s, size_t open) {
    char opening = s[open], closing = opening == '(' ? ')' : '}';
    int depth = 0;
    for (size_t i = open; s[i]; ++i) {
        if (s[i] == '/' && s[i + 1] == '/') { while (s[i] && s[i] != '\n') ++i; continue; }
        if (s[i] == opening) ++depth;
        if (s[i] == closing && --depth == 0) return i + 1;
    }
    return strlen(s);
}

// The source as the host compiler takes it: after each kernel's body a registration of its name, and
// dynamic shared memory (`extern __shared__ TYPE NAME[];`) as a pointer to the emulator's buffer.
static char *host_source(const char *source) {
    Buffer out = {0};
    const char *kernel = "extern \"C\" __global__ void ", *dynamic = "extern __shared__";
    size_t i = 0;
    while (source[i]) {
        if (strncmp(source + i, dynamic, strlen(dynamic)) == 0) {
            size_t end = i + strcspn(source + i, ";"), bracket = i + strcspn(source + i, "[");
            size_t name_start = bracket;
            while (name_start > i && (source[name_start - 1] == '_' || isalnum((unsigned char)source[name_start - 1]))) --name_start;
            // The element type: the words between `extern __shared__` (and any __align__(n)) and the name.
            size_t type_start = i + strlen(dynamic);
            while (source[type_start] == ' ') ++type_start;
            if (strncmp(source + type_start, "__align__(", 10) == 0) type_start = matching(source, type_start + 9);
            char type[128], name[128], line[512];
            snprintf(type, sizeof type, "%.*s", (int)(name_start - type_start), source + type_start);
            snprintf(name, sizeof name, "%.*s", (int)(bracket - name_start), source + name_start);
            snprintf(line, sizeof line, "%s* %s = (%s*)emu::dynamicShared()", type, name, type);
            append(&out, line, strlen(line));
            i = end;
            continue;
        }
        if (strncmp(source + i, kernel, strlen(kernel)) == 0) {
            size_t name_start = i + strlen(kernel);
            if (strncmp(source + name_start, "__launch_bounds__(", 18) == 0) {
                name_start = matching(source, name_start + 17);
                while (source[name_start] == ' ') ++name_start;
            }
            size_t name_end = name_start + strcspn(source + name_start, "( ");
            size_t body_start = matching(source, name_end);
            body_start += strcspn(source + body_start, "{");
            size_t body_end = matching(source, body_start);
            append(&out, source + i, body_end - i);
            char registration[256];
            snprintf(registration, sizeof registration, " EMU_REGISTER(%.*s)", (int)(name_end - name_start), source + name_start);
            append(&out, registration, strlen(registration));
            i = body_end;
            continue;
        }
        append(&out, source + i, 1);
        ++i;
    }
    return out.data;
}

int nvrtcCompileProgram(void *program, int count, const char **options) {
    (void)count; (void)options;
    Program *p = program;
    char folder[] = "/tmp/flashgrad-emulator-XXXXXX";
    if (!mkdtemp(folder)) return 1;
    char source_path[256], library_path[256], command[1024];
    snprintf(source_path, sizeof source_path, "%s/kernels.cpp", folder);
    snprintf(library_path, sizeof library_path, "%s/kernels.so", folder);
    FILE *file = fopen(source_path, "w");
    char *translated = host_source(p->source);
    fprintf(file, "#include \"%s\"\n%s\n", EMULATOR_PRELUDE, translated);
    fclose(file);
    free(translated);
    snprintf(command, sizeof command, "%s -std=c++17 -O1 -fPIC -shared -fvisibility=hidden -w -o %s %s 2>&1", EMULATOR_CXX,
             library_path, source_path);
    FILE *output = popen(command, "r");
    size_t logged = fread(p->log, 1, sizeof p->log - 1, output);
    p->log[logged] = 0;
    int status = pclose(output);
    if (status == 0) {
        FILE *library = fopen(library_path, "rb");
        fseek(library, 0, SEEK_END);
        p->size = (size_t)ftell(library);
        fseek(library, 0, SEEK_SET);
        p->image = malloc(p->size);
        p->size = fread(p->image, 1, p->size, library);
        fclose(library);
    }
    // FLASHGRAD_EMULATOR_KEEP=1 leaves the translated source and the library in the folder, named on stderr.
    if (getenv("FLASHGRAD_EMULATOR_KEEP")) {
        fprintf(stderr, "CUDA emulator: kernels compiled in %s\n", folder);
    } else {
        unlink(source_path);
        unlink(library_path);
        rmdir(folder);
    }
    return status == 0 ? 0 : 6;  // NVRTC_ERROR_COMPILATION
}
int nvrtcGetCUBINSize(void *program, size_t *size) { *size = ((Program *)program)->size; return 0; }
int nvrtcGetCUBIN(void *program, char *image) { memcpy(image, ((Program *)program)->image, ((Program *)program)->size); return 0; }
int nvrtcGetProgramLogSize(void *program, size_t *size) { *size = strlen(((Program *)program)->log) + 1; return 0; }
int nvrtcGetProgramLog(void *program, char *log) { strcpy(log, ((Program *)program)->log); return 0; }

// MARK: cuBLAS (column-major, as OpenBLAS's CblasColMajor)

int cublasCreate_v2(void **handle) { *handle = &primary_context; return 0; }
int cublasSetMathMode(void *handle, int mode) { (void)handle; (void)mode; return 0; }

static enum CBLAS_TRANSPOSE transpose(int operation) { return operation ? CblasTrans : CblasNoTrans; }

int cublasSgemmStridedBatched(void *handle, int ta, int tb, int m, int n, int k, const float *alpha, CUdeviceptr a, int lda, long long sa,
                              CUdeviceptr b, int ldb, long long sb, const float *beta, CUdeviceptr c, int ldc, long long sc, int batch) {
    (void)handle;
    for (int i = 0; i < batch && !skipping_work(); ++i)
        cblas_sgemm(CblasColMajor, transpose(ta), transpose(tb), m, n, k, *alpha, (const float *)(uintptr_t)a + i * sa, lda,
                    (const float *)(uintptr_t)b + i * sb, ldb, *beta, (float *)(uintptr_t)c + i * sc, ldc);
    return 0;
}
int cublasDgemmStridedBatched(void *handle, int ta, int tb, int m, int n, int k, const double *alpha, CUdeviceptr a, int lda, long long sa,
                              CUdeviceptr b, int ldb, long long sb, const double *beta, CUdeviceptr c, int ldc, long long sc, int batch) {
    (void)handle;
    for (int i = 0; i < batch && !skipping_work(); ++i)
        cblas_dgemm(CblasColMajor, transpose(ta), transpose(tb), m, n, k, *alpha, (const double *)(uintptr_t)a + i * sa, lda,
                    (const double *)(uintptr_t)b + i * sb, ldb, *beta, (double *)(uintptr_t)c + i * sc, ldc);
    return 0;
}
int cublasSgemm_v2(void *handle, int ta, int tb, int m, int n, int k, const float *alpha, CUdeviceptr a, int lda, CUdeviceptr b, int ldb,
                   const float *beta, CUdeviceptr c, int ldc) {
    return cublasSgemmStridedBatched(handle, ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}
int cublasDgemm_v2(void *handle, int ta, int tb, int m, int n, int k, const double *alpha, CUdeviceptr a, int lda, CUdeviceptr b, int ldb,
                   const double *beta, CUdeviceptr c, int ldc) {
    return cublasDgemmStridedBatched(handle, ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}

// MARK: NCCL, between the processes of one machine through shared memory

// The unique id names a shared-memory object: a header (a process-shared barrier), then one slot per
// rank where it stages what it contributes. Collectives run at once, in the order the ranks call them
// (every rank calls the same ones in the same order, as NCCL requires), and every rank adds the
// slots in rank order, so that all of them get the same bits.
typedef struct { char internal[128]; } UniqueId;
typedef struct { pthread_barrier_t barrier; int ready; } SharedHeader;
typedef struct { int ranks, rank; SharedHeader *header; char *slots; } Communicator;
enum { NCCL_SYSTEM_ERROR = 2, NCCL_INVALID_ARGUMENT = 4 };
static const size_t slot_bytes = (size_t)1 << 30;  // sparse: only what a collective writes is backed

static size_t nccl_element_bytes(int type) { return type == 8 ? 8 : type == 7 ? 4 : 0; }  // ncclFloat64, ncclFloat32

int ncclGetUniqueId(UniqueId *id) {
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "/flashgrad-emulated-nccl-%d-%ld", (int)getpid(), (long)random());
    return 0;
}

int ncclCommInitRank(void **comm, int ranks, UniqueId id, int rank) {
    if (ranks < 1 || rank < 0 || rank >= ranks) return NCCL_INVALID_ARGUMENT;
    Communicator *c = calloc(1, sizeof(Communicator));
    c->ranks = ranks;
    c->rank = rank;
    if (ranks > 1) {
        size_t bytes = 4096 + (size_t)ranks * slot_bytes;
        int file = shm_open(id.internal, O_CREAT | O_RDWR, 0600);
        if (file < 0 || ftruncate(file, (off_t)bytes) != 0) return NCCL_SYSTEM_ERROR;
        char *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0);
        close(file);
        if (memory == MAP_FAILED) return NCCL_SYSTEM_ERROR;
        c->header = (SharedHeader *)memory;
        c->slots = memory + 4096;
        if (rank == 0) {
            pthread_barrierattr_t attributes;
            pthread_barrierattr_init(&attributes);
            pthread_barrierattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
            pthread_barrier_init(&c->header->barrier, &attributes, (unsigned)ranks);
            __atomic_store_n(&c->header->ready, 1, __ATOMIC_RELEASE);
        }
        while (!__atomic_load_n(&c->header->ready, __ATOMIC_ACQUIRE)) usleep(1000);
        pthread_barrier_wait(&c->header->barrier);  // everyone has mapped it: the name can go
        if (rank == 0) shm_unlink(id.internal);
    }
    *comm = c;
    return 0;
}

static void nccl_barrier(Communicator *c) { if (c->ranks > 1) pthread_barrier_wait(&c->header->barrier); }

// ncclAllReduce with ncclSum (0) or ncclAvg (4).
int ncclAllReduce(CUdeviceptr send, CUdeviceptr receive, size_t count, int type, int operation, void *comm, void *stream) {
    (void)stream;
    Communicator *c = comm;
    size_t element = nccl_element_bytes(type), bytes = count * element;
    if (!element || (operation != 0 && operation != 4) || bytes > slot_bytes) return NCCL_INVALID_ARGUMENT;
    if (c->ranks == 1) {
        if (send != receive) memcpy((void *)(uintptr_t)receive, (const void *)(uintptr_t)send, bytes);
        return 0;
    }
    memcpy(c->slots + (size_t)c->rank * slot_bytes, (const void *)(uintptr_t)send, bytes);
    nccl_barrier(c);
    for (size_t i = 0; i < count; ++i) {
        double sum = 0;  // exact for two Floats; Doubles add in rank order
        for (int r = 0; r < c->ranks; ++r) {
            const char *slot = c->slots + (size_t)r * slot_bytes;
            sum += element == 4 ? (double)((const float *)slot)[i] : ((const double *)slot)[i];
        }
        if (operation == 4) sum /= c->ranks;
        if (element == 4) ((float *)(uintptr_t)receive)[i] = (float)sum; else ((double *)(uintptr_t)receive)[i] = sum;
    }
    nccl_barrier(c);  // every rank has read every slot before any writes its next one
    return 0;
}

int ncclBroadcast(CUdeviceptr send, CUdeviceptr receive, size_t count, int type, int root, void *comm, void *stream) {
    (void)stream;
    Communicator *c = comm;
    size_t bytes = count * nccl_element_bytes(type);
    if (!nccl_element_bytes(type) || root < 0 || root >= c->ranks || bytes > slot_bytes) return NCCL_INVALID_ARGUMENT;
    if (c->ranks == 1) {
        if (send != receive) memcpy((void *)(uintptr_t)receive, (const void *)(uintptr_t)send, bytes);
        return 0;
    }
    if (c->rank == root) memcpy(c->slots, (const void *)(uintptr_t)send, bytes);
    nccl_barrier(c);
    memcpy((void *)(uintptr_t)receive, c->slots, bytes);
    nccl_barrier(c);
    return 0;
}
int ncclGroupStart(void) { return 0; }
int ncclGroupEnd(void) { return 0; }
const char *ncclGetErrorString(int result) {
    return result == NCCL_INVALID_ARGUMENT ? "invalid argument (the emulator sums Float32 and Float64 only)"
         : result == NCCL_SYSTEM_ERROR ? "shared memory could not be set up" : "NCCL emulator error";
}
