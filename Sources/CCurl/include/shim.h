#pragma once
// Typed, non-variadic entry points for libcurl's variadic option setters and
// info getters, which Swift cannot call directly. Each shim forwards exactly
// one argument type; nothing else lives here (the Swift wrapper is
// Sources/HTTPTransport/CurlEasy.swift).
#include <curl/curl.h>

CURLcode starling_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode starling_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode starling_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode starling_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
/// A `struct curl_blob` option (CURLOPT_CAINFO_BLOB); libcurl copies the bytes.
CURLcode starling_easy_setopt_blob(CURL *handle, CURLoption option, const void *data, size_t length);
CURLcode starling_easy_setopt_write_function(CURL *handle, CURLoption option, curl_write_callback fn);
CURLcode starling_easy_setopt_xferinfo_function(CURL *handle, curl_xferinfo_callback fn);

CURLcode starling_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode starling_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value);
CURLcode starling_easy_getinfo_string(CURL *handle, CURLINFO info, const char **value);

CURLSHcode starling_share_setopt_long(CURLSH *share, CURLSHoption option, long value);
CURLSHcode starling_share_setopt_pointer(CURLSH *share, CURLSHoption option, void *value);
CURLSHcode starling_share_setopt_lock_function(CURLSH *share, curl_lock_function fn);
CURLSHcode starling_share_setopt_unlock_function(CURLSH *share, curl_unlock_function fn);
