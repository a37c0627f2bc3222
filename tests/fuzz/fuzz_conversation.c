/* libFuzzer target: conversation and preference-pair JSONL (untrusted files
 * for sft and dpo) through the reader, and the same bytes as one server
 * request; then each conversation rendered with ChatML and with the bundled
 * assistant's tool-call template (tool_calls, tool_call_id and tools
 * included), whose segments must cover the rendering exactly. */
#include "llmos/chat_template.h"
#include "llmos/conversation.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];
static lm_chat_template *templates[2];

static void render_all(const lm_conversation_set *set) {
    for (int64_t c = 0; c < set->n; c++) {
        const lm_conversation *conv = &set->items[c];
        lm_chat_message *msgs;
        lm_error err = {0};
        if (lm_conversation_messages(conv, &msgs, &err)) return;
        size_t n = (size_t)conv->n_messages;
        if (conv->chosen) msgs[n++] = (lm_chat_message){"assistant", conv->chosen};
        for (int t = 0; t < 2; t++) {
            char *out = NULL;
            size_t len = 0, n_seg = 0;
            lm_chat_segment *seg = NULL;
            lm_chat_render_options o;
            memset(&o, 0, sizeof o);
            o.tools_json = conv->tools_json;
            if (lm_chat_template_render(templates[t], msgs, n, &o, &out, &len, &seg, &n_seg, &err) == LM_OK) {
                /* the segments tile the output in order; content comes from a message or the tools */
                size_t at = 0;
                for (size_t s = 0; s < n_seg; s++) {
                    if (seg[s].offset != at) __builtin_trap();
                    if (seg[s].kind == LM_CHAT_SEG_CONTENT && (seg[s].message < 0 || (size_t)seg[s].message > n))
                        __builtin_trap();
                    at += seg[s].length;
                }
                if (at != len) __builtin_trap();
                free(out);
                free(seg);
            }
        }
        free(msgs);
    }
}

static void remove_file(void) { unlink(path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!templates[0]) {
        lm_error err = {0};
        atexit(remove_file);
        snprintf(path, sizeof path, "/tmp/llmos_fuzz_conv_%d.jsonl", (int)getpid());
        static char source[1 << 16];
        FILE *tf = fopen(LLMOS_SOURCE_DIR "/models/llmos-chat/chat_template.jinja", "rb");
        if (!tf) __builtin_trap();
        source[fread(source, 1, sizeof source - 1, tf)] = 0;
        fclose(tf);
        if (lm_chat_template_compile(lm_chat_template_chatml, &templates[0], &err) ||
            lm_chat_template_compile(source, &templates[1], &err))
            __builtin_trap();
    }
    { /* the same bytes as one chat request (the server's parser) */
        lm_conversation req;
        lm_error err = {0};
        if (lm_conversation_parse((const char *)data, size, &req, &err) == LM_OK) lm_conversation_free(&req);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    for (int pairs = 0; pairs < 2; pairs++) {
        lm_conversation_read_options o;
        memset(&o, 0, sizeof o);
        o.pairs = pairs;
        o.max_line_bytes = 1 << 16;
        lm_conversation_set *set = NULL;
        lm_error err = {0};
        if (lm_conversations_read_ex(path, &o, &set, &err) == LM_OK) {
            render_all(set);
            lm_conversation_set_free(set);
        }
    }
    return 0;
}
