/* control/demo.h — the demo `datamesh up --demo` loads. */
#ifndef DM_CONTROL_DEMO_H
#define DM_CONTROL_DEMO_H

#include "core/buf.h"
#include "core/error.h"

/* The demo's spec documents (YAML), with the file sink writing under
 * data_dir/out. Appends to out. */
dm_err_t dm_demo_specs(const char *data_dir, dm_buf_t *out);

#endif
