// libfuse 3.12+ API: the loop configuration is an opaque object built with
// fuse_loop_cfg_*, which lets us set clone_fd, max_idle_threads and max_threads.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
