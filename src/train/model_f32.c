/* The trainer's model in f32. */
#include "model.h"
#include "ops.h"

#define REAL float
#define SFX f32
#include "model_t.h"
