//! The PTX of every `kernels/*.cu`, compiled by build.rs: (module name, PTX text).

include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
