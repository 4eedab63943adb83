#pragma once
#include "ethos_decls.h"
