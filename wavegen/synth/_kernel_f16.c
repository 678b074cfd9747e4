/* The C kernel with its weights in IEEE half precision: _kernel.c built with WG_WEIGHT_F16 (see `wt` there).
 * setup.py builds this file as wavegen/synth/_kernel_f16 beside _kernel (a file of its own, so the two
 * builds of one source do not share an object file); fast.py plays it as the "c16" backend. */
#define WG_WEIGHT_F16 1
#include "_kernel.c"
