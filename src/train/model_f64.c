/* The trainer's model in f64, for gradient checks. */
#include "model.h"
#include "ops.h"

#define REAL double
#define SFX f64
#include "model_t.h"
