// cblas for matrix products, LAPACKE for factorizations (Debian: libopenblas-dev, liblapacke-dev).
#include <cblas.h>
#include <lapacke.h>
