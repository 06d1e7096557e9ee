// The proto_chat example's message type: a Protobuf message with a tao type number.
#pragma once

#include <tao/protobuf.hpp>

#include "chat.pb.h"
#include "common/example.hpp"

namespace example {

using ChatLine = tao::Proto<chat::Line, 20>;

} // namespace example
