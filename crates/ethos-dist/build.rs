//! Compiles the Gloo half of the c10d shim (`cpp/ethos_c10d.cpp`) against the headers of the
//! libtorch that torch-sys links, and links it before `torch_cpu` and `c10`, which export every
//! symbol it needs. The NCCL half is not built here: `scripts/build_nccl_shim.sh` builds it into a
//! separate `libethos_nccl.so` that is loaded at run time, so the binary never needs libtorch_cuda.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    // torch-sys publishes the library folder it resolved (LIBTORCH, a Python torch, ...).
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("LIBTORCH").map(|d| PathBuf::from(d).join("lib")))
        .expect("ethos-dist: neither torch-sys's DEP_TCH_LIBTORCH_LIB nor LIBTORCH is set");
    let root = lib
        .parent()
        .expect("ethos-dist: the libtorch library folder has a parent")
        .to_path_buf();
    let include = std::env::var("LIBTORCH_INCLUDE")
        .map(|d| PathBuf::from(d).join("include"))
        .unwrap_or_else(|_| root.join("include"));
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .std("c++17")
        // The c10d headers compile to nothing without USE_DISTRIBUTED / USE_C10D_GLOO.
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("GLOG_USE_GLOG_EXPORT", None)
        .define("USE_DISTRIBUTED", None)
        .define("USE_C10D_GLOO", None)
        // ethos's stand-in declarations of the gloo types (the wheel ships no gloo headers).
        .include("cpp/gloo_decls")
        .include("cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .file("cpp/ethos_c10d.cpp")
        .compile("ethos_c10d");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    // Tests, examples and benches of this crate find libtorch without LD_LIBRARY_PATH.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
