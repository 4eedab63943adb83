#pragma once
// Stand-in build configuration (ethos): the wheel's libtorch was built with gloo's TCP transport.
#define GLOO_HAVE_TRANSPORT_TCP 1
#include "ethos_decls.h"
