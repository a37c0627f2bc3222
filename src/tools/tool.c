/* What every tool shares (llmos/tool.h). */
#include "llmos/tool.h"

#include <stdlib.h>
#include <string.h>

void lm_tool_result_free(lm_tool_result *r) {
    if (!r) return;
    free(r->text);
    memset(r, 0, sizeof *r);
}

void lm_tool_free(lm_tool *t) {
    if (t && t->free_state) t->free_state(t->state);
    if (t) t->state = NULL;
}
