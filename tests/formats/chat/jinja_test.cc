#include "formats/chat/jinja.h"
#include "gtest/gtest.h"
TEST(Jinja, Placeholder) {}
