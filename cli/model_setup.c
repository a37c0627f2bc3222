/* Model loading and chat-template choice shared by the commands (model_setup.h). */
#include "model_setup.h"

#include "args.h"
#include "llmos/lora.h"

#include <stdlib.h>
#include <string.h>

lm_model *cli_load_model(const char *cmd, const char *path, const char *lora_path, float lora_scale) {
    lm_error err = {0};
    lm_model *m = NULL;
    if (lm_model_load(path, &m, &err)) {
        cli_error("%s: cannot load %s: %s", cmd, path, err.message);
        return NULL;
    }
    if (lora_path && lm_model_attach_lora_file(m, lora_path, lora_scale, &err)) {
        cli_error("%s: cannot apply the adapter %s: %s", cmd, lora_path, err.message);
        lm_model_free(m);
        return NULL;
    }
    return m;
}

lm_chat_template *cli_chat_template(const char *cmd, const lm_gguf *g, const char *template_file, char **text,
                                    cli_template_source *from) {
    lm_error err = {0};
    lm_chat_template *tpl = NULL;
    cli_template_source where = CLI_TEMPLATE_CHATML;
    int64_t key = g ? lm_gguf_find_key(g, "tokenizer.chat_template") : -1;
    *text = NULL;
    if (template_file) {
        size_t len;
        if (!(*text = cli_read_all(template_file, &len))) {
            cli_error("%s: cannot read %s", cmd, template_file);
            return NULL;
        }
        where = CLI_TEMPLATE_FILE;
    } else if (key >= 0) {
        lm_str s = lm_gguf_get_str(g, key, 0);
        if ((*text = malloc(s.len + 1))) {
            memcpy(*text, s.ptr, s.len);
            (*text)[s.len] = 0;
        }
        where = CLI_TEMPLATE_MODEL;
    } else {
        *text = strdup(lm_chat_template_chatml);
    }
    if (!*text) {
        cli_error("%s: out of memory", cmd);
        return NULL;
    }
    if (lm_chat_template_compile(*text, &tpl, &err)) {
        cli_error("%s: chat template%s%s: %s", cmd, template_file ? " " : "", template_file ? template_file : "",
                  err.message);
        free(*text);
        *text = NULL;
        return NULL;
    }
    if (from) *from = where;
    return tpl;
}
