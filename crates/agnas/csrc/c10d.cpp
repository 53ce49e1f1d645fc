// The bridge from agnas to libtorch's own collectives (c10d): a TCPStore rendezvous and a ProcessGroupGloo (CPU
// tensors) or ProcessGroupNCCL (CUDA tensors, built with AGNAS_NCCL). Only objects made by libtorch's exported
// functions cross this file, and only through their virtual methods, so nothing here depends on Gloo's or NCCL's
// inner layouts. Every function catches what libtorch throws and hands the message back as a malloc'd string.
//
// Pinned to the libtorch that tch 0.24 binds (2.11): c10d is an internal C++ API whose signatures move between
// releases.
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef AGNAS_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// A listening socket on `host`:`port` for the store to serve on, where `host` is a loopback name or an IP address;
// -1 for any other name, where the store listens on every interface as PyTorch's does (a hostname may resolve to a
// loopback alias here but to the machine's address on the peers). libtorch's own server binds every interface, so a
// one-machine run would expose an unauthenticated store to the network.
int bound_listener(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* found = nullptr;
  const bool loopback_name = host == "localhost";
  const char* name = loopback_name ? "127.0.0.1" : host.c_str();
  if (getaddrinfo(name, std::to_string(port).c_str(), &hints, &found) != 0) {
    return -1;
  }
  const int fd = socket(found->ai_family, SOCK_STREAM, 0);
  const int on = 1;
  const bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
                  bind(fd, found->ai_addr, found->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0;
  const int error = errno;
  freeaddrinfo(found);
  if (!ok) {
    if (fd >= 0) {
      close(fd);
    }
    throw std::runtime_error("the rendezvous store cannot listen on " + host + ":" + std::to_string(port) + ": " +
                             std::strerror(error));
  }
  return fd;
}

char* copy_message(const std::string& message) {
  char* out = static_cast<char*>(std::malloc(message.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, message.c_str(), message.size() + 1);
  }
  return out;
}

template <typename F>
int guarded(char** err, F&& body) {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    *err = copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *err = copy_message(e.what());
  } catch (...) {
    *err = copy_message("unknown C++ exception");
  }
  return 1;
}

std::string alive_key(int rank) {
  return "agnas/alive/" + std::to_string(rank);
}

std::string reached_key(int rank) {
  return "agnas/reached/" + std::to_string(rank);
}

}  // namespace

// One rank's membership: the rendezvous store, the process groups (Gloo for CPU tensors; NCCL for CUDA tensors where
// asked for, as torch's "cpu:gloo,cuda:nccl" does, since NCCL takes no CPU tensors and the runs exchange small CPU
// ones), and a heartbeat: four times a second each rank
// bumps a counter in the store and publishes how many collectives it has entered, so that after a collective failed
// the others can tell which peer died (its counter stands still) or hangs elsewhere (it never reached this one).
struct agnas_c10d {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Store> beat_store;
  c10::intrusive_ptr<c10d::Backend> cpu;
  c10::intrusive_ptr<c10d::Backend> cuda;
  int rank = 0;
  int world = 1;
  std::atomic<int64_t> entered{0};
  std::atomic<bool> stop{false};
  std::thread heartbeat;

  ~agnas_c10d() {
    stop = true;
    if (heartbeat.joinable()) {
      heartbeat.join();
    }
  }
};

extern "C" {

void agnas_c10d_free_message(char* message) {
  std::free(message);
}

// Rendezvous at host:port (rank 0 serves the store there) and the process groups over it. `backend` is "gloo" (CPU
// tensors, and CUDA tensors through host copies) or "nccl" (Gloo for CPU tensors, NCCL for CUDA ones); `iface`, when
// not empty, is the network interface Gloo binds to (GLOO_SOCKET_IFNAME's role).
agnas_c10d* agnas_c10d_new(const char* backend, const char* host, int port, int rank, int world, int64_t timeout_ms,
                           const char* iface, char** err) {
  agnas_c10d* out = nullptr;
  guarded(err, [&] {
    auto pg = std::make_unique<agnas_c10d>();
    pg->rank = rank;
    pg->world = world;
    const auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(port);
    options.isServer = rank == 0;
    options.numWorkers = world;
    options.waitWorkers = true;
    options.timeout = timeout;
    if (options.isServer) {
      const int fd = bound_listener(host, port);
      if (fd >= 0) {
        options.masterListenFd = fd;
      }
    }
    pg->store = c10::make_intrusive<c10d::TCPStore>(host, options);
    const std::string name(backend);
    if (name != "gloo" && name != "nccl") {
      throw std::runtime_error("unknown c10d backend `" + name + "`");
    }
    auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo->devices.push_back(std::strlen(iface) > 0 ? c10d::ProcessGroupGloo::createDeviceForInterface(iface)
                                                   : c10d::ProcessGroupGloo::createDefaultDevice());
    auto gloo_store = c10::make_intrusive<c10d::PrefixStore>("gloo", pg->store);
    pg->cpu = c10::make_intrusive<c10d::ProcessGroupGloo>(gloo_store, rank, world, gloo);
    if (name == "nccl") {
#ifdef AGNAS_NCCL
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      auto nccl_store = c10::make_intrusive<c10d::PrefixStore>("nccl", pg->store);
      pg->cuda = c10::make_intrusive<c10d::ProcessGroupNCCL>(nccl_store, rank, world, nccl);
#else
      throw std::runtime_error("this agnas was built without NCCL (cargo feature `nccl`)");
#endif
    }
    c10d::TCPStoreOptions client;
    client.port = static_cast<std::uint16_t>(port);
    client.timeout = timeout;
    pg->beat_store = c10::make_intrusive<c10d::TCPStore>(host, client);
    agnas_c10d* raw = pg.get();
    raw->heartbeat = std::thread([raw] {
      const std::string alive = alive_key(raw->rank);
      const std::string reached = reached_key(raw->rank);
      while (!raw->stop) {
        try {
          const std::string count = std::to_string(raw->entered.load());
          raw->beat_store->set(reached, std::vector<uint8_t>(count.begin(), count.end()));
          raw->beat_store->add(alive, 1);
        } catch (...) {
          return;  // The store is gone; the next collective reports it.
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
    });
    out = pg.release();
  });
  return out;
}

void agnas_c10d_free(agnas_c10d* pg) {
  delete pg;
}

}  // extern "C"

// NCCL for CUDA tensors where there is a NCCL group, Gloo otherwise.
static c10d::Backend* group_for(agnas_c10d* pg, const at::Tensor& t) {
  return t.is_cuda() && pg->cuda ? pg->cuda.get() : pg->cpu.get();
}

extern "C" {

// Sums each tensor in place across the ranks (one collective per tensor: c10d reduces the tensors of one call together).
int agnas_c10d_all_reduce_sum(agnas_c10d* pg, at::Tensor** tensors, int n, char** err) {
  return guarded(err, [&] {
    pg->entered++;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    works.reserve(n);
    for (int i = 0; i < n; ++i) {
      std::vector<at::Tensor> one{*tensors[i]};
      works.push_back(group_for(pg, one[0])->allreduce(one, c10d::AllreduceOptions{}));
    }
    for (auto& work : works) {
      work->wait();
    }
  });
}

int agnas_c10d_broadcast(agnas_c10d* pg, at::Tensor** tensors, int n, int root, char** err) {
  return guarded(err, [&] {
    pg->entered++;
    c10d::BroadcastOptions options;
    options.rootRank = root;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    works.reserve(n);
    for (int i = 0; i < n; ++i) {
      std::vector<at::Tensor> one{*tensors[i]};
      works.push_back(group_for(pg, one[0])->broadcast(one, options));
    }
    for (auto& work : works) {
      work->wait();
    }
  });
}

int agnas_c10d_barrier(agnas_c10d* pg, char** err) {
  return guarded(err, [&] {
    pg->entered++;
    pg->cpu->barrier(c10d::BarrierOptions{})->wait();
  });
}

// Each rank's heartbeat count and the number of collectives it had entered at its last beat (world entries each; -1
// where a rank has not published it); this rank's own count of collectives entered is `entered[rank]`.
int agnas_c10d_peers(agnas_c10d* pg, int64_t* beats, int64_t* entered, char** err) {
  return guarded(err, [&] {
    for (int r = 0; r < pg->world; ++r) {
      beats[r] = pg->store->add(alive_key(r), 0);
      entered[r] = -1;
      if (r == pg->rank) {
        entered[r] = pg->entered.load();
      } else if (pg->store->check({reached_key(r)})) {
        const auto bytes = pg->store->get(reached_key(r));
        entered[r] = std::stoll(std::string(bytes.begin(), bytes.end()));
      }
    }
  });
}

}  // extern "C"
