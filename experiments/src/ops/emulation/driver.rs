//! The CUDA emulation's driver program (`experiments/cuda-emulation/driver.cpp`): built
//! with g++ into a temporary directory, then given requests (buffers and a list of
//! launches) whose buffers it returns after running the launches on the CPU. The byte
//! format is described in driver.cpp.

use crate::ops::launch::LaunchShape;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set to 1 to skip the emulation test where no C++ compiler is installed.
pub(super) const SKIP_VAR: &str = "RMTEACH_SKIP_CUDA_EMULATION";

/// The C++ compiler to use (default `g++`).
const CXX_VAR: &str = "CXX";

/// A buffer's element type, as the driver numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Elem {
    F32 = 0,
    Bf16 = 1,
    U32 = 2,
}

impl Elem {
    fn size(self) -> usize {
        match self {
            Elem::Bf16 => 2,
            Elem::F32 | Elem::U32 => 4,
        }
    }
}

/// One kernel argument.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    /// The request's buffer with this index (a pointer parameter).
    Buffer(usize),
    /// A pointer `offset` elements into a buffer (a cudarc slice of a buffer).
    View(usize, usize),
    /// An `int`.
    I32(i32),
    /// A `float`.
    F32(f32),
    /// A `size_t`.
    U64(u64),
    /// A struct passed by value, as its bytes.
    Bytes(Vec<u8>),
}

/// One launch: a kernel by name, its shape and its arguments in order.
#[derive(Debug, Clone)]
struct Launch {
    kernel: String,
    shape: LaunchShape,
    args: Vec<Arg>,
}

/// Buffers and the launches that run on them, in order.
#[derive(Debug, Default)]
pub(super) struct Request {
    buffers: Vec<(Elem, Vec<u8>)>,
    launches: Vec<Launch>,
}

impl Request {
    /// A buffer of f32 values stored as `elem` (bf16: rounded to nearest even; u32: the
    /// values must be whole numbers); its index.
    pub(super) fn input(&mut self, elem: Elem, values: &[f32]) -> usize {
        let bytes = match elem {
            Elem::F32 => values.iter().flat_map(|v| v.to_ne_bytes()).collect(),
            Elem::Bf16 => values
                .iter()
                .flat_map(|&v| bf16_bits(v).to_ne_bytes())
                .collect(),
            Elem::U32 => values
                .iter()
                .flat_map(|&v| (v as u32).to_ne_bytes())
                .collect(),
        };
        self.buffers.push((elem, bytes));
        self.buffers.len() - 1
    }

    /// A buffer of u32 values; its index.
    pub(super) fn input_u32(&mut self, values: &[u32]) -> usize {
        let bytes = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        self.buffers.push((Elem::U32, bytes));
        self.buffers.len() - 1
    }

    /// An output buffer of `n` elements filled with all-ones bytes (a NaN in f32 and
    /// bf16), so an element no kernel writes shows as a NaN; its index.
    pub(super) fn output(&mut self, elem: Elem, n: usize) -> usize {
        self.buffers.push((elem, vec![0xff; n * elem.size()]));
        self.buffers.len() - 1
    }

    /// Appends a launch of `kernel` with `shape` and `args` (in the kernel's order).
    pub(super) fn launch(&mut self, kernel: &str, shape: LaunchShape, args: Vec<Arg>) {
        self.launches.push(Launch {
            kernel: kernel.to_string(),
            shape,
            args,
        });
    }

    /// The request's bytes.
    fn encode(&self) -> Vec<u8> {
        let mut b = b"KEMU".to_vec();
        let u32s = |b: &mut Vec<u8>, v: u32| b.extend(v.to_ne_bytes());
        u32s(&mut b, 1);
        u32s(&mut b, self.buffers.len() as u32);
        for (elem, bytes) in &self.buffers {
            u32s(&mut b, *elem as u32);
            b.extend(((bytes.len() / elem.size()) as u64).to_ne_bytes());
            b.extend(bytes);
        }
        u32s(&mut b, self.launches.len() as u32);
        for l in &self.launches {
            u32s(&mut b, l.kernel.len() as u32);
            b.extend(l.kernel.as_bytes());
            let (g, k) = (l.shape.grid, l.shape.block);
            for v in [g.0, g.1, g.2, k.0, k.1, k.2] {
                u32s(&mut b, v);
            }
            u32s(&mut b, l.args.len() as u32);
            for a in &l.args {
                match a {
                    Arg::Buffer(i) => {
                        u32s(&mut b, 0);
                        u32s(&mut b, *i as u32);
                    }
                    Arg::View(i, offset) => {
                        u32s(&mut b, 5);
                        u32s(&mut b, *i as u32);
                        b.extend((*offset as u64).to_ne_bytes());
                    }
                    Arg::I32(v) => {
                        u32s(&mut b, 1);
                        b.extend(v.to_ne_bytes());
                    }
                    Arg::F32(v) => {
                        u32s(&mut b, 2);
                        b.extend(v.to_ne_bytes());
                    }
                    Arg::U64(v) => {
                        u32s(&mut b, 3);
                        b.extend(v.to_ne_bytes());
                    }
                    Arg::Bytes(v) => {
                        u32s(&mut b, 4);
                        u32s(&mut b, v.len() as u32);
                        b.extend(v);
                    }
                }
            }
        }
        b
    }
}

/// The buffers after a request's launches.
pub(super) struct Response {
    buffers: Vec<(Elem, Vec<u8>)>,
}

impl Response {
    /// Buffer `i` as f32 values (bf16 widened exactly, u32 converted).
    pub(super) fn f32s(&self, i: usize) -> Vec<f32> {
        let (elem, bytes) = &self.buffers[i];
        match elem {
            Elem::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Elem::Bf16 => bytes
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_ne_bytes([c[0], c[1]])) << 16))
                .collect(),
            Elem::U32 => bytes
                .chunks_exact(4)
                .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
        }
    }
}

/// The bf16 bits of `v` rounded to nearest even (NaN: the canonical 0x7fff).
pub(super) fn bf16_bits(v: f32) -> u16 {
    if v.is_nan() {
        return 0x7fff;
    }
    let u = v.to_bits();
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// The compiled driver in its temporary directory.
pub(super) struct Driver {
    dir: tempfile::TempDir,
    program: PathBuf,
}

/// Whether g++ may fuse `a * b + c` into a fused multiply-add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Contraction {
    /// Never (`-ffp-contract=off`): every f32 operation rounded on its own.
    Off,
    /// Where g++ likes (`-ffp-contract=fast` with FMA instructions), as nvcc fuses by
    /// default (`--fmad=true`), though not at the same places; never the `__f*_rn`
    /// intrinsics.
    Fused,
}

impl Contraction {
    /// The compiler flags, or `None` when this CPU has no FMA instructions.
    fn flags(self) -> Option<&'static [&'static str]> {
        match self {
            Contraction::Off => Some(&["-ffp-contract=off"]),
            #[cfg(target_arch = "x86_64")]
            Contraction::Fused => {
                std::is_x86_feature_detected!("fma").then_some(&["-ffp-contract=fast", "-mfma"][..])
            }
            #[cfg(not(target_arch = "x86_64"))]
            Contraction::Fused => Some(&["-ffp-contract=fast"]),
        }
    }
}

impl Driver {
    /// Compiles the driver with the kernels; `Ok(None)` when [`SKIP_VAR`] is set to 1
    /// or `contraction` needs FMA instructions this CPU lacks. A missing compiler is an
    /// error saying how to install it or skip.
    pub(super) fn build(contraction: Contraction) -> Result<Option<Self>, String> {
        if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
            return Ok(None);
        }
        let Some(flags) = contraction.flags() else {
            return Ok(None);
        };
        let cxx = std::env::var(CXX_VAR).unwrap_or_else(|_| "g++".into());
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("cuda-emulation");
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let program = dir.path().join("cuda-emulation-driver");
        let output = Command::new(&cxx)
            // No -ffast-math anywhere: IEEE f32 except for the contraction chosen.
            .args(["-std=c++17", "-O2", "-Wall", "-Wextra"])
            .args(["-Wno-unknown-pragmas", "-Werror"])
            .args(flags)
            .arg("-I")
            .arg(source.join("include"))
            .arg(source.join("driver.cpp"))
            .arg(source.join("runtime.cpp"))
            .arg("-o")
            .arg(&program)
            .output()
            .map_err(|e| {
                format!(
                    "cannot run the C++ compiler `{cxx}` ({e}): the CUDA emulation test needs \
                     g++ (Debian/Ubuntu: `apt-get install g++`; another compiler via {CXX_VAR}), \
                     or set {SKIP_VAR}=1 to skip it"
                )
            })?;
        if !output.status.success() {
            return Err(format!(
                "compiling experiments/cuda-emulation with `{cxx}` failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(Some(Self { dir, program }))
    }

    /// Runs `request`: the buffers afterwards, or the driver's error (a deadlock, a
    /// diverged warp, an access past a buffer, a schedule-dependent result, ...).
    pub(super) fn run(&self, request: &Request) -> Result<Response, String> {
        let req = self.dir.path().join("request.bin");
        let resp = self.dir.path().join("response.bin");
        std::fs::write(&req, request.encode()).map_err(|e| format!("{}: {e}", req.display()))?;
        let output = Command::new(&self.program)
            .arg(&req)
            .arg(&resp)
            .output()
            .map_err(|e| format!("{}: {e}", self.program.display()))?;
        if !output.status.success() {
            let kernels: Vec<&str> = request.launches.iter().map(|l| &*l.kernel).collect();
            return Err(format!(
                "the emulated launches {kernels:?} failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let bytes = std::fs::read(&resp).map_err(|e| format!("{}: {e}", resp.display()))?;
        let mut at = 4;
        let mut buffers = Vec::new();
        for (elem, _) in &request.buffers {
            let len = u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8])) as usize;
            at += 8;
            buffers.push((*elem, bytes[at..at + len].to_vec()));
            at += len;
        }
        Ok(Response { buffers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1.
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up.
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(bf16_bits(f32::NAN), 0x7fff);
        assert_eq!(bf16_bits(f32::INFINITY), 0x7f80);
    }
}
