#include <zlib.h>
/* StargzReader's other C needs ride along here (the module it already imports
   for zlib): the xattr calls the layer extractor uses, which Glibc's Swift
   module does not export. */
#include <sys/xattr.h>

/* sync_file_range(2): <fcntl.h> declares it only under _GNU_SOURCE, which
   Glibc's Swift module is built without. The extractor uses it to start a
   file's writeback early (see EarlyWriteback). */
extern int sync_file_range(int fd, __off64_t offset, __off64_t count, unsigned int flags);
#define STARLING_SYNC_FILE_RANGE_WRITE 2
