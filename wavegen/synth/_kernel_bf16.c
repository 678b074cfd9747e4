/* The C kernel with bf16 weights and bf16 inputs to its matrix products (sums in float): _kernel.c built
 * with WG_WEIGHT_BF16 (see gemm_acc there). setup.py builds this file as wavegen/synth/_kernel_bf16 beside
 * _kernel and _kernel_f16; fast.py plays it as the "cbf16" backend. Fast where the CPU takes bf16 dot
 * products (AVX512_BF16, ARM's BF16); elsewhere the same arithmetic, written out, is slower than c16. */
#define WG_WEIGHT_BF16 1
#include "_kernel.c"
