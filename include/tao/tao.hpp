// tao: asynchronous TCP servers and clients exchanging typed messages (Go Tao compatible).
#pragma once

#include <tao/buffer.hpp>
#include <tao/client.hpp>
#include <tao/codec.hpp>
#include <tao/concurrent_map.hpp>
#include <tao/connection.hpp>
#include <tao/error.hpp>
#include <tao/handlers.hpp>
#include <tao/length_field_codec.hpp>
#include <tao/line_codec.hpp>
#include <tao/log.hpp>
#include <tao/message.hpp>
#include <tao/metrics.hpp>
#include <tao/options.hpp>
#include <tao/server.hpp>
#include <tao/timer.hpp>
#include <tao/tls.hpp>
#include <tao/worker_pool.hpp>
