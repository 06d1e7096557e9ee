// The game example's message types: FlatBuffers tables with tao type numbers.
#pragma once

#include <tao/flatbuffers.hpp>

#include "common/example.hpp"
#include "game_generated.h"

namespace example::game_msg {

using Join = tao::Flat<game::Join, 10>;
using Move = tao::Flat<game::Move, 11>;
using State = tao::Flat<game::State, 12>;

inline constexpr int board_size = 10;

} // namespace example::game_msg
