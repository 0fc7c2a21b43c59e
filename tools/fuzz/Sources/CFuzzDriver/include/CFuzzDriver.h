#ifndef CFUZZDRIVER_H
#define CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver (compiler-rt, LLVM 13 and later). SwiftPM on Linux links every executable
// with `main` aliased to `<module>_main`, so libFuzzer's own `main` is never used: each fuzz
// binary defines `<module>_main` and hands control to the driver with its callback.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
