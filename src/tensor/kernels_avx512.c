/* AVX-512 VNNI kernels: the Q8_0 / Q4_0 bodies of kernels_q8_body.h with
 * vpdpbusd (one instruction for maddubs + madd). Types without a VNNI
 * kernel keep their AVX2 ones (kernels.c builds the table). */
#if defined(__x86_64__)
#include "fp16.h"
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#define KTARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define KUDOT(a, b) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (a), (b))
#include "kernels_q8_body.h"

const lm_kernels lm_kernels_avx512_vnni_only = {
    "avx512",
    {
        [LM_TYPE_Q8_0] = dot_q8_0,
        [LM_TYPE_Q4_0] = dot_q4_0,
    },
    {
        [LM_TYPE_Q8_0] = dot4_q8_0,
        [LM_TYPE_Q4_0] = dot4_q4_0,
    },
    NULL, /* attention and softmax: AVX2's */
    NULL,
    NULL,
};
#endif
