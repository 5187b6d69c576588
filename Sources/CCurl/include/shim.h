#pragma once
#include <curl/curl.h>
int starling_ccurl_placeholder(void);
