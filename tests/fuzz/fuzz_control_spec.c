/* tests/fuzz/fuzz_control_spec.c — libFuzzer target: the spec reader (YAML or
 * JSON documents with positions) and validation of every document it loads,
 * the path every `datamesh apply` body takes. */
#include <stdint.h>
#include <stdlib.h>

#include "control/spec.h"
#include "control/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dm_spec_doc_t *docs = NULL;
    size_t n = 0;
    dm_error_t err = {0};
    if (dm_spec_load("<fuzz>", (const char *)data, size, &docs, &n, &err)) return 0;
    for (size_t i = 0; i < n; i++) {
        dm_spec_t spec;
        if (dm_spec_validate(&docs[i], &spec, &err) == DM_OK) {
            json_t *reads = dm_spec_pipeline_reads(spec.doc);
            json_decref(reads);
            dm_spec_clear(&spec);
        }
    }
    dm_spec_docs_free(docs, n);
    return 0;
}
