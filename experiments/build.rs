//! With the `cuda` feature: compiles the fused ops' CUDA kernels (`kernels/*.cu`) to PTX
//! with the toolkit's nvcc (found as candle-kernels finds it: `NVCC`, `CUDA_HOME`, PATH;
//! the target from `CUDA_COMPUTE_CAP`) and writes `$OUT_DIR/ptx.rs`, one
//! `pub const <FILE>: &str` of PTX per kernel file, which `src/ops/cuda.rs` includes.
//! Without the feature it does nothing (the CPU build needs no toolkit).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "cuda")]
    cuda::compile_kernels();
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::path::PathBuf;

    /// Compiles every `kernels/*.cu` to PTX and writes the `ptx.rs` bindings.
    pub fn compile_kernels() {
        println!("cargo::rerun-if-changed=kernels");
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        let result = cudaforge::KernelBuilder::new()
            .source_dir("kernels")
            .arg("-std=c++17")
            .arg("-O3")
            .build_ptx()
            .and_then(|ptx| ptx.write(out.join("ptx.rs")));
        if let Err(e) = result {
            // A build script reports by failing; the message names the kernel and nvcc's output.
            panic!("compiling experiments/kernels/*.cu to PTX failed: {e}");
        }
    }
}
