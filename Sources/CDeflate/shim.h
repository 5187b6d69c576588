/* libdeflate: whole-buffer DEFLATE. StargzReader's writer uses its gzip
   compressor for chunks (each chunk is one complete gzip member, exactly the
   whole-buffer case libdeflate is built for, and ~2.6x faster than zlib at
   level 9). Decompression stays on zlib (streaming, bounded output). */
#include <libdeflate.h>
