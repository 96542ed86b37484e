// A shared library without tocsin_plugin_entry: tocsind must say it is not a plugin.
extern "C" __attribute__((visibility("default"))) int something_else(void) { return 42; }
