// A small C ABI over XRT's C++ API for the runtime's NPU backend (cargo feature `npu`).
// One npu_kernel = one xclbin registered on the device, its hardware context, the "MLIR_AIE"
// kernel, the instruction buffer and one host-only data buffer per runtime-sequence argument,
// all created once and reused for every run. Errors are returned as text, never thrown across
// the C boundary.

#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "xrt/xrt_bo.h"
#include "xrt/xrt_device.h"
#include "xrt/xrt_hw_context.h"
#include "xrt/xrt_kernel.h"
#if __has_include("xrt/experimental/xrt_xclbin.h")
#include "xrt/experimental/xrt_xclbin.h"
#else
#include "experimental/xrt_xclbin.h"
#endif

namespace {

// Longest a kernel run may take before it is reported as hung (Whisper's largest kernel runs
// for milliseconds).
constexpr int RUN_TIMEOUT_MS = 10000;

void set_err(char *err, size_t len, const std::string &msg) {
  if (err == nullptr || len == 0)
    return;
  size_t n = msg.size() < len - 1 ? msg.size() : len - 1;
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

} // namespace

struct npu_dev {
  xrt::device device;
};

struct npu_kernel {
  xrt::xclbin xclbin;
  xrt::hw_context ctx;
  xrt::kernel kernel;
  xrt::bo instr;
  uint32_t n_words = 0;
  std::vector<xrt::bo> args;
  std::vector<size_t> arg_bytes;
};

extern "C" {

npu_dev *npu_dev_open(unsigned index, char *err, size_t err_len) {
  try {
    return new npu_dev{xrt::device(index)};
  } catch (const std::exception &e) {
    set_err(err, err_len, std::string("xrt::device(") + std::to_string(index) + "): " + e.what());
    return nullptr;
  }
}

void npu_dev_close(npu_dev *dev) { delete dev; }

int npu_dev_name(npu_dev *dev, char *out, size_t len) {
  try {
    set_err(out, len, dev->device.get_info<xrt::info::device::name>());
    return 0;
  } catch (const std::exception &e) {
    set_err(out, len, e.what());
    return -1;
  }
}

npu_kernel *npu_kernel_load(npu_dev *dev, const char *xclbin_path, const char *kernel_name,
                            const uint32_t *instr, size_t n_words, const size_t *arg_bytes,
                            size_t n_args, char *err, size_t err_len) {
  try {
    auto k = std::make_unique<npu_kernel>();
    k->xclbin = xrt::xclbin(std::string(xclbin_path));
    dev->device.register_xclbin(k->xclbin);
    k->ctx = xrt::hw_context(dev->device, k->xclbin.get_uuid());
    k->kernel = xrt::kernel(k->ctx, kernel_name);
    // Instruction stream: cacheable BO in the kernel's instruction group (argument 1).
    k->instr = xrt::bo(dev->device, n_words * sizeof(uint32_t), xrt::bo::flags::cacheable,
                       k->kernel.group_id(1));
    std::memcpy(k->instr.map<void *>(), instr, n_words * sizeof(uint32_t));
    k->instr.sync(XCL_BO_SYNC_BO_TO_DEVICE);
    k->n_words = static_cast<uint32_t>(n_words);
    // Data: host-only BOs in argument groups 3, 4, ... in runtime-sequence order.
    for (size_t i = 0; i < n_args; ++i) {
      k->args.emplace_back(dev->device, arg_bytes[i], xrt::bo::flags::host_only,
                           k->kernel.group_id(static_cast<int>(3 + i)));
      k->arg_bytes.push_back(arg_bytes[i]);
    }
    return k.release();
  } catch (const std::exception &e) {
    set_err(err, err_len, std::string(xclbin_path) + ": " + e.what());
    return nullptr;
  }
}

void *npu_kernel_arg(npu_kernel *k, size_t i) {
  if (i >= k->args.size())
    return nullptr;
  return k->args[i].map<void *>();
}

// Syncs the arguments flagged in `to_device`, runs the kernel (opcode 3: instruction BO, word
// count, then the data BOs), waits, checks the command state and syncs `from_device` back.
int npu_kernel_run(npu_kernel *k, const uint8_t *to_device, const uint8_t *from_device,
                   uint64_t *elapsed_ns, char *err, size_t err_len) {
  try {
    const size_t n = k->args.size();
    for (size_t i = 0; i < n; ++i)
      if (to_device[i])
        k->args[i].sync(XCL_BO_SYNC_BO_TO_DEVICE);
    auto t0 = std::chrono::steady_clock::now();
    xrt::run run(k->kernel);
    run.set_arg(0, uint64_t{3}); // opcode: aiecc declares it uint64_t at offset 0x00
    run.set_arg(1, k->instr);
    run.set_arg(2, k->n_words);
    for (size_t i = 0; i < n; ++i)
      run.set_arg(static_cast<int>(3 + i), k->args[i]);
    run.start();
    // A hung run (reported with some firmware) must not block the process forever.
    ert_cmd_state state = run.wait(std::chrono::milliseconds{RUN_TIMEOUT_MS});
    auto t1 = std::chrono::steady_clock::now();
    if (state == ERT_CMD_STATE_TIMEOUT) {
      set_err(err, err_len, "kernel run did not finish within " + std::to_string(RUN_TIMEOUT_MS) +
                                " ms (ERT_CMD_STATE_TIMEOUT); the NPU may need a reset");
      return -1;
    }
    if (state != ERT_CMD_STATE_COMPLETED) {
      set_err(err, err_len, "kernel run ended in state " + std::to_string(static_cast<int>(state)) +
                                " (expected ERT_CMD_STATE_COMPLETED)");
      return -1;
    }
    for (size_t i = 0; i < n; ++i)
      if (from_device[i])
        k->args[i].sync(XCL_BO_SYNC_BO_FROM_DEVICE);
    *elapsed_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    return 0;
  } catch (const std::exception &e) {
    set_err(err, err_len, e.what());
    return -1;
  }
}

void npu_kernel_free(npu_kernel *k) { delete k; }

} // extern "C"
