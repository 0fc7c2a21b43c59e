// Empty: CFuzzDriver only declares LLVMFuzzerRunDriver (include/CFuzzDriver.h), which libFuzzer defines.
#include "CFuzzDriver.h"
