#include <tao/handlers.hpp>

namespace tao {

void Handlers::add(MessageType type, detail::HandlerEntry entry) {
  auto& d = mutable_dispatch();
  if (!d.handlers.emplace(type, std::move(entry)).second)
    throw std::logic_error("tao: message type " + std::to_string(type) + " is already registered");
}

detail::Dispatch& Handlers::mutable_dispatch() {
  if (dispatch_->frozen)
    throw std::logic_error("tao: handlers and callbacks must be set before start()/connect()");
  return *dispatch_;
}

void Handlers::schedule_every(Duration interval, ScheduleCallback fn) {
  if (interval.count() <= 0)
    throw std::invalid_argument("tao: schedule_every needs an interval > 0");
  mutable_dispatch().schedules.push_back(
      {interval, std::make_shared<const ScheduleCallback>(std::move(fn))});
}

void Handlers::handle_raw(MessageType type, std::function<void(Connection&, const Frame&)> fn,
                          Run run) {
  auto h = std::make_shared<std::function<void(Connection&, const Frame&)>>(std::move(fn));
  add(type, detail::HandlerEntry{
                run, [h, type](Connection& c, ByteView payload, bool run_now, detail::Task& later) {
                  if (run_now) {
                    (*h)(c, Frame{type, payload});
                  } else {
                    later = [h, type, copy = payload.str()](Connection& conn) {
                      (*h)(conn, Frame{type, ByteView(copy)});
                    };
                  }
                  return true;
                }});
}

} // namespace tao
