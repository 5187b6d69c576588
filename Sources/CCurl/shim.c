#include "shim.h"
int starling_ccurl_placeholder(void) { return 0; }
