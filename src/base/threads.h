/* The calling thread's index in the current OpenMP team (0 outside one, or
 * when the library is built without OpenMP), for per-thread scratch buffers. */
#ifndef LLMOS_THREADS_H
#define LLMOS_THREADS_H

#ifdef _OPENMP
#include <omp.h>
static inline int lm_thread_index(void) { return omp_get_thread_num(); }
#else
static inline int lm_thread_index(void) { return 0; }
#endif

#endif
