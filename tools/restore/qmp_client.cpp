#include "tools/restore/manifest.h"
#include "tools/restore/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xenstream::restore {

using nlohmann::json;

Expected<QmpClient> QmpClient::connect(const std::string& socket_path, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return make_error(ErrorCode::kUsage, 0,
                      "QMP socket path is longer than " + std::to_string(sizeof(addr.sun_path) - 1) +
                          " octets: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return io_error("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return io_error("cannot connect to QMP socket " + socket_path, errno);
  }
  QmpClient c(std::move(fd));
  auto hello = c.read_message(deadline);
  if (!hello) return std::move(hello).error();
  if (!hello->contains("QMP")) {
    return make_error(ErrorCode::kUnsupported, 0, "QMP greeting expected, got " + json_text(*hello));
  }
  c.greeting_ = std::move(hello).value();
  auto caps = c.execute("qmp_capabilities", json(), deadline);
  if (!caps) return std::move(caps).error();
  return c;
}

Expected<json> QmpClient::read_message(Clock::time_point deadline) {
  for (;;) {
    const auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      const std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      json msg = json::parse(line, nullptr, false);
      if (msg.is_discarded() || !msg.is_object()) {
        return make_error(ErrorCode::kUnsupported, 0, "QMP peer sent a line that is not a JSON object: " + line);
      }
      return msg;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return make_error(ErrorCode::kIo, 0, "QMP peer did not answer in time");
    pollfd p{fd_.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0) {
      if (errno == EINTR) continue;
      return io_error("poll on QMP socket", errno);
    }
    if (r == 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("read from QMP socket", errno);
    }
    if (n == 0) return make_error(ErrorCode::kIo, 0, "QMP peer closed the connection");
    buffer_.append(buf, static_cast<std::size_t>(n));
    if (buffer_.size() > (16u << 20)) {
      return make_error(ErrorCode::kLimit, 0, "QMP peer sent a line longer than 16 MiB");
    }
  }
}

Expected<json> QmpClient::execute(const std::string& command, const json& arguments,
                                  Clock::time_point deadline) {
  json req = {{"execute", command}};
  if (!arguments.is_null()) req["arguments"] = arguments;
  const std::string line = req.dump() + "\n";
  // send() with MSG_NOSIGNAL: a device model that died must not kill us
  // with SIGPIPE.
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::send(fd_.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write to the QMP socket", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  for (;;) {
    auto msg = read_message(deadline);
    if (!msg) return std::move(msg).error();
    if (msg->contains("event")) continue;
    if (auto r = msg->find("return"); r != msg->end()) return *r;
    if (auto e = msg->find("error"); e != msg->end()) {
      std::string cls = "Error";
      std::string desc = json_text(*e);
      if (e->is_object()) {
        if (auto c = e->find("class"); c != e->end() && c->is_string()) cls = c->get<std::string>();
        if (auto d = e->find("desc"); d != e->end() && d->is_string()) desc = d->get<std::string>();
      }
      return make_error(ErrorCode::kUnsupported, 0, "QMP " + command + ": " + cls + ": " + desc);
    }
  }
}

}  // namespace xenstream::restore
