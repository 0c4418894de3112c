//! Builds the XRT shim (shim/xrt_shim.cpp) when the `npu` feature is on; nothing otherwise.

fn main() {
    #[cfg(feature = "npu")]
    npu::build();
}

#[cfg(feature = "npu")]
mod npu {
    use std::path::PathBuf;

    const HELP: &str = "the `npu` feature needs XRT >= 2.20 built with the amdxdna driver \
(https://github.com/amd/xdna-driver builds and installs both; it installs to /opt/xilinx/xrt). \
Install it and set XILINX_XRT (e.g. `source /opt/xilinx/xrt/setup.sh`). Debian's libxrt-dev \
(2.13) is too old: it has no xrt::hw_context. Build without `--features npu` for the CPU backend.";

    fn fail(what: &str) -> ! {
        eprintln!("\nerror: npu-runtime: {what}: {HELP}\n");
        std::process::exit(1);
    }

    pub fn build() {
        println!("cargo:rerun-if-changed=shim/xrt_shim.cpp");
        println!("cargo:rerun-if-env-changed=XILINX_XRT");
        println!("cargo:rerun-if-env-changed=NPU_RUNTIME_CHECK_ONLY");
        // `NPU_RUNTIME_CHECK_ONLY=1 cargo check --features npu` type-checks the backend on a
        // machine without XRT; nothing built this way links.
        if std::env::var_os("NPU_RUNTIME_CHECK_ONLY").is_some() {
            println!("cargo:warning=NPU_RUNTIME_CHECK_ONLY: the XRT shim is not built; this build cannot link");
            return;
        }
        let root = std::env::var_os("XILINX_XRT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/xilinx/xrt"));
        let include = root.join("include");
        let hw_context = include.join("xrt").join("xrt_hw_context.h");
        if !include.join("xrt").join("xrt_kernel.h").exists() {
            fail(&format!(
                "no XRT headers in {} (XILINX_XRT or /opt/xilinx/xrt)",
                include.display()
            ));
        }
        if !hw_context.exists() {
            fail(&format!(
                "{} is missing, so the XRT in {} is older than the NPU path needs",
                hw_context.display(),
                root.display()
            ));
        }
        // XRT >= 2.20 installs its version in xrt/detail/version-slim.h; older releases lack it.
        let version_h = include.join("xrt").join("detail").join("version-slim.h");
        match std::fs::read_to_string(&version_h)
            .ok()
            .and_then(|t| xrt_version(&t))
        {
            Some((major, minor)) if (major, minor) >= (2, 20) => {}
            Some((major, minor)) => {
                fail(&format!("the XRT in {} is {major}.{minor}", root.display()))
            }
            None => fail(&format!(
                "{} is missing or unreadable, so the XRT in {} is older than 2.20",
                version_h.display(),
                root.display()
            )),
        }
        let lib = root.join("lib");
        cc::Build::new()
            .cpp(true)
            .std("c++17")
            // XRT's headers as system headers: XRT 2.20-2.23's xrt/detail/span.h trips
            // -Wignored-qualifiers under .warnings(true), which cargo would print on every build.
            .flag("-isystem")
            .flag(include.as_os_str())
            .file("shim/xrt_shim.cpp")
            .warnings(true)
            .compile("npu_xrt_shim");
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-lib=dylib=xrt_coreutil");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }

    /// (major, minor) from `#define XRT_VERSION_CODE XRT_VERSION(2, 20)`.
    fn xrt_version(header: &str) -> Option<(u32, u32)> {
        let line = header
            .lines()
            .find(|l| l.trim_start().starts_with("#define XRT_VERSION_CODE"))?;
        let args = line.split_once("XRT_VERSION(")?.1.split_once(')')?.0;
        let (major, minor) = args.split_once(',')?;
        Some((major.trim().parse().ok()?, minor.trim().parse().ok()?))
    }
}
