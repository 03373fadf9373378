//! CUDA backend (work in progress in this session).
