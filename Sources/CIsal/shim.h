/* Intel's ISA-L: its igzip inflater decodes DEFLATE three to four times
   as fast as zlib on this project's layers, and, unlike libdeflate, it
   streams and can be resumed mid-stream (a bit position and a 32 KiB
   dictionary), which is what a gzip index's checkpoints and the streaming
   unpack need. zlib stays for compression and for the index builder,
   which needs zlib's stops at block boundaries. */
#include <isa-l/igzip_lib.h>
