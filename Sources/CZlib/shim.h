#include <zlib.h>
/* StargzReader's other C needs ride along here (the module it already imports
   for zlib): the xattr calls the layer extractor uses, which Glibc's Swift
   module does not export. */
#include <sys/xattr.h>
