// c10d's Gloo process group is declared only under USE_C10D_GLOO, which Debian's LibTorch was
// built with; this is the one translation unit that includes it.
#define USE_C10D_GLOO 1
#include "finetune/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "io/error.h"

namespace graft::finetune {
namespace {

int integer_variable(const EnvironmentLookup& lookup, const char* name, int minimum) {
  const char* text = lookup(name);
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < minimum || value > 1 << 20) {
    throw Error(std::string("environment variable ") + name + " is '" + text + "', not a whole number >= " +
                std::to_string(minimum));
  }
  return static_cast<int>(value);
}

}  // namespace

DistributedEnvironment distributed_environment(const EnvironmentLookup& lookup) {
  DistributedEnvironment environment;
  struct Scheme {
    const char *source, *rank, *world, *local;
  };
  for (const Scheme& scheme : {Scheme{"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
                               Scheme{"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
                               Scheme{"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                      "OMPI_COMM_WORLD_LOCAL_RANK"}}) {
    if (!lookup(scheme.rank) || !lookup(scheme.world)) continue;
    environment.source = scheme.source;
    environment.rank = integer_variable(lookup, scheme.rank, 0);
    environment.world_size = integer_variable(lookup, scheme.world, 1);
    environment.local_rank = lookup(scheme.local) ? integer_variable(lookup, scheme.local, 0) : 0;
    if (environment.rank >= environment.world_size) {
      throw Error(std::string("environment variable ") + scheme.rank + " is " + std::to_string(environment.rank) +
                  ", not below " + scheme.world + " (" + std::to_string(environment.world_size) + ")");
    }
    break;
  }
  if (const char* address = lookup("MASTER_ADDR")) environment.master_address = address;
  if (lookup("MASTER_PORT")) environment.master_port = integer_variable(lookup, "MASTER_PORT", 1);
  return environment;
}

DistributedEnvironment distributed_environment() {
  return distributed_environment([](const char* name) { return static_cast<const char*>(std::getenv(name)); });
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

ProcessGroup::ProcessGroup(const DistributedEnvironment& environment)
    : impl_(std::make_unique<Impl>()), rank_(environment.rank), world_size_(environment.world_size) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(environment.master_port);
  options.isServer = environment.rank == 0;
  options.numWorkers = environment.world_size;
  auto store = c10::make_intrusive<c10d::TCPStore>(environment.master_address, options);
  auto gloo = c10d::ProcessGroupGloo::Options::create();
  gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank_, world_size_, gloo);
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::average_gradients(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> gradients;
  for (const auto& parameter : parameters) {
    if (parameter.grad().defined()) gradients.push_back(parameter.grad());
  }
  if (gradients.empty()) return;
  // One bucket: Gloo's ring allreduce pays a latency per call, so one call per step, not per tensor.
  std::vector<torch::Tensor> bucket{torch::cat([&] {
    std::vector<torch::Tensor> flat;
    for (const auto& gradient : gradients) flat.push_back(gradient.reshape({-1}));
    return flat;
  }())};
  impl_->group->allreduce(bucket)->wait();
  bucket[0].div_(world_size_);
  std::int64_t offset = 0;
  for (auto& gradient : gradients) {
    const std::int64_t count = gradient.numel();
    gradient.copy_(bucket[0].narrow(0, offset, count).view_as(gradient));
    offset += count;
  }
}

double ProcessGroup::mean(double value) {
  std::vector<torch::Tensor> one{torch::tensor({value}, torch::kFloat64)};
  impl_->group->allreduce(one)->wait();
  return one[0].item<double>() / world_size_;
}

ProcessGroup* process_group() {
  static std::unique_ptr<ProcessGroup> group = [] {
    const DistributedEnvironment environment = distributed_environment();
    return environment.world_size > 1 ? std::make_unique<ProcessGroup>(environment) : nullptr;
  }();
  return group.get();
}

datasets::BatchShare rank_share_of_batch(int batch_size) {
  const ProcessGroup* group = process_group();
  if (!group) return {0, batch_size};
  const int world = group->world_size();
  if (batch_size % world != 0) {
    throw Error("data.batch_size " + std::to_string(batch_size) + " does not divide among " + std::to_string(world) +
                " processes; make it a multiple of the world size");
  }
  const int size = batch_size / world;
  return {size * group->rank(), size};
}

torch::Tensor shard_of_batch(const torch::Tensor& batch) {
  if (!process_group()) return batch;
  const datasets::BatchShare share = rank_share_of_batch(static_cast<int>(batch.size(0)));
  return batch.narrow(0, share.first, share.count);
}

namespace {

// A TCP port nothing listens on now: the kernel's pick for a socket bound to port 0.
int free_port() {
  const int socket_fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 29500;
  if (socket_fd >= 0 && ::bind(socket_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      ::getsockname(socket_fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  if (socket_fd >= 0) ::close(socket_fd);
  return port;
}

}  // namespace

int launch_local_ranks(char** argv, int nproc) {
  const std::string port = std::to_string(free_port());
  std::vector<pid_t> children;
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t child = ::fork();
    if (child < 0) throw Error("graft train --nproc: cannot start rank " + std::to_string(rank));
    if (child == 0) {
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      ::execv("/proc/self/exe", argv);
      std::_Exit(127);
    }
    children.push_back(child);
  }
  // Ctrl-C reaches every rank, which stop together with a checkpoint; the launcher waits for them.
  ::signal(SIGINT, SIG_IGN);
  int first_failure = 0;
  for (std::size_t finished = 0; finished < children.size(); ++finished) {
    int status = 0;
    const pid_t child = ::wait(&status);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && first_failure == 0) {
      first_failure = code;
      for (const pid_t other : children) {
        if (other != child) ::kill(other, SIGTERM);
      }
    }
  }
  return first_failure;
}

int local_world_size() {
  const char* ranks = std::getenv("LOCAL_WORLD_SIZE");
  return ranks ? std::max(1, std::atoi(ranks)) : 1;
}

bool is_writing_rank() {
  const ProcessGroup* group = process_group();
  return !group || group->rank() == 0;
}

}  // namespace graft::finetune
